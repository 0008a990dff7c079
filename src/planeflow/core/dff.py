"""dF/F by a rolling percentile baseline, and per-ROI shape statistics and filters.

Defaults follow the LBM-Suite2p-Python reference: the baseline window is about
10·tau·fs frames and the smoothing window about 0.5·tau·fs frames.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d


def dff_windows(tau: float, fs: float, window_s: float | None = None,
                smooth_s: float | None = None) -> tuple[int, int]:
    """(baseline window, smoothing window) in frames."""
    win = window_s * fs if window_s else 10.0 * tau * fs
    smooth = smooth_s * fs if smooth_s else 0.5 * tau * fs
    return max(3, int(round(win))), max(1, int(round(smooth)))


def rolling_percentile(x: np.ndarray, window: int, percentile: float) -> np.ndarray:
    """Centred running percentile along the last axis of ``x`` (n, T).

    Evaluated exactly at about 20 points per window and linearly interpolated in
    between, so the cost is O(T·20) windows rather than one window per frame.
    """
    x = np.asarray(x, dtype=np.float32)
    n, T = x.shape
    if T == 0 or n == 0:
        return np.zeros_like(x)
    half = window // 2
    step = max(1, window // 20)
    centres = np.arange(0, T, step)
    if centres[-1] != T - 1:
        centres = np.append(centres, T - 1)
    base = np.empty((n, centres.size), np.float32)
    for k, c in enumerate(centres):
        lo, hi = max(0, c - half), min(T, c + half + 1)
        base[:, k] = np.percentile(x[:, lo:hi], percentile, axis=1)
    t = np.arange(T)
    return np.stack([np.interp(t, centres, b) for b in base]).astype(np.float32)


#: ROIs whose dF/F is computed at once: the work arrays (neuropil-corrected trace, smoothed
#: trace, baseline and their temporaries) hold this many traces whatever the plane's number of
#: ROIs, so postprocess needs about one more copy of F (dF/F itself) instead of eight. Each
#: ROI's dF/F depends only on its own traces: the result does not depend on the block.
DFF_BLOCK_ROIS = 256


def compute_dff(F: np.ndarray, Fneu: np.ndarray, *, tau: float, fs: float,
                neuropil_coefficient: float = 0.7, percentile: float = 20.0,
                window_s: float | None = None, smooth_s: float | None = None,
                subtract_neuropil: bool = True) -> tuple[np.ndarray, dict]:
    """dF/F = (F - F0) / F0 with F0 a rolling percentile of the smoothed trace.

    F is neuropil-corrected first (F - c·Fneu) when ``subtract_neuropil``. F0 is
    floored at 1% of the trace's overall median magnitude (and a tiny epsilon) so a
    baseline near zero cannot blow dF/F up. F and Fneu may be memory maps: they are read
    :data:`DFF_BLOCK_ROIS` ROIs at a time.
    """
    win, sm = dff_windows(tau, fs, window_s, smooth_s)
    info = {"window_frames": win, "smooth_frames": sm, "percentile": float(percentile),
            "neuropil_subtracted": bool(subtract_neuropil),
            "neuropil_coefficient": float(neuropil_coefficient)}
    dff = np.empty(np.shape(F), np.float32)
    for r0 in range(0, dff.shape[0], DFF_BLOCK_ROIS):
        rows = slice(r0, r0 + DFF_BLOCK_ROIS)
        Fb = np.asarray(F[rows], np.float32)
        Fc = Fb - neuropil_coefficient * np.asarray(Fneu[rows], np.float32) if subtract_neuropil else Fb  # read only
        smoothed = uniform_filter1d(Fc, size=sm, axis=1, mode="nearest") if sm > 1 else Fc
        F0 = rolling_percentile(smoothed, win, percentile)
        floor = np.maximum(0.01 * np.abs(np.median(Fc, axis=1, keepdims=True)), 1e-6)
        F0 = np.where(np.abs(F0) < floor, np.sign(F0 + 1e-12) * floor, F0)
        dff[rows] = (Fc - F0) / np.abs(F0)
    if not dff.shape[0]:
        info = {"window_frames": win, "smooth_frames": sm, "percentile": percentile}
    return dff, info


def eccentricity(ypix: np.ndarray, xpix: np.ndarray, lam: np.ndarray | None = None) -> float:
    """sqrt(1 - λmin/λmax) of the (weighted) pixel covariance; 0 for a disc, ->1 for a line."""
    ypix = np.asarray(ypix, float)
    xpix = np.asarray(xpix, float)
    if ypix.size < 3:
        return 0.0
    w = np.ones_like(ypix) if lam is None else np.clip(np.asarray(lam, float), 0, None)
    if w.sum() <= 0:
        w = np.ones_like(ypix)
    w = w / w.sum()
    my, mx = (w * ypix).sum(), (w * xpix).sum()
    cyy = (w * (ypix - my) ** 2).sum()
    cxx = (w * (xpix - mx) ** 2).sum()
    cxy = (w * (ypix - my) * (xpix - mx)).sum()
    ev = np.linalg.eigvalsh(np.array([[cyy, cxy], [cxy, cxx]]))
    if ev[1] <= 0:
        return 0.0
    return float(np.sqrt(max(0.0, 1.0 - ev[0] / ev[1])))


def roi_table(stat, iscell: np.ndarray, dx: float | None, dy: float | None) -> dict[str, np.ndarray]:
    """Per-ROI statistics as columns (SNR, skew, npix, compactness, size in µm, eccentricity)."""
    n = len(stat)
    px_area = dx * dy if (dx and dy) else np.nan
    px_len = np.sqrt(px_area) if (dx and dy) else np.nan
    cols = {
        "roi": np.arange(n),
        "iscell": iscell[:, 0].astype(int) if n else np.zeros(0, int),
        "probcell": iscell[:, 1].astype(float) if n else np.zeros(0),
        "med_y": np.array([s["med"][0] for s in stat], float),
        "med_x": np.array([s["med"][1] for s in stat], float),
        "npix": np.array([s["npix"] for s in stat], int),
        "radius_px": np.array([s.get("radius", np.nan) for s in stat], float),
        "compactness": np.array([s.get("compact", np.nan) for s in stat], float),
        "aspect_ratio": np.array([s.get("aspect_ratio", np.nan) for s in stat], float),
        "snr": np.array([s.get("snr", np.nan) for s in stat], float),
        "skew": np.array([s.get("skew", np.nan) for s in stat], float),
        "eccentricity": np.array([eccentricity(s["ypix"], s["xpix"], s.get("lam")) for s in stat], float),
    }
    cols["diameter_um"] = 2 * cols["radius_px"] * px_len
    cols["area_um2"] = cols["npix"] * px_area
    return cols


FILTERS = {
    # name: (column, comparison that KEEPS the ROI)
    "min_diameter_um": ("diameter_um", np.greater_equal),
    "max_diameter_um": ("diameter_um", np.less_equal),
    "min_area_um2": ("area_um2", np.greater_equal),
    "max_area_um2": ("area_um2", np.less_equal),
    "max_eccentricity": ("eccentricity", np.less_equal),
}


def apply_filters(iscell: np.ndarray, table: dict, filters: dict) -> tuple[np.ndarray, list[dict]]:
    """Mark ROIs that fail a filter as not-cells; return new iscell and one result per filter.

    Only ROIs still accepted are counted as removed by a filter. ``filters`` maps a
    name of FILTERS to its threshold; ``None`` thresholds are skipped.
    """
    keep = iscell[:, 0].astype(bool).copy() if len(iscell) else np.zeros(0, bool)
    results = []
    for name, thr in (filters or {}).items():
        if thr is None:
            continue
        col, op = FILTERS[name]
        values = table[col]
        passed = op(values, thr)
        removed = np.flatnonzero(keep & ~passed)
        keep &= passed
        results.append({"filter_name": name, "threshold": thr, "n_removed": int(removed.size),
                        "n_remaining": int(keep.sum()), "removed_indices": removed})
    out = np.array(iscell, dtype=float, copy=True)
    if len(out):
        out[:, 0] = keep
    return out, results
