"""From planes to a volume: plane offsets, crosstalk and one ID per cell.

Pure numpy/scipy on suite2p's per-plane outputs; the step
:mod:`planeflow.steps._volume` (the first half of rule volume_stats) does the file work. Conventions:

* **plane offset** ``(dy, dx)`` of plane ``p``: a feature at plane-0 pixel ``(y, x)`` of
  the registered frames lies at ``(y + dy, x + dx)`` in plane ``p``'s registered frames
  (plane 0 has ``(0, 0)``). Volume coordinates of a pixel of plane ``p`` are therefore
  ``(y - dy, x - dx)`` (plane-0 pixels) and ``z = p * dz``.
* **recorded-pixel shift** ``raw[p]``: crosstalk happens at the same *recorded* pixel, not
  at the same tissue point. Registration moves every plane by its own offsets
  ``(yoff, xoff)`` (shared motion, but a reference image of its own), so a recorded
  pixel that is at ``(y, x)`` in plane ``p``'s registered frame is at
  ``(y, x) + raw[p] - raw[q]`` in plane ``q``'s, with ``raw[p] = median_t(yoff_p - yoff_0)``.
* **crosstalk coefficient** ``c`` at separation ``k``: plane ``p + k`` receives
  ``c`` times plane ``p``'s light (``k`` may be negative).
"""
from __future__ import annotations

import logging

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d
from scipy.spatial import cKDTree

log = logging.getLogger("planeflow")

#: a crosstalk ghost is at most this bright (mean-image contrast) relative to its source
GHOST_MAX_RATIO = 0.5
#: pixels around an ROI (beyond a 1-px gap) that give its local background
RING_PX = 3


# ----------------------------------------------------------------------------- offsets
def phase_offset(ref: np.ndarray, img: np.ndarray, max_shift: float | None = None):
    """Displacement ``(dy, dx)`` of ``img`` relative to ``ref`` by phase correlation, and a
    confidence in [0, 1].

    A feature at ``(y, x)`` of ``ref`` lies at ``(y + dy, x + dx)`` in ``img``. Both
    images are tapered (Hann window) and whitened; the correlation surface is smoothed
    (sigma 1 px) and its peak refined to subpixel by a parabola per axis. Confidence from
    the peak's height ``z`` above the surface's median in robust standard deviations
    (1.4826 MAD): ``1 - exp(-(z - z0) / 10)`` (0 below ``z0``), with ``z0 = sqrt(2 ln N) + 2``
    a little above the highest peak N unrelated pixels reach by chance. Unrelated or
    blank images give about 0; images sharing a fifth of their content about 0.2-0.4;
    half about 0.9.
    """
    ref = np.asarray(ref, dtype=np.float64)
    img = np.asarray(img, dtype=np.float64)
    Ly, Lx = min(ref.shape[0], img.shape[0]), min(ref.shape[1], img.shape[1])
    ref, img = ref[:Ly, :Lx], img[:Ly, :Lx]
    if Ly < 8 or Lx < 8 or not (np.isfinite(ref).all() and np.isfinite(img).all()) \
            or ref.std() == 0 or img.std() == 0:
        return 0.0, 0.0, 0.0
    win = np.outer(np.hanning(Ly), np.hanning(Lx))
    fa = np.fft.fft2((ref - ref.mean()) * win)
    fb = np.fft.fft2((img - img.mean()) * win)
    cross = fb * np.conj(fa)
    cross /= np.abs(cross) + 1e-12 * np.abs(cross).max()
    r = np.fft.fftshift(np.real(np.fft.ifft2(cross)))
    r = gaussian_filter(r, 1.0)
    cy, cx = Ly // 2, Lx // 2
    yy, xx = np.mgrid[0:Ly, 0:Lx]
    if max_shift is not None:
        r = np.where((np.abs(yy - cy) <= max_shift) & (np.abs(xx - cx) <= max_shift), r, r.min())
    i = int(np.argmax(r))
    py, px = divmod(i, Lx)
    base = float(np.median(r))
    spread = 1.4826 * float(np.median(np.abs(r - base)))
    z = (float(r[py, px]) - base) / spread if spread > 0 else 0.0
    z0 = np.sqrt(2 * np.log(r.size)) + 2.0
    conf = float(1.0 - np.exp(-max(z - z0, 0.0) / 10.0))

    def parabola(a, b, c):
        d = a - 2 * b + c
        return 0.0 if d == 0 else float(np.clip(0.5 * (a - c) / d, -0.5, 0.5))

    sy = parabola(r[py - 1, px], r[py, px], r[py + 1, px]) if 0 < py < Ly - 1 else 0.0
    sx = parabola(r[py, px - 1], r[py, px], r[py, px + 1]) if 0 < px < Lx - 1 else 0.0
    return float(py - cy + sy), float(px - cx + sx), conf


