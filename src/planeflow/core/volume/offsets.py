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
#: spatial high-pass before the phase correlation (Gaussian sigma, px): slow background and
#: vignetting, which do not move with the tissue, are left out
HIGHPASS_PX = 8.0
#: whitening exponent of the phase correlation: the spectrum is divided by its magnitude to
#: this power (1 = pure phase correlation, 0 = plain cross-correlation). Measured on the hard
#: simulator and the 4-plane workflow test, 1 placed every bright plane within 0.5 px where
#: 0.5 let a spurious far pair through
WHITEN = 1.0
#: planes compared with each other when offsets are solved jointly: every pair at most this
#: many planes apart
PAIR_SEPARATION = 3
#: a pair whose displacement disagrees with the joint solution by more than this (px) is an
#: outlier (Tukey's biweight cut-off of the reweighting)
OUTLIER_PX = 2.0


def phase_offset(ref: np.ndarray, img: np.ndarray, max_shift: float | None = None):
    """Displacement ``(dy, dx)`` of ``img`` relative to ``ref`` by phase correlation, and a
    confidence in [0, 1].

    A feature at ``(y, x)`` of ``ref`` lies at ``(y + dy, x + dx)`` in ``img``. Both
    images are high-passed (Gaussian sigma HIGHPASS_PX), tapered (Hann window) and
    whitened (WHITEN); the correlation surface is smoothed (sigma 1 px) and its peak
    refined to subpixel by a parabola per axis. Confidence from the peak's height ``z``
    above the surface's median in robust standard deviations (1.4826 MAD):
    ``1 - exp(-(z - z0) / 10)`` (0 below ``z0``), with ``z0 = sqrt(2 ln N) + 2`` a little
    above the highest peak N unrelated pixels reach by chance. Unrelated or blank images
    give about 0.
    """
    ref = np.asarray(ref, dtype=np.float64)
    img = np.asarray(img, dtype=np.float64)
    Ly, Lx = min(ref.shape[0], img.shape[0]), min(ref.shape[1], img.shape[1])
    ref, img = ref[:Ly, :Lx], img[:Ly, :Lx]
    if Ly < 8 or Lx < 8 or not (np.isfinite(ref).all() and np.isfinite(img).all()) \
            or ref.std() == 0 or img.std() == 0:
        return 0.0, 0.0, 0.0
    sigma = min(HIGHPASS_PX, min(Ly, Lx) / 4)
    win = np.outer(np.hanning(Ly), np.hanning(Lx))

    def spectrum(a):
        a = a - gaussian_filter(a, sigma, mode="reflect")
        return np.fft.fft2((a - a.mean()) * win)

    fa, fb = spectrum(ref), spectrum(img)
    cross = fb * np.conj(fa)
    mag = np.abs(cross)
    cross /= (mag + 1e-12 * mag.max()) ** WHITEN
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


def pair_displacements(means: list[np.ndarray], separation: int = PAIR_SEPARATION) -> list[tuple]:
    """:func:`phase_offset` of every plane pair ``(i, j)``, ``0 < j - i <= separation``:
    ``(i, j, dy, dx, confidence)``, the displacement of plane ``j`` relative to plane ``i``."""
    n = len(means)
    return [(i, j, *phase_offset(means[i], means[j])) for i in range(n)
            for j in range(i + 1, min(n, i + separation + 1))]


