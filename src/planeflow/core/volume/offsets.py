"""Plane offsets: where each plane's registered frames lie against plane 0's.

A plane offset ``(dy, dx)`` of plane ``p``: a feature at plane-0 pixel ``(y, x)`` of the registered
frames lies at ``(y + dy, x + dx)`` in plane ``p``'s registered frames (plane 0 has ``(0, 0)``).
``raw[p]`` (:func:`recorded_shifts`) is the median registration shift of plane ``p`` against plane 0:
the same recorded pixel is at ``(y, x) + raw[p] - raw[q]`` in plane ``q``'s registered frame.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


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


# ----------------------------------------------------------------------------- aligned volume
def aligned_image(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Plane image moved into plane 0's frame (subpixel, linear): out[y, x] = img[y + dy, x + dx];
    0 where the plane did not image."""
    from scipy.ndimage import shift

    return shift(np.asarray(img, np.float32), (-float(dy), -float(dx)), order=1, mode="constant", cval=0.0)