def plane_offsets(means: list[np.ndarray], overrides: dict | None = None,
                  min_confidence: float = 0.2) -> list[dict]:
    """Offsets of every plane relative to plane 0 (index 0 of ``means``), chained.

    Plane ``i`` is compared with the last plane placed before it (its neighbour unless
    that one could not be placed); a pair under ``min_confidence`` leaves the plane to be
    interpolated linearly (per axis, in plane index) between the nearest placed planes on
    either side, or copied from the nearest one at the ends (``source = interpolated``).
    ``overrides`` (index -> (dy, dx), or -> {"offset": (dy, dx), "source": "config" |
    "sheet"}) fix planes (``source`` = where they were set, default ``config``); planes
    after one chain from it. When the first plane has no confident partner (blank), the chain
    restarts at the first plane that matches its next neighbour.

    Returns one dict per plane: ``dy_px, dx_px, confidence, source, pair`` (the index the
    plane was compared with, or None).
    """
    overrides = {k: v if isinstance(v, dict) else {"offset": v, "source": "config"}
                 for k, v in (overrides or {}).items()}
    n = len(means)
    rows: list[dict | None] = [None] * n

    def fixed(i):
        o = overrides[i]
        return dict(dy_px=float(o["offset"][0]), dx_px=float(o["offset"][1]), confidence=1.0,
                    source=o.get("source", "config"), pair=None)

    if 0 in overrides:
        rows[0] = fixed(0)
    else:
        rows[0] = dict(dy_px=0.0, dx_px=0.0, confidence=1.0, source="estimated", pair=None)
    g = 0                      # last placed plane
    for i in range(1, n):
        if i in overrides:
            rows[i] = fixed(i)
            g = i
            continue
        dy, dx, conf = phase_offset(means[g], means[i])
        if conf >= min_confidence:
            rows[i] = dict(dy_px=rows[g]["dy_px"] + dy, dx_px=rows[g]["dx_px"] + dx,
                           confidence=conf, source="estimated", pair=g)
            g = i
            continue
        rows[i] = dict(dy_px=np.nan, dx_px=np.nan, confidence=conf, source="interpolated", pair=g)
        if g == 0 and all(r is None or r["source"] != "estimated" for r in rows[1:i]) and i + 1 < n:
            # plane 0 (or the start of the chain) is blank: restart the chain here if this
            # plane matches its next neighbour
            _, _, c_next = phase_offset(means[i], means[i + 1])
            if c_next >= min_confidence:
                rows[i].update(dy_px=rows[0]["dy_px"], dx_px=rows[0]["dx_px"])
                rows[i]["_anchor"] = True
                g = i
    placed = [i for i in range(n) if rows[i]["source"] != "interpolated" or rows[i].pop("_anchor", False)]
    for i in range(n):
        if rows[i]["source"] == "interpolated" and not np.isfinite(rows[i]["dy_px"]):
            lo = max((j for j in placed if j < i), default=None)
            hi = min((j for j in placed if j > i), default=None)
            if lo is not None and hi is not None:
                w = (i - lo) / (hi - lo)
                for key in ("dy_px", "dx_px"):
                    rows[i][key] = (1 - w) * rows[lo][key] + w * rows[hi][key]
            else:
                j = lo if lo is not None else hi
                for key in ("dy_px", "dx_px"):
                    rows[i][key] = rows[j][key] if j is not None else 0.0
    for r in rows:
        r.pop("_anchor", None)
    return rows


def field_plane_offsets(means: list[np.ndarray], rects: list, overrides: dict | None = None,
                        min_confidence: float = 0.2) -> list[dict]:
    """:func:`plane_offsets` of an image made of several fields (mROI stripes side by side,
    ``rects`` = [y0, x0, h, w] each, moved into one frame beforehand), field by field: a
    seam between two fields stays put from plane to plane and would pull a whole-image
    estimate towards 0. Per plane, the fields' estimates are averaged weighted by their
    confidence (the largest is the plane's); a plane no field placed is interpolated
    (the fields' interpolations averaged). One field or none: :func:`plane_offsets`."""
    if len(rects) < 2:
        return plane_offsets(means, overrides, min_confidence)
    per = [plane_offsets([m[y0:y0 + h, x0:x0 + w] for m in means], overrides, min_confidence)
           for y0, x0, h, w in rects]
    rows = []
    for i in range(len(means)):
        cands = [r[i] for r in per]
        placed = [r for r in cands if r["source"] != "interpolated"]
        use = placed or cands
        w = np.array([max(r["confidence"], 1e-6) for r in use]) if placed else np.ones(len(use))
        best = max(use, key=lambda r: r["confidence"])
        rows.append(dict(dy_px=float(np.dot(w, [r["dy_px"] for r in use]) / w.sum()),
                         dx_px=float(np.dot(w, [r["dx_px"] for r in use]) / w.sum()),
                         confidence=best["confidence"], source=best["source"], pair=best["pair"]))
    return rows


def recorded_shifts(yoffs: list, xoffs: list) -> np.ndarray:
    """``raw[p]`` (module docstring) from each plane's rigid registration offsets; zeros for
    planes without offsets or with another number of frames than plane 0."""
    n = len(yoffs)
    out = np.zeros((n, 2))
    if n == 0 or yoffs[0] is None:
        return out
    y0, x0 = np.asarray(yoffs[0], float).ravel(), np.asarray(xoffs[0], float).ravel()
    for p in range(1, n):
        if yoffs[p] is None or len(yoffs[p]) != len(y0) or len(y0) == 0:
            continue
        out[p] = (np.median(np.asarray(yoffs[p], float).ravel() - y0),
                  np.median(np.asarray(xoffs[p], float).ravel() - x0))
    return out