def solve_offsets(n: int, pairs: list[tuple], fixed: dict, min_confidence: float,
                  iterations: int = 20) -> tuple[np.ndarray, np.ndarray, list]:
    """Offsets of ``n`` planes from pairwise displacements, jointly.

    ``pairs``: ``(i, j, dy, dx, confidence)`` (plane ``j`` at ``offset[i] + (dy, dx)``),
    ``fixed``: {plane: (dy, dx)} anchors. Weighted least squares over every pair at least
    ``min_confidence`` confident, weight ``confidence ** 2``, reweighted by Tukey's biweight
    of each pair's disagreement with the solution (cut-off OUTLIER_PX), so that one wrong
    pair cannot move the others. Returns the offsets (nan where a plane is not linked to an
    anchor), each pair's final weight, and the inlier pairs of each plane (lists of pair
    indices)."""
    pairs = [p for p in pairs if p[4] >= min_confidence]
    free = [k for k in range(n) if k not in fixed]
    col = {k: c for c, k in enumerate(free)}
    # planes linked to an anchor through confident pairs
    linked, grow = set(fixed), True
    while grow:
        grow = False
        for i, j, *_ in pairs:
            if (i in linked) != (j in linked):
                linked |= {i, j}
                grow = True
    use = [p for p in pairs if p[0] in linked and p[1] in linked]
    off = np.full((n, 2), np.nan)
    for k, v in fixed.items():
        off[k] = v
    w0 = np.array([p[4] ** 2 for p in use])
    w = w0.copy()
    unknown = [k for k in free if k in linked]
    if use and unknown:
        A = np.zeros((len(use), len(free)))
        b = np.zeros((len(use), 2))
        for r, (i, j, dy, dx, _c) in enumerate(use):
            b[r] = (dy, dx)
            for k, sign in ((j, 1.0), (i, -1.0)):
                if k in col:
                    A[r, col[k]] += sign
                else:
                    b[r] -= sign * np.asarray(fixed[k], float)
        keep = [col[k] for k in unknown]
        A = A[:, keep]
        # graduated cut-off: a far-off pair is let go first, while the solution is still
        # pulled by it, and the cut-off narrows to OUTLIER_PX
        for cut in (8 * OUTLIER_PX, 4 * OUTLIER_PX, 2 * OUTLIER_PX, OUTLIER_PX):
            for _ in range(iterations):
                sw = np.sqrt(w)[:, None]
                x, *_ = np.linalg.lstsq(A * sw, b * sw, rcond=None)
                resid = np.linalg.norm(A @ x - b, axis=1)
                new = w0 * np.where(resid < cut, (1 - (resid / cut) ** 2) ** 2, 0.0)
                if np.allclose(new, w):
                    break
                w = new
        for k, c in zip(unknown, keep):
            off[k] = x[keep.index(c)]
    inliers = [[r for r, p in enumerate(use) if k in p[:2] and w[r] > 0] for k in range(n)]
    return off, np.asarray(w), inliers, use


#: a plane pair whose displacement lies within this distance (px) of where one plane's crosstalk
#: ghost lies in the other (:func:`plane_offsets`' ``ghosts``) measured the ghost, not the tissue
GHOST_PX = 1.0