def shift_image(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``img`` moved by whole pixels ``(round(dy), round(dx))``: out[y + dy, x + dx] = img[y, x];
    uncovered pixels take the image's median."""
    dy, dx = int(round(dy)), int(round(dx))
    out = np.full_like(img, np.median(img) if img.size else 0)
    Ly, Lx = img.shape
    ys, yd = (slice(0, Ly - dy), slice(dy, Ly)) if dy >= 0 else (slice(-dy, Ly), slice(0, Ly + dy))
    xs, xd = (slice(0, Lx - dx), slice(dx, Lx)) if dx >= 0 else (slice(-dx, Lx), slice(0, Lx + dx))
    out[yd, xd] = img[ys, xs]
    return out


# ----------------------------------------------------------------------------- ROI geometry
class Rois:
    """The ROIs of one plane: pixel lists, centres, a background-subtracted brightness."""

    def __init__(self, stat, iscell, mean: np.ndarray | None):
        self.n = len(stat)
        self.ypix = [np.asarray(s["ypix"], dtype=np.int64).ravel() for s in stat]
        self.xpix = [np.asarray(s["xpix"], dtype=np.int64).ravel() for s in stat]
        self.med = (np.array([[float(np.mean(y)), float(np.mean(x))] for y, x in zip(self.ypix, self.xpix)])
                    if self.n else np.zeros((0, 2)))
        self.accepted = (np.asarray(iscell)[:, 0] > 0.5) if self.n else np.zeros(0, bool)
        self.npix = np.array([len(y) for y in self.ypix], dtype=np.int64)
        self.contrast = np.array([roi_contrast(mean, y, x) for y, x in zip(self.ypix, self.xpix)]) \
            if mean is not None and self.n else np.zeros(self.n)

    def pixels(self, i: int, dy: float = 0.0, dx: float = 0.0, shape=None) -> np.ndarray:
        """Linear pixel indices of ROI ``i`` moved by ``(round(dy), round(dx))`` on a frame
        of ``shape`` (pixels that leave it are dropped)."""
        Ly, Lx = shape
        y = self.ypix[i] + int(round(dy))
        x = self.xpix[i] + int(round(dx))
        ok = (y >= 0) & (y < Ly) & (x >= 0) & (x < Lx)
        return np.unique(y[ok] * Lx + x[ok])


def roi_contrast(mean: np.ndarray, ypix, xpix, dy: float = 0.0, dx: float = 0.0) -> float:
    """Mean of ``mean`` over the ROI's pixels minus its mean over a ring around it
    (1 to 1 + RING_PX px away), the ROI moved by ``(dy, dx)``; nan when off the image."""
    from scipy.ndimage import binary_dilation

    Ly, Lx = mean.shape
    y = np.asarray(ypix) + int(round(dy))
    x = np.asarray(xpix) + int(round(dx))
    pad = RING_PX + 2
    if len(y) == 0 or y.min() < 0 or x.min() < 0 or y.max() >= Ly or x.max() >= Lx:
        return float("nan")
    y0, x0 = max(y.min() - pad, 0), max(x.min() - pad, 0)
    y1, x1 = min(y.max() + pad + 1, Ly), min(x.max() + pad + 1, Lx)
    m = np.zeros((y1 - y0, x1 - x0), bool)
    m[y - y0, x - x0] = True
    inner = binary_dilation(m, iterations=1)
    ring = binary_dilation(m, iterations=1 + RING_PX) & ~inner
    if not ring.any():
        return float("nan")
    patch = mean[y0:y1, x0:x1]
    return float(patch[m].mean() - patch[ring].mean())


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """|A and B| / min(|A|, |B|) of two sorted linear pixel sets (0 when one is empty)."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    return len(np.intersect1d(a, b, assume_unique=True)) / min(len(a), len(b))


# ----------------------------------------------------------------------------- crosstalk
def _highpass(img: np.ndarray, sigma: float) -> np.ndarray:
    img = np.asarray(img, np.float64)
    return img - gaussian_filter(img, sigma)


def source_mask(src: Rois, shape) -> np.ndarray:
    """Pixels of the plane's accepted ROIs, grown by 1 px, on a frame of ``shape``."""
    from scipy.ndimage import binary_dilation

    mask = np.zeros(shape, bool)
    for i in np.flatnonzero(src.accepted):
        ok = (src.ypix[i] < shape[0]) & (src.xpix[i] < shape[1])
        mask[src.ypix[i][ok], src.xpix[i][ok]] = True
    return binary_dilation(mask, iterations=1) if mask.any() else mask


def ghost_votes(lo: Rois, hi: Rois, shift, shape, min_overlap: float) -> tuple[int, int]:
    """Pairs of accepted ROIs of a lower and a higher plane on the same recorded pixels
    (``shift`` = position in ``hi`` minus position in ``lo``) where one is at most
    GHOST_MAX_RATIO as bright as the other: (pairs with the brighter in ``lo``, in ``hi``).
    A crosstalk ghost is the dimmer copy, so these votes tell the direction of the leak."""
    up = down = 0
    for i, j, _ in candidate_pairs(lo, hi, shift, shape, min_overlap, radius=10.0):
        if not (lo.accepted[i] and hi.accepted[j]):
            continue
        a, b = lo.contrast[i], hi.contrast[j]
        if not (np.isfinite(a) and np.isfinite(b)):
            continue
        if a > 0 and b <= GHOST_MAX_RATIO * a:
            up += 1
        elif b > 0 and a <= GHOST_MAX_RATIO * b:
            down += 1
    return up, down


def crosstalk_slope(src_mean: np.ndarray, tgt_mean: np.ndarray, mask: np.ndarray, shift,
                    sigma: float, tissue=None) -> tuple[np.ndarray, np.ndarray, int]:
    """Normal equations of the regression of the target plane's high-passed mean image on
    the source plane's, over ``mask`` (source pixels), the target read at the same recorded
    pixels (``shift`` = position in the target minus position in the source). With
    ``tissue`` (where the same tissue point lies in the target minus where the source's
    recorded pixel lies, px) a second regressor, the source moved by that displacement,
    takes up what the planes share as tissue (a cell seen in both, vessels). Returns
    (X'X, X'y, pixels) so that plane pairs can be pooled; one regressor: 1x1."""
    S = _highpass(src_mean, sigma)
    T = shift_image(_highpass(tgt_mean, sigma), -shift[0], -shift[1])
    cols = [S] if tissue is None else [S, shift_image(S, tissue[0], tissue[1])]
    reach = np.abs(shift).max() + (0 if tissue is None else np.abs(tissue).max())
    edge = int(np.ceil(reach + 2 * sigma))
    m = mask.copy()
    if edge > 0:
        m[:edge], m[-edge:], m[:, :edge], m[:, -edge:] = False, False, False, False
    k = len(cols)
    if m.sum() < 10:
        return np.zeros((k, k)), np.zeros(k), 0
    X = np.stack([c[m] - c[m].mean() for c in cols], axis=1)
    y = T[m] - T[m].mean()
    return X.T @ X, X.T @ y, int(m.sum())


#: above this correlation between the recorded-pixel and the tissue regressors the two
#: cannot be told apart; the coefficient is then the recorded-pixel regression alone
MAX_COLLINEARITY = 0.3


def estimate_crosstalk(rois: list[Rois], means: list[np.ndarray], raw: np.ndarray,
                       max_separation: int, min_coefficient: float, diameter: float,
                       offsets: np.ndarray | None = None) -> list[dict]:
    """Crosstalk coefficient per signed plane separation ``k`` (1..max_separation and its
    negatives): plane ``p + k``'s mean image regressed on plane ``p``'s at the recorded
    pixels of ``p``'s accepted ROIs (:func:`source_mask`), both high-passed (Gaussian sigma
    diameter / 3, so that slow background does not count), pooled over every plane pair at
    that separation.

    Planes also share tissue (a cell between them, vessels) at the plane *offsets*; with
    ``offsets`` (a first estimate) that is a second regressor (``axial``), so that shared
    tissue is not counted as crosstalk. Where the two displacements nearly coincide
    (``collinearity`` > MAX_COLLINEARITY) they cannot be separated: ``method`` is then
    ``recorded`` and the coefficient an upper bound, otherwise ``joint``. ``null`` is the
    recorded-pixel regression with the target read 1.5 diameters away (8 directions; mean
    and std), i.e. what unrelated pixels give.

    The regression alone cannot tell plane ``p`` leaking into ``p + k`` from the reverse, so
    ``votes`` counts ROI pairs on the same recorded pixels whose dimmer member is in the
    target (:func:`ghost_votes`; ``votes_against`` the reverse). ``significant`` when the
    coefficient reaches ``min_coefficient``, exceeds the null's mean by three of its standard
    deviations, and at least 3 votes and a third of the pairs point this way."""
    n = len(means)
    sigma = max(1.0, diameter / 3)
    d = max(6, int(round(1.5 * diameter)))
    probes = [(a * d, b * d) for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0)]
    rows = []
    for ks in range(1, min(max_separation, n - 1) + 1):
        for k in (ks, -ks):
            xx1 = xy1 = 0.0
            XX, Xy = np.zeros((2, 2)), np.zeros(2)
            npx, pairs, per, votes, against = 0, 0, [], 0, 0
            null_xy, null_xx = np.zeros(len(probes)), np.zeros(len(probes))
            for p in range(n):
                q = p + k
                if not 0 <= q < n or rois[p].n == 0:
                    continue
                shift = raw[p] - raw[q]
                lo, hi = (p, q) if p < q else (q, p)
                up, down = ghost_votes(rois[lo], rois[hi], raw[lo] - raw[hi], means[p].shape, 0.3)
                votes, against = (votes + up, against + down) if k > 0 else (votes + down, against + up)
                mask = source_mask(rois[p], means[p].shape)
                A, b, m = crosstalk_slope(means[p], means[q], mask, shift, sigma)
                if m == 0 or A[0, 0] <= 0:
                    continue
                xx1, xy1, npx, pairs = xx1 + A[0, 0], xy1 + b[0], npx + m, pairs + 1
                per.append(b[0] / A[0, 0])
                if offsets is not None:
                    tissue = (offsets[q] - offsets[p]) - shift
                    A2, b2, m2 = crosstalk_slope(means[p], means[q], mask, shift, sigma, tissue)
                    if m2:
                        XX, Xy = XX + A2, Xy + b2
                for j, (a, bb) in enumerate(probes):
                    A3, b3, _ = crosstalk_slope(means[p], means[q], mask, shift + np.array([a, bb]), sigma)
                    null_xy[j] += b3[0] if len(b3) else 0.0
                    null_xx[j] += A3[0, 0] if len(b3) else 0.0
            c = xy1 / xx1 if xx1 > 0 else float("nan")
            collinear, axial, method = float("nan"), float("nan"), "recorded"
            if offsets is not None and XX[0, 0] > 0 and XX[1, 1] > 0:
                collinear = float(XX[0, 1] / np.sqrt(XX[0, 0] * XX[1, 1]))
                if abs(collinear) <= MAX_COLLINEARITY:
                    c, axial = (float(v) for v in np.linalg.solve(XX, Xy))
                    method = "joint"
            null = null_xy / np.where(null_xx > 0, null_xx, np.nan)
            nm, ns = (float(np.nanmean(null)), float(np.nanstd(null))) if pairs else (np.nan, np.nan)
            rows.append(dict(separation=k, coefficient=c, method=method, collinearity=collinear,
                             axial=axial, pair_min=min(per) if per else np.nan,
                             pair_max=max(per) if per else np.nan, null_mean=nm, null_std=ns,
                             n_pixels=npx, n_plane_pairs=pairs, votes=votes, votes_against=against,
                             significant=bool(pairs and c >= min_coefficient and c > nm + 3 * ns
                                              and votes >= 3 and 3 * votes >= votes + against)))
    return rows


# ----------------------------------------------------------------------------- traces
def activity(F: np.ndarray, Fneu: np.ndarray, neucoeff: float, fs: float, tau: float) -> np.ndarray:
    """Neuropil-subtracted traces, slow baseline removed (Gaussian, sigma 10 tau) and smoothed
    (sigma tau / 4), in frames; rows = ROIs."""
    x = np.asarray(F, np.float64) - neucoeff * np.asarray(Fneu, np.float64)
    if x.shape[-1] < 3:
        return x - x.mean(axis=-1, keepdims=True)
    x = x - gaussian_filter1d(x, max(1.0, 10 * tau * fs), axis=-1, mode="reflect")
    return gaussian_filter1d(x, max(0.5, tau * fs / 4), axis=-1, mode="reflect")


def snr(F: np.ndarray, Fneu: np.ndarray, neucoeff: float, fs: float, tau: float) -> np.ndarray:
    """Signal-to-noise per ROI: std of :func:`activity` over the noise of the unsmoothed,
    baseline-removed trace (1.4826 MAD of its frame-to-frame differences / sqrt 2)."""
    x = np.asarray(F, np.float64) - neucoeff * np.asarray(Fneu, np.float64)
    if x.shape[0] == 0 or x.shape[-1] < 3:
        return np.zeros(x.shape[0])
    d = np.diff(x, axis=-1)
    noise = 1.4826 * np.median(np.abs(d - np.median(d, axis=-1, keepdims=True)), axis=-1) / np.sqrt(2)
    a = activity(F, Fneu, neucoeff, fs, tau)
    return a.std(axis=-1) / np.maximum(noise, 1e-9)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else 0.0