def plane_offsets(means: list[np.ndarray], overrides: dict | None = None,
                  min_confidence: float = 0.2, separation: int = PAIR_SEPARATION,
                  ghosts: dict | None = None) -> list[dict]:
    """Offsets of every plane relative to plane 0 (index 0 of ``means``), solved jointly over
    every plane pair at most ``separation`` apart (:func:`pair_displacements`,
    :func:`solve_offsets`): a dim plane is placed by all its neighbours together, and a plane
    compared across a dim one does not inherit its error.

    ``overrides`` (index -> (dy, dx), or -> {"offset": (dy, dx), "source": "config" |
    "sheet"}) fix planes (``source`` = where they were set, default ``config``); pairs across
    an overridden plane are not used, so the planes after it chain from it. Plane 0 is
    the anchor, at (0, 0), unless overridden; when plane 0 has no confident pair (blank), the
    first plane that has one takes plane 0's offset and anchors the rest. A plane no confident
    pair links to an anchor is interpolated linearly (per axis, in plane index) between the
    nearest placed planes on either side, or copied from the nearest one at the ends
    (``source = interpolated``).

    ``ghosts``: {(source, target): (dy, dx)} where a source plane's crosstalk ghost lies in the
    target (the same recorded pixel: ``raw[source] - raw[target]``), for the separations where
    crosstalk was found. A pair whose displacement is within GHOST_PX of it is left out: the
    mean images, even with the crosstalk taken out, then compared what is left of the ghost
    (a dim plane under crosstalk 12x its own light: hard simulator, seed 12, c 0.3 at k = 2,
    placed on its source's ghost 3.7 px from its tissue with confidence 0.82).

    Returns one dict per plane: ``dy_px, dx_px, confidence`` (1 minus the product of one minus
    the confidences of the pairs that agree with the solution: the chance that at least one of
    them is right), ``source``, ``pair`` (the plane of its most confident agreeing pair, or
    None) and ``n_pairs`` (agreeing pairs).
    """
    overrides = {k: v if isinstance(v, dict) else {"offset": v, "source": "config"}
                 for k, v in (overrides or {}).items()}
    n = len(means)
    # an override splits the planes: pairs that reach across it are left out, so that the
    # planes after it chain from it (the images cannot outvote what the user set)
    pairs = [p for p in pair_displacements(means, separation)
             if not any(p[0] < k < p[1] for k in overrides)]
    if ghosts:
        def on_ghost(p):
            for a, b, sign in ((p[0], p[1], 1.0), (p[1], p[0], -1.0)):
                g = ghosts.get((a, b))
                if g is not None and np.hypot(sign * p[2] - g[0], sign * p[3] - g[1]) <= GHOST_PX:
                    return True
            return False

        pairs = [p for p in pairs if not on_ghost(p)]
    fixed = {k: tuple(float(a) for a in o["offset"]) for k, o in overrides.items()}
    if 0 not in fixed:
        touching = {k for p in pairs if p[4] >= min_confidence for k in p[:2]}
        anchor = 0 if 0 in touching or not touching or fixed else min(touching)
        fixed[anchor] = (0.0, 0.0)
    off, w, inliers, use = solve_offsets(n, pairs, fixed, min_confidence)
    rows = []
    for k in range(n):
        good = [use[r] for r in inliers[k]]
        conf = float(1.0 - np.prod([1.0 - p[4] for p in good])) if good else \
            max([p[4] for p in pairs if k in p[:2]], default=0.0)
        best = max(good, key=lambda p: p[4], default=None)
        partner = None if best is None else (best[1] if best[0] == k else best[0])
        if k in overrides:
            row = dict(confidence=1.0, source=overrides[k].get("source", "config"))
        elif k in fixed:
            row = dict(confidence=conf if good else 1.0, source="estimated")
        elif np.isfinite(off[k, 0]):
            row = dict(confidence=conf, source="estimated")
        else:
            row = dict(confidence=conf, source="interpolated")
        rows.append(dict(dy_px=float(off[k, 0]), dx_px=float(off[k, 1]), **row, pair=partner,
                         n_pairs=len(good)))
    placed = [k for k in range(n) if np.isfinite(off[k, 0])]
    for k in range(n):
        if np.isfinite(off[k, 0]):
            continue
        lo = max((j for j in placed if j < k), default=None)
        hi = min((j for j in placed if j > k), default=None)
        if lo is not None and hi is not None:
            t = (k - lo) / (hi - lo)
            value = (1 - t) * off[lo] + t * off[hi]
        else:
            j = lo if lo is not None else hi
            value = off[j] if j is not None else np.zeros(2)
        rows[k].update(dy_px=float(value[0]), dx_px=float(value[1]))
    return rows


def field_plane_offsets(means: list[np.ndarray], rects: list, overrides: dict | None = None,
                        min_confidence: float = 0.2, ghosts: dict | None = None) -> list[dict]:
    """:func:`plane_offsets` of an image made of several fields (mROI stripes side by side,
    ``rects`` = [y0, x0, h, w] each, moved into one frame beforehand), field by field: a
    seam between two fields stays put from plane to plane and would pull a whole-image
    estimate towards 0. Per plane, the fields' estimates are averaged weighted by their
    confidence (the largest is the plane's); a plane no field placed is interpolated
    (the fields' interpolations averaged). One field or none: :func:`plane_offsets`. ``ghosts``:
    as :func:`plane_offsets`."""
    if len(rects) < 2:
        return plane_offsets(means, overrides, min_confidence, ghosts=ghosts)
    per = [plane_offsets([m[y0:y0 + h, x0:x0 + w] for m in means], overrides, min_confidence, ghosts=ghosts)
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