# ----------------------------------------------------------------------------- pairs
def candidate_pairs(ra: Rois, rb: Rois, shift, shape, min_overlap: float, radius: float):
    """(i, j, overlap) for ROIs i of plane a and j of plane b whose footprints overlap by at
    least ``min_overlap`` once plane b's ROIs are moved by ``-shift`` into plane a's frame."""
    if ra.n == 0 or rb.n == 0:
        return []
    tree = cKDTree(ra.med)
    out = []
    moved = rb.med - np.asarray(shift, float)[None]
    for j, near in enumerate(tree.query_ball_point(moved, r=radius)):
        if not near:
            continue
        pb = rb.pixels(j, -shift[0], -shift[1], shape)
        for i in near:
            o = overlap(ra.pixels(i, shape=shape), pb)
            if o >= min_overlap:
                out.append((i, j, o))
    return out


def group_rois(n_per_plane: list[int], edges: dict, compatible, plane_distance: int) -> list[list]:
    """Complete-linkage grouping of ROIs ``(plane, roi)`` across planes.

    ``edges``: {((p, i), (q, j)): score} of pairs that match (p < q, at most
    ``plane_distance`` apart). Pairs are taken by decreasing score; two groups merge only
    when they share no plane and *every* cross pair of members at most ``plane_distance``
    apart is itself an edge, and every farther cross pair passes ``compatible(a, b)``
    (footprints still overlap). So A-B and B-C never pull in an unrelated C.
    Returns the groups (lists of (plane, roi)), every ROI in exactly one.
    """
    group = {(p, i): frozenset([(p, i)]) for p, n in enumerate(n_per_plane) for i in range(n)}
    for (a, b), _ in sorted(edges.items(), key=lambda kv: -kv[1]):
        ga, gb = group[a], group[b]
        if ga is gb:
            continue
        if {m[0] for m in ga} & {m[0] for m in gb}:
            continue
        ok = True
        for x in ga:
            for y in gb:
                u, v = (x, y) if x[0] < y[0] else (y, x)
                if v[0] - u[0] <= plane_distance:
                    ok = (u, v) in edges
                else:
                    ok = compatible(u, v)
                if not ok:
                    break
            if not ok:
                break
        if ok:
            merged = ga | gb
            for m in merged:
                group[m] = merged
    seen, out = set(), []
    for g in group.values():
        if id(g) not in seen:
            seen.add(id(g))
            out.append(sorted(g))
    return sorted(out)


# ----------------------------------------------------------------------------- aligned volume
def aligned_image(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Plane image moved into plane 0's frame (subpixel, linear): out[y, x] = img[y + dy, x + dx];
    0 where the plane did not image."""
    from scipy.ndimage import shift

    return shift(np.asarray(img, np.float32), (-float(dy), -float(dx)), order=1, mode="constant", cval=0.0)


def cell_labels(stats: list, cell_ids: list, offsets: np.ndarray, shape) -> np.ndarray:
    """(planes, Ly, Lx) label image in plane 0's frame: every ROI's pixels, moved by minus its
    plane's offset (rounded), hold its cell id (``cell_ids[p][i]``; 0 or None = not drawn), so one
    cell has one label in every plane it spans."""
    Ly, Lx = shape
    out = np.zeros((len(stats), Ly, Lx), np.int32)
    for p, (stat, ids) in enumerate(zip(stats, cell_ids)):
        dy, dx = int(round(offsets[p][0])), int(round(offsets[p][1]))
        for s, cid in zip(stat, ids):
            if not cid:
                continue
            y = np.asarray(s["ypix"], np.int64) - dy
            x = np.asarray(s["xpix"], np.int64) - dx
            ok = (y >= 0) & (y < Ly) & (x >= 0) & (x < Lx)
            out[p, y[ok], x[ok]] = int(cid)
    return out


# ----------------------------------------------------------------------------- crosstalk in binaries
#: share of a source plane's pixels (the most active) whose activity is followed into the
#: target plane when the coefficient is measured from the binaries (before detection)
ACTIVE_FRACTION = 0.05
#: largest crosstalk coefficient measured from the binaries: a source pixel where the target is
#: at least this active (relative amplitude) holds the target's own cell or tissue seen in
#: both planes, not crosstalk, and is left out
MAX_COEFFICIENT = 0.5


def move_frames(frames: np.ndarray, dy, dx) -> np.ndarray:
    """Frames moved by whole pixels, one displacement per frame: ``out[t, y + dy[t], x + dx[t]]
    = frames[t, y, x]``; uncovered pixels are 0 (float32)."""
    frames = np.asarray(frames, np.float32)
    out = np.zeros(frames.shape, np.float32)
    T, Ly, Lx = frames.shape
    dy = np.broadcast_to(np.rint(np.asarray(dy, float)).astype(int), (T,))
    dx = np.broadcast_to(np.rint(np.asarray(dx, float)).astype(int), (T,))
    for t in range(T):
        a, b = int(dy[t]), int(dx[t])
        if abs(a) >= Ly or abs(b) >= Lx:
            continue
        ys, yd = (slice(0, Ly - a), slice(a, Ly)) if a >= 0 else (slice(-a, Ly), slice(0, Ly + a))
        xs, xd = (slice(0, Lx - b), slice(b, Lx)) if b >= 0 else (slice(-b, Lx), slice(0, Lx + b))
        out[t, yd, xd] = frames[t, ys, xs]
    return out


def source_in_target(frames: np.ndarray, yoff_src, xoff_src, yoff_tgt, xoff_tgt) -> np.ndarray:
    """A source plane's registered frames moved onto a target plane's registered frames at
    the same *recorded* pixels, frame by frame from the two planes' rigid registration
    offsets: a recorded pixel at ``x`` of the source's registered frame ``t`` is at
    ``x + off_src[t] - off_tgt[t]`` in the target's (non-rigid offsets are not followed)."""
    return move_frames(frames, np.asarray(yoff_src, float) - np.asarray(yoff_tgt, float),
                       np.asarray(xoff_src, float) - np.asarray(xoff_tgt, float))


def activity_frames(frames: np.ndarray, sigma: float) -> np.ndarray:
    """Frames minus their per-pixel mean, spatially high-passed (Gaussian ``sigma`` px), so
    that what stays is the fast, local activity of cells, not static structure."""
    x = np.asarray(frames, np.float32)
    x = x - x.mean(axis=0, keepdims=True)
    return x - gaussian_filter(x, (0, sigma, sigma))


def crosstalk_ratios(src: np.ndarray, tgt: np.ndarray, mask: np.ndarray, shift=(0, 0)) -> np.ndarray:
    """Per source pixel of ``mask``: the slope of the target's activity on the source's at the
    same pixel (``shift``: target read that far away, for the null), by lag-1 instrumental
    variables: ``sum(T[t] S[t-1] + T[t-1] S[t]) / sum(2 S[t] S[t-1])``, and the denominator
    (the pixel's weight; 0 where it is not positive). Shot noise is independent from frame to
    frame and between planes, so it biases neither sum (an ordinary regression would be
    pulled towards 0 by the source's noise)."""
    T = tgt
    if shift[0] or shift[1]:
        T = np.roll(tgt, (-int(shift[0]), -int(shift[1])), axis=(1, 2))
    s, t = src[:, mask], T[:, mask]
    num = (t[1:] * s[:-1]).sum(0) + (t[:-1] * s[1:]).sum(0)
    den = 2 * (s[1:] * s[:-1]).sum(0)
    return num / np.where(den > 0, den, np.nan), np.maximum(den, 0)


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    """Median of ``values`` with ``weights`` (nan values and zero weights left out)."""
    ok = np.isfinite(values) & (weights > 0)
    if not ok.any():
        return float("nan")
    v, w = values[ok], weights[ok]
    order = np.argsort(v)
    cw = np.cumsum(w[order])
    return float(v[order][np.searchsorted(cw, 0.5 * cw[-1])])


def active_mask(src: np.ndarray, edge: int, fraction: float = ACTIVE_FRACTION) -> np.ndarray:
    """The ``fraction`` of pixels with the largest lag-1 autocovariance of activity (cells
    that fire; noise has none), away from the frame's edge."""
    ac = (src[1:] * src[:-1]).mean(0)
    inner = np.zeros(ac.shape, bool)
    inner[edge:ac.shape[0] - edge, edge:ac.shape[1] - edge] = True
    if not inner.any():
        return inner
    return inner & (ac >= np.quantile(ac[inner], 1.0 - fraction)) & (ac > 0)


def crosstalk_pair(src: np.ndarray, tgt: np.ndarray, diameter: float) -> dict:
    """Coefficient of crosstalk from a source into a target plane from their activity
    (:func:`activity_frames`, the source already moved onto the target's recorded pixels):
    the median of :func:`crosstalk_ratios` over the source's most active pixels, weighted by
    their denominators (robust to a minority of pixels that share tissue, a cell seen in both
    planes, and to weak pixels), leaving out those where the target is itself at least
    MAX_COEFFICIENT as active (its own cell, or tissue both planes see), and a null: the same
    with the target read 1.5 diameters away in 8 directions (mean and std of those medians)."""
    d = max(6, int(round(1.5 * diameter)))
    mask = active_mask(src, d + 1)
    mask &= (tgt[1:] * tgt[:-1]).mean(0) < MAX_COEFFICIENT ** 2 * (src[1:] * src[:-1]).mean(0)
    if mask.sum() < 10:
        return dict(coefficient=np.nan, null_mean=np.nan, null_std=np.nan, n_pixels=0)
    c = weighted_median(*crosstalk_ratios(src, tgt, mask))
    null = [weighted_median(*crosstalk_ratios(src, tgt, mask, (a * d, b * d)))
            for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0)]
    return dict(coefficient=c, null_mean=float(np.mean(null)), null_std=float(np.std(null)),
                n_pixels=int(mask.sum()))


def crosstalk_table(pairs: dict, max_separation: int, nplanes: int, min_coefficient: float) -> list[dict]:
    """One row per signed separation ``k`` from :func:`crosstalk_pair` results
    ``pairs[(p, q)]`` (lists, one per part): coefficient and null pooled by pixel-weighted
    mean. The regression cannot fully tell ``p -> p + k`` from the reverse (tissue shared by
    both planes reads both ways), so ``k`` is ``significant`` only when its coefficient reaches
    ``min_coefficient``, stands 3 null standard deviations above the null mean and exceeds
    the reverse direction's (``-k``) by ``min_coefficient``."""
    rows = {}
    for ks in range(1, min(max_separation, nplanes - 1) + 1):
        for k in (ks, -ks):
            res = [r for p in range(nplanes) if 0 <= p + k < nplanes
                   for r in pairs.get((p, p + k), []) if r["n_pixels"] and np.isfinite(r["coefficient"])]
            w = np.array([r["n_pixels"] for r in res], float)
            if not len(res):
                rows[k] = dict(separation=k, coefficient=np.nan, null_mean=np.nan, null_std=np.nan,
                               pair_min=np.nan, pair_max=np.nan, n_pixels=0, n_plane_pairs=0)
                continue
            c = [r["coefficient"] for r in res]
            rows[k] = dict(separation=k, coefficient=float(np.dot(w, c) / w.sum()),
                           null_mean=float(np.dot(w, [r["null_mean"] for r in res]) / w.sum()),
                           null_std=float(np.dot(w, [r["null_std"] for r in res]) / w.sum()),
                           pair_min=min(c), pair_max=max(c), n_pixels=int(w.sum()), n_plane_pairs=len(res))
    for k, r in rows.items():
        c, back = r["coefficient"], rows.get(-k, {}).get("coefficient", np.nan)
        r["significant"] = bool(r["n_plane_pairs"] and c >= min_coefficient
                                and c > r["null_mean"] + 3 * r["null_std"]
                                and not (np.isfinite(back) and back > c - min_coefficient))
    return list(rows.values())


def subtract_crosstalk(target: np.ndarray, sources: list[tuple[float, np.ndarray]]) -> np.ndarray:
    """Frames of a target plane with crosstalk taken out at the same recorded pixels:
    ``target - sum(c * source)`` over ``sources`` (``(c, frames)``, each already moved onto
    the target's recorded pixels, :func:`source_in_target`), rounded and clipped to int16.
    First order: a source's own received crosstalk goes out with it (an error of ``c**2``)."""
    out = np.asarray(target, np.float32).copy()
    for c, src in sources:
        out -= np.float32(c) * np.asarray(src, np.float32)
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


# ----------------------------------------------------------------------------- scan fields
def field_index(fields: list[dict], y: float, x: float) -> int | None:
    """The scan field (index into ``fields``, :func:`planeflow.plan.session.scan_fields`)
    whose rectangle of the plane image holds pixel ``(y, x)``; None outside every field
    (fly-to lines of an unstitched page)."""
    for k, f in enumerate(fields):
        y0, x0, h, w = f["rect"]
        if y0 - 0.5 <= y < y0 + h - 0.5 and x0 - 0.5 <= x < x0 + w - 0.5:
            return k
    return None


def field_um(field: dict, y: float, x: float) -> tuple[float, float]:
    """Microscope position (y_um, x_um) of plane-image pixel ``(y, x)`` (its centre; may lie
    beyond the field's edge, e.g. after a plane offset) in the scan field ``field``.

    Pixel ``(r, c)`` of a field of ``h x w`` pixels spanning ``size_um`` around ``center_um``
    is at ``center - size / 2 + (index + 0.5) * size / pixels`` per axis, as ScanImage's
    ``pixelToRefTransform`` places pixel centres."""
    y0, x0, h, w = field["rect"]
    (cy, cx), (sy, sx) = field["center_um"], field["size_um"]
    return (cy - sy / 2 + (y - y0 + 0.5) * sy / h,
            cx - sx / 2 + (x - x0 + 0.5) * sx / w)


def part_reference_shifts(parts: list[dict]) -> np.ndarray:
    """(parts, 2): where each part's registered frame lies against part 0's, for a plane
    processed in separate parts (``acquisition.roi_mode: separate``; ``parts`` = merged
    ``ops["parts"]`` with each part's rigid ``yoff``/``xoff``).

    The parts of a plane are recorded in the same frames, so they share one motion, but
    each is registered on a reference image of its own: a feature that part 0's registered
    frame shows at ``u + c_0`` its part ``k`` shows at ``u + c_k``, and
    ``c_k - c_0 = median_t(yoff_0 - yoff_k)`` (suite2p: ``yoff = motion - c``). Zeros for
    parts without offsets or with another number of frames."""
    out = np.zeros((len(parts), 2))
    if not parts or parts[0].get("yoff") is None:
        return out
    y0, x0 = np.asarray(parts[0]["yoff"], float).ravel(), np.asarray(parts[0]["xoff"], float).ravel()
    for k, q in enumerate(parts[1:], start=1):
        if q.get("yoff") is None or len(np.ravel(q["yoff"])) != len(y0) or len(y0) == 0:
            continue
        out[k] = (np.median(y0 - np.asarray(q["yoff"], float).ravel()),
                  np.median(x0 - np.asarray(q["xoff"], float).ravel()))
    return out


def realign_parts(img: np.ndarray, rects: list, shifts: np.ndarray) -> np.ndarray:
    """``img`` with each part's crop (``rects`` = [y0, x0, h, w]) moved by minus its
    :func:`part_reference_shifts` (subpixel, linear; edges repeated): every part then shows
    the plane as part 0's registered frame does."""
    from scipy.ndimage import shift

    out = np.array(img, np.float64)
    for (y0, x0, h, w), d in zip(rects, shifts):
        if np.any(d):
            out[y0:y0 + h, x0:x0 + w] = shift(out[y0:y0 + h, x0:x0 + w], (-d[0], -d[1]), order=1, mode="nearest")
    return out


def roi_fields(rois: Rois, rects: list) -> list:
    """Index of the part / field (``rects`` = [y0, x0, h, w] each) holding each ROI's centre
    (None: outside every one)."""
    fields = [{"rect": r} for r in rects]
    return [field_index(fields, *rois.med[i]) for i in range(rois.n)]


def move_part_rois(rois: Rois, parts: list, shifts: np.ndarray) -> Rois:
    """``rois`` of one plane with each ROI (in part ``parts[i]``) moved by minus its part's
    ``shifts[k]`` (:func:`part_reference_shifts`) into part 0's registered frame, as
    :func:`realign_parts` moves the images (ROI pixels by whole pixels, centres exactly).
    Brightness (contrast) stays as measured where the ROI was recorded. Returns a moved copy;
    ``rois`` itself (recorded positions, for crosstalk) is left as it is."""
    import copy

    rois = copy.copy(rois)
    rois.ypix, rois.xpix, rois.med = list(rois.ypix), list(rois.xpix), rois.med.copy()
    for i, k in enumerate(parts):
        if k is None or not np.any(shifts[k]):
            continue
        dy, dx = shifts[k]
        rois.ypix[i] = rois.ypix[i] - int(round(dy))
        rois.xpix[i] = rois.xpix[i] - int(round(dx))
        rois.med[i] = rois.med[i] - (dy, dx)
    return rois


def volume_um(y: float, x: float, field: int | None, fields: list | None, dy_um, dx_um):
    """(y_um, x_um) of a point at plane-0 pixel ``(y, x)`` recorded in scan field ``field``:
    the field's microscope position (:func:`field_um`) for a multi-ROI session with known
    fields, else the pixel times the pixel size (None where unknown)."""
    if fields:
        return field_um(fields[field], y, x) if field is not None else (None, None)
    return (y * dy_um if dy_um is not None else None, x * dx_um if dx_um is not None else None)
