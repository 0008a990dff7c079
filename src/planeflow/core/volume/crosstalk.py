"""Crosstalk between planes: plane ``p + k`` receives ``c`` times plane ``p``'s light at the same
recorded pixel (``k``, the separation, may be negative). Measured on mean images and ROIs
(:func:`estimate_crosstalk`, rule volume_stats) or on frames (:func:`crosstalk_pair`,
:func:`crosstalk_table`, rule crosstalk), and taken out of frames (:func:`subtract_crosstalk`)."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from planeflow.core.volume.rois import Rois, candidate_pairs
from planeflow.core.volume.offsets import shift_image

#: a crosstalk ghost is at most this bright (mean-image contrast) relative to its source
GHOST_MAX_RATIO = 0.5


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
#: smallest uncertainty of one plane pair's coefficient: what the null probes cannot see
#: (beams that differ a little from pair to pair, a plane's own structure at the probe
#: distance); keeps one very clean pair from taking all the weight
PAIR_SIGMA_FLOOR = 0.01
#: a plane pair whose shared tissue lies within this distance (px) of the recorded pixel cannot
#: tell crosstalk from a cell both planes see, where the cell diameter is not known (else
#: TISSUE_REACH diameters); its coefficient is left out when the reverse pair shows shared
#: tissue (:func:`crosstalk_table`)
AMBIGUOUS_PX = 1.5
#: ... and at least this fraction of the pair's coefficient (a cell both planes see adds about
#: 0.05 to the pair, whatever the crosstalk; measured on the hard simulator at k = 1, c 0.05-0.3,
#: seed 11: 0.2 let a 0.05 excess through at c = 0.15, 0.33 left out a pair needed at c = 0.3);
#: the reverse is first scaled by the planes' brightness (:func:`tissue_part`). Subtracting that
#: part instead of leaving the pair out was measured worse (the reverse grows with c: 0.269 and
#: 0.254 for 0.3 at k = 1, seeds 11 and 12)
AMBIGUOUS_REVERSE = 0.25
#: a pair's shared tissue counts as near the recorded pixel within this many cell diameters
#: (``tissue_px``; AMBIGUOUS_PX where the pair's diameter is not known): a cell a few px off still
#: covers most of the recorded pixel's footprint (hard simulator, seed 12, k = 1, cells 10 px:
#: pairs with tissue 3.1 and 3.5 px off read 0.176 and 0.201 at c = 0.15)
TISSUE_REACH = 0.5


def combine_pairs(values, sigmas) -> tuple[float, float, np.ndarray]:
    """Precision-weighted mean of per-pair coefficients ``values`` with uncertainties
    ``sigmas`` (floored at PAIR_SIGMA_FLOOR), robust: a pair more than 3 of its own
    uncertainties (plus the others' scatter) from the others' combination gets no weight, so a
    dim, failed or reversed plane pair cannot pull the value. Returns the coefficient, its
    uncertainty (inflated by the scatter of the pairs when they disagree more than their
    uncertainties say: Birge ratio) and each pair's final weight (nan values: 0)."""
    v = np.asarray(values, float)
    s = np.maximum(np.nan_to_num(np.asarray(sigmas, float), nan=np.inf), PAIR_SIGMA_FLOOR)
    ok = np.isfinite(v) & np.isfinite(s)
    w = np.where(ok, 1.0 / s ** 2, 0.0)
    if not ok.any():
        return float("nan"), float("nan"), w
    keep = ok.copy()
    for _ in range(len(v)):
        if keep.sum() < 3:
            break
        # leave-one-out: each pair against the weighted mean of the others
        worst, worst_z = None, 3.0
        for i in np.flatnonzero(keep):
            rest = keep.copy()
            rest[i] = False
            m = np.dot(w[rest], v[rest]) / w[rest].sum()
            spread = np.sqrt(1.0 / w[rest].sum() + s[i] ** 2)
            z = abs(v[i] - m) / spread
            if z > worst_z:
                worst, worst_z = i, z
        if worst is None:
            break
        keep[worst] = False
    w = np.where(keep, w, 0.0)
    c = float(np.dot(w, np.nan_to_num(v)) / w.sum())
    sigma = float(np.sqrt(1.0 / w.sum()))
    if keep.sum() >= 2:
        chi2 = float(np.dot(w, (np.nan_to_num(v) - c) ** 2)) / (keep.sum() - 1)
        sigma *= max(1.0, np.sqrt(chi2))
    return c, sigma, w


def pairs_text(pairs: list[tuple]) -> str:
    """``source>target:coefficient±uncertainty`` of each plane pair (plane indices), ``;``
    separated; pairs left out of the combination end with ``*``."""
    return ";".join(f"{p}>{q}:{c:.3g}\u00b1{e:.2g}{'' if w > 0 else '*'}" for p, q, c, e, w in pairs)


def _pair_slope(A, b) -> float:
    return float(b[0] / A[0, 0]) if A[0, 0] > 0 else float("nan")


def estimate_crosstalk(rois: list[Rois], means: list[np.ndarray], raw: np.ndarray,
                       max_separation: int, min_coefficient: float, diameter: float,
                       offsets: np.ndarray | None = None) -> list[dict]:
    """Crosstalk coefficient per signed plane separation ``k`` (1..max_separation and its
    negatives), measured plane pair by plane pair and combined by precision.

    For each pair (``p``, ``p + k``): plane ``p + k``'s mean image regressed on plane ``p``'s at
    the recorded pixels of ``p``'s accepted ROIs (:func:`source_mask`), both high-passed
    (Gaussian sigma diameter / 3, so that slow background does not count). Planes also share
    tissue (a cell between them, vessels) at the plane *offsets*; with ``offsets`` (a first
    estimate) that is a second regressor, so that shared tissue is not counted as crosstalk,
    where the two displacements can be told apart (collinearity at most MAX_COLLINEARITY; the
    pair's ``method`` is then ``joint``, otherwise ``recorded`` and its coefficient an upper
    bound). The pair's uncertainty is the spread of the same regression with the target read
    1.5 diameters away (8 directions: what unrelated pixels give), its null the mean of those.
    The pairs are combined by :func:`combine_pairs` (precision-weighted, a pair that
    disagrees with the others left out), so a dim plane's pair, precise or not, counts for
    what it is worth. ``method`` of the row: that of most of the weight.

    The regression alone cannot tell plane ``p`` leaking into ``p + k`` from the reverse, so
    ``votes`` counts ROI pairs on the same recorded pixels whose dimmer member is in the
    target (:func:`ghost_votes`; ``votes_against`` the reverse). ``significant`` when the
    coefficient reaches ``min_coefficient``, stands three uncertainties above zero and its
    null, and at least 3 votes and a third of the pairs point this way."""
    n = len(means)
    sigma = max(1.0, diameter / 3)
    d = max(6, int(round(1.5 * diameter)))
    probes = [(a * d, b * d) for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0)]
    rows = []
    for ks in range(1, min(max_separation, n - 1) + 1):
        for k in (ks, -ks):
            per, votes, against, npx, axial, coll = [], 0, 0, 0, [], []
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
                c, method, ax, cl = _pair_slope(A, b), "recorded", float("nan"), float("nan")
                if offsets is not None:
                    tissue = (offsets[q] - offsets[p]) - shift
                    A2, b2, m2 = crosstalk_slope(means[p], means[q], mask, shift, sigma, tissue)
                    if m2 and A2[0, 0] > 0 and A2[1, 1] > 0:
                        cl = float(A2[0, 1] / np.sqrt(A2[0, 0] * A2[1, 1]))
                        if abs(cl) <= MAX_COLLINEARITY:
                            c, ax = (float(v) for v in np.linalg.solve(A2, b2))
                            method = "joint"
                null = [_pair_slope(*crosstalk_slope(means[p], means[q], mask, shift + np.array(o), sigma)[:2])
                        for o in probes]
                null = np.array([v for v in null if np.isfinite(v)])
                nm = float(null.mean()) if len(null) else float("nan")
                ns = float(null.std()) if len(null) > 1 else float("nan")
                per.append([p, q, c, ns, 0.0, nm, method, m])
                axial.append(ax)
                coll.append(cl)
                npx += m
            if not per:
                rows.append(dict(separation=k, coefficient=float("nan"), uncertainty=float("nan"),
                                 method="recorded", collinearity=float("nan"), axial=float("nan"),
                                 pair_min=float("nan"), pair_max=float("nan"), null_mean=float("nan"),
                                 null_std=float("nan"), n_pixels=0, n_plane_pairs=0, votes=votes,
                                 votes_against=against, pairs="", significant=False))
                continue
            c, err, w = combine_pairs([x[2] for x in per], [x[3] for x in per])
            for x, wi in zip(per, w):
                x[4] = wi
            wsum = w.sum() if w.sum() > 0 else 1.0
            nm = float(np.dot(w, np.nan_to_num([x[5] for x in per])) / wsum)
            joint_w = sum(wi for x, wi in zip(per, w) if x[6] == "joint")
            method = "joint" if joint_w > 0.5 * w.sum() else "recorded"
            cs = [x[2] for x in per if np.isfinite(x[2])]
            rows.append(dict(
                separation=k, coefficient=c, uncertainty=err, method=method,
                collinearity=float(np.nanmax(np.abs(coll))) if np.isfinite(coll).any() else float("nan"),
                axial=float(np.nanmean(axial)) if np.isfinite(axial).any() else float("nan"),
                pair_min=min(cs, default=float("nan")), pair_max=max(cs, default=float("nan")),
                null_mean=nm, null_std=err, n_pixels=npx, n_plane_pairs=len(per), votes=votes,
                votes_against=against, pairs=pairs_text([tuple(x[:5]) for x in per]),
                significant=bool(np.isfinite(c) and c >= min_coefficient and c > nm + 3 * err and c > 3 * err
                                 and votes >= 3 and 3 * votes >= votes + against)))
    return rows


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
    = frames[t, y, x]``; uncovered pixels are 0 (float32). Frames that move alike are moved
    together; when none moves, the frames themselves are returned (float32, not copied)."""
    frames = np.asarray(frames, np.float32)
    T, Ly, Lx = frames.shape
    dy = np.broadcast_to(np.rint(np.asarray(dy, float)).astype(int), (T,))
    dx = np.broadcast_to(np.rint(np.asarray(dx, float)).astype(int), (T,))
    if not (dy.any() or dx.any()):
        return frames
    out = np.zeros(frames.shape, np.float32)
    moves, which = np.unique(np.stack([dy, dx], 1), axis=0, return_inverse=True)
    for i, (a, b) in enumerate(moves):
        a, b = int(a), int(b)
        if abs(a) >= Ly or abs(b) >= Lx:
            continue
        t = np.flatnonzero(which.ravel() == i)
        ys, yd = (slice(0, Ly - a), slice(a, Ly)) if a >= 0 else (slice(-a, Ly), slice(0, Ly + a))
        xs, xd = (slice(0, Lx - b), slice(b, Lx)) if b >= 0 else (slice(-b, Lx), slice(0, Lx + b))
        if len(t) == t[-1] - t[0] + 1:             # consecutive frames: slices, no gather
            out[t[0]:t[-1] + 1, yd, xd] = frames[t[0]:t[-1] + 1, ys, xs]
        else:
            out[t, yd, xd] = frames[t, ys, xs]
    return out


def source_in_target(frames: np.ndarray, yoff_src, xoff_src, yoff_tgt, xoff_tgt) -> np.ndarray:
    """A source plane's registered frames moved onto a target plane's registered frames at
    the same *recorded* pixels, frame by frame from the two planes' rigid registration
    offsets: a recorded pixel at ``x`` of the source's registered frame ``t`` is at
    ``x + off_src[t] - off_tgt[t]`` in the target's (non-rigid offsets are not followed)."""
    return move_frames(frames, np.asarray(yoff_src, float) - np.asarray(yoff_tgt, float),
                       np.asarray(xoff_src, float) - np.asarray(xoff_tgt, float))


def activity_frames(frames: np.ndarray, sigma: float, threads: int = 1) -> np.ndarray:
    """Frames minus their per-pixel mean, spatially high-passed (Gaussian ``sigma`` px), so
    that what stays is the fast, local activity of cells, not static structure (a new float32
    array; computed in place in it). The filter runs frame by frame, in ``threads`` blocks of
    frames at once (scipy releases the GIL; the result does not depend on ``threads``)."""
    x = np.array(frames, np.float32)
    x -= x.mean(axis=0, keepdims=True)

    def highpass(block: slice) -> None:
        x[block] -= gaussian_filter(x[block], (0, sigma, sigma))

    n = len(x)
    step = max(1, -(-n // max(1, int(threads))))
    blocks = [slice(a, min(n, a + step)) for a in range(0, n, step)]
    if len(blocks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(blocks)) as pool:
            list(pool.map(highpass, blocks))
    else:
        for b in blocks:
            highpass(b)
    return x


def pixels_by_frames(frames: np.ndarray) -> np.ndarray:
    """A movie (frames x Ly x Lx) as (pixels x frames), C-contiguous: one pixel's trace is one
    row, so gathering the traces of scattered pixels copies whole rows (:func:`split_half_ratios`)."""
    n = frames.shape[0]
    return np.ascontiguousarray(np.asarray(frames).reshape(n, -1).T)


def crosstalk_ratios(src: np.ndarray, tgt: np.ndarray, mask: np.ndarray, shift=(0, 0)) -> np.ndarray:
    """Per source pixel of ``mask``: the slope of the target's activity on the source's at the
    same pixel (``shift``: target read that far away, wrapping at the frame's edges, for the
    null), by lag-1 instrumental variables: ``sum(T[t] S[t-1] + T[t-1] S[t]) / sum(2 S[t] S[t-1])``,
    and the denominator (the pixel's weight; 0 where it is not positive). Shot noise is
    independent from frame to frame and between planes, so it biases neither sum (an ordinary
    regression would be pulled towards 0 by the source's noise)."""
    return shifted_ratios(src, tgt, mask, [shift])[0]


def shifted_ratios(src: np.ndarray, tgt: np.ndarray, mask: np.ndarray, shifts) -> list:
    """:func:`crosstalk_ratios` at several ``shifts`` of the target: the mask's pixels (and
    the target's at every shift) gathered once, frame by frame (``np.take`` along the pixels:
    cache-friendly, unlike ``src[:, ys, xs]``), instead of rolling the whole movie per shift."""
    ys, xs = np.nonzero(mask)
    n, ly, lx = tgt.shape
    # (frames, pixels) in Fortran order, as ``src[:, mask]`` gives them: the sums over frames
    # then add in the same order, so the ratios are the same to the bit
    s = np.asfortranarray(np.take(src.reshape(n, -1), ys * lx + xs, axis=1))
    den = 2 * (s[1:] * s[:-1]).sum(0)
    weight, den = np.maximum(den, 0), np.where(den > 0, den, np.nan)
    flat = np.concatenate([((ys + int(dy)) % ly) * lx + (xs + int(dx)) % lx for dy, dx in shifts])
    t_all = np.take(tgt.reshape(n, -1), flat, axis=1)
    out = []
    for k in range(len(shifts)):
        t = np.asfortranarray(t_all[:, k * len(ys):(k + 1) * len(ys)])
        num = (t[1:] * s[:-1]).sum(0) + (t[:-1] * s[1:]).sum(0)
        out.append((num / den, weight))
    return out


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


#: frames are dealt into two halves by alternating blocks of this many (at most; fewer for a
#: short sample): the pixels of one half's most active source pixels are measured on the
#: other half's frames, so that the noise that picked a pixel does not also measure it
HALF_BLOCK = 50
#: side of the squares of chosen pixels pooled by :func:`pooled_median`, in cell diameters (2 px
#: for cells of 10 px): small against the distance at which neighbouring planes see the same
#: cell (a few px), large enough to average a pixel's noise
POOL_DIAMETERS = 0.2


def pooled_median(num: np.ndarray, den: np.ndarray, weight: np.ndarray, group: np.ndarray) -> float:
    """Weighted median over groups of pixels (``group``: :func:`split_half_ratios`' small squares)
    of each group's ratio of sums ``sum(num) / sum(den)`` (weight: the sum of its pixels'
    ``weight``).

    One pixel's denominator is noisy where the source is (a pixel chosen for its activity on
    one half of the frames may have little on the other): 15 % of the chosen pixels of the pair
    into the dim plane (hard simulator, seed 11, c 0.3 at k 1) had none, and those kept are the
    ones whose noise raised it, so the median of per-pixel ratios read 0.267 (0.291 without
    noise; the pair's ratio of sums, 0.291, is not robust to tissue both planes see). Pooled by
    2 x 2 px it read 0.285; by whole cells 0.288, but a cell's pixels near tissue both planes see
    then carry the whole cell (0.303 for 0.2 on tests/test_crosstalk_workflow.py, 0.242 pooled by
    2 x 2 px, 0.247 per pixel)."""
    ok = np.isfinite(num) & np.isfinite(den) & (weight > 0)
    if not ok.any():
        return float("nan")
    g = np.asarray(group, np.int64)[ok]
    size = int(g.max()) + 1
    n = np.bincount(g, num[ok], size)
    d = np.bincount(g, den[ok], size)
    w = np.bincount(g, weight[ok], size)
    return weighted_median(n / np.where(d > 0, d, np.nan), w)


def frame_halves(n: int) -> np.ndarray:
    """Half (0 or 1) of each lag-1 pair of frames ``(t - 1, t)``, ``t = 1 .. n - 1``: blocks of
    HALF_BLOCK frames (fewer when ``n`` is small) alternate between the halves; a pair that
    straddles two blocks belongs to neither (-1), so the halves share no frame."""
    block = max(2, min(HALF_BLOCK, n // 8))
    t = np.arange(1, n)
    return np.where(t % block == 0, -1, (t // block) % 2)


def half_lag_sums(x: np.ndarray) -> np.ndarray:
    """Per half of the frames (:func:`frame_halves`): ``sum(x[t] x[t - 1])`` over its lag-1 pairs,
    per pixel (columns of ``x``: frames x pixels); shape (2, pixels). Block by block (einsum
    on a view, no product of the whole movie is held)."""
    n = x.shape[0]
    block = max(2, min(HALF_BLOCK, n // 8))
    a, b = x[1:], x[:-1]                   # pair i: frames (i, i + 1), t = i + 1
    m = n - 1
    nb = m // block
    out = np.zeros((2,) + x.shape[1:], np.float64)
    if nb:
        # rows i = b * block .. (b + 1) * block - 2 of block b are in half b % 2; the last row
        # (t a multiple of block) straddles two blocks and is in neither
        A = a[:nb * block].reshape(nb, block, -1)[:, :block - 1]
        B = b[:nb * block].reshape(nb, block, -1)[:, :block - 1]
        per = np.einsum("btp,btp->bp", A, B)
        out[0], out[1] = per[0::2].sum(0), per[1::2].sum(0)
    if nb * block < m:
        out[nb % 2] += np.einsum("tp,tp->p", a[nb * block:], b[nb * block:])
    return out


def half_partner(s: np.ndarray, h: int) -> np.ndarray:
    """``U`` with ``sum_t T[t] U[t] = sum(T[t] S[t-1] + T[t-1] S[t])`` over the lag-1 pairs of
    half ``h`` (:func:`frame_halves`) for any ``T``: each frame's neighbours within the half."""
    w = (frame_halves(s.shape[0]) == h).astype(s.dtype)[:, None]
    u = np.zeros_like(s)
    u[1:] += s[:-1] * w
    u[:-1] += s[1:] * w
    return u


def split_half_ratios(src: np.ndarray, tgt: np.ndarray, edge: int, shifts,
                      fraction: float = ACTIVE_FRACTION, src_lag: np.ndarray | None = None,
                      tgt_t: np.ndarray | None = None, block: int = 1) -> tuple[list, int]:
    """The source's most active pixels chosen on one half of the frames (:func:`frame_halves`;
    the ``fraction`` largest lag-1 autocovariances, away from the frame's ``edge``, leaving out
    those where the target is itself at least MAX_COEFFICIENT as active) and measured on the
    other, both ways: per ``shift`` of the target (read that far away, wrapping at the frame's
    edges, for the null), the lag-1 instrumental-variable sums per chosen pixel, ``num =
    sum(T[t] S[t-1] + T[t-1] S[t])`` and ``den = sum(2 S[t] S[t-1])`` over the measuring half,
    and the pixel's ``weight`` (its source autocovariance on the choosing half). Returns
    ([(num, den, weight, group) per shift], chosen pixels per half, mean of the two); ``group``
    numbers the chosen pixels' squares of ``block`` x ``block`` px (per half) for
    :func:`pooled_median`. ``src_lag``:
    :func:`half_lag_sums` of ``src`` (frames x pixels), when already known; ``tgt_t``:
    :func:`pixels_by_frames` of ``tgt``, when already known (a target serves several sources)."""
    n, ly, lx = tgt.shape
    inner = np.zeros((ly, lx), bool)
    inner[edge:ly - edge, edge:lx - edge] = True
    s2 = src.reshape(n, -1)
    out = [([], [], [], []) for _ in shifts]
    if not inner.any():
        return [tuple(np.zeros(0) for _ in range(4)) for _ in shifts], 0
    tt = pixels_by_frames(tgt) if tgt_t is None else tgt_t                 # target: pixels x frames
    ac_s = (half_lag_sums(s2) if src_lag is None else src_lag).reshape(2, ly, lx)  # each half's lag-1 autocov.
    chosen = [inner & (a >= np.quantile(a[inner], 1.0 - fraction)) & (a > 0) for a in ac_s]
    # the target's autocovariance only where the source is chosen in either half
    cy, cx = np.nonzero(chosen[0] | chosen[1])
    ac_t = np.zeros((2, ly, lx))
    ac_t[:, cy, cx] = half_lag_sums(tt[cy * lx + cx].T)
    npx = groups = 0
    for h in (0, 1):
        m = chosen[h] & (ac_t[h] < MAX_COEFFICIENT ** 2 * ac_s[h])
        ys, xs = np.nonzero(m)
        npx += len(ys)
        if not len(ys):
            continue
        # the chosen pixels of one block of block x block px
        _, group = np.unique((ys // block) * (lx // block + 1) + xs // block, return_inverse=True)
        group = group.ravel() + groups
        groups = int(group.max()) + 1
        s = np.take(s2, ys * lx + xs, axis=1)
        u = half_partner(s, 1 - h)                            # measured on the other half
        den = np.einsum("tp,tp->p", s, u, dtype=np.float64)
        w = ac_s[h][ys, xs]
        flat = np.concatenate([((ys + int(dy)) % ly) * lx + (xs + int(dx)) % lx for dy, dx in shifts])
        # the target's traces at every shift, gathered as whole rows of the pixels-by-frames
        # target, each against its source pixel's partner frames
        tc = tt[flat].reshape(len(shifts), len(ys), n)
        num = np.einsum("kjt,jt->kj", tc, np.ascontiguousarray(u.T), dtype=np.float64)
        del tc
        for k in range(len(shifts)):
            out[k][0].append(num[k])
            out[k][1].append(den)
            out[k][2].append(w)
            out[k][3].append(group)
    return [tuple(np.concatenate(v) if v else np.zeros(0) for v in o) for o in out], npx // 2


def crosstalk_pair(src: np.ndarray, tgt: np.ndarray, diameter: float, src_lag: np.ndarray | None = None,
                   tgt_t: np.ndarray | None = None) -> dict:
    """Coefficient of crosstalk from a source into a target plane from their activity
    (:func:`activity_frames`, the source already moved onto the target's recorded pixels):
    the slope of the target's activity on the source's by lag-1 instrumental variables (shot
    noise, independent from frame to frame, biases neither side) at the source's most active
    pixels, chosen on one half of the frames and measured on the other, both ways
    (:func:`split_half_ratios`), combined robustly (:func:`pooled_median`: the median of the ratios
    of small squares of pixels, weighted by the choosing half's activity, so that a minority of
    pixels that share tissue, a cell seen in both planes, does not count), leaving out pixels
    where the target is itself at least MAX_COEFFICIENT as active (its own cell, or tissue
    both planes see); and a null: the same with the target read 1.5 diameters away in 8
    directions (mean and std of those estimates).

    Choosing and measuring the pixels on the same frames read low under shot noise (the
    noise that made a pixel look active inflates the denominator it is measured by: 0.27 for
    0.3 on a small simulation, 0.30 without noise), and so do weights from the measuring
    frames' own denominators.

    Crosstalk lands on the same recorded pixel, so the ratio peaks there; a cell that both
    planes see (neighbouring planes) lands at the plane offset, a few pixels away, and the
    ratio is higher there. ``peak`` is False when the ratio a third of a diameter away (8
    directions) exceeds the one at the recorded pixel by more than two null deviations
    (floored at PAIR_SIGMA_FLOOR): the pair then measures shared tissue, not crosstalk.
    ``src_lag``: :func:`half_lag_sums` of the source, when known (a source plane that is not
    moved serves several targets); ``tgt_t``: :func:`pixels_by_frames` of the target, when
    known. ``activity``: the median, over the pixels measured, of the
    source's lag-1 sum ``sum(2 S[t] S[t-1])`` on the measuring half (its activity's variance
    there, free of shot noise; :func:`tissue_part` compares two planes' brightness with it)."""
    d = max(6, int(round(1.5 * diameter)))
    near = max(2, int(round(diameter / 3)))
    dirs = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0)]
    shifts = [(0, 0)] + [(a * d, b * d) for a, b in dirs] + [(a * near, b * near) for a, b in dirs]
    sums, npx = split_half_ratios(src, tgt, d + 1, shifts, src_lag=src_lag, tgt_t=tgt_t,
                                  block=max(1, int(round(diameter * POOL_DIAMETERS))))
    if npx < 10:
        return dict(coefficient=np.nan, null_mean=np.nan, null_std=np.nan, n_pixels=0, peak=False,
                    activity=np.nan)
    est = [pooled_median(*v) for v in sums]
    c, null, around = est[0], est[1:1 + len(dirs)], est[1 + len(dirs):]
    null = [v for v in null if np.isfinite(v)]
    ns = float(np.std(null)) if len(null) > 1 else float("nan")
    # the null's spread floored at PAIR_SIGMA_FLOOR (what the probes cannot see): a peak a few
    # thousandths off the recorded pixel of a very quiet pair is no peak
    top = float(np.nanmax(around)) if np.isfinite(around).any() else float("nan")
    peak = bool(np.isfinite(c) and not top > c + 2 * max(np.nan_to_num(ns), PAIR_SIGMA_FLOOR))
    # the source's activity at the pixels measured: the median of their lag-1 sums on the measuring
    # half (free of shot noise, and of the noise that chose them)
    activity = float(np.median(sums[0][1])) if len(sums[0][1]) else float("nan")
    return dict(coefficient=c, null_mean=float(np.mean(null)) if null else float("nan"), null_std=ns,
                n_pixels=int(npx), peak=peak, around=top, activity=activity, diameter=float(diameter))


def tissue_part(forward: list, reverse: list) -> tuple[float, float]:
    """The part of a plane pair ``p -> q``'s coefficient that is tissue both planes see (a cell
    between them), not crosstalk, and its uncertainty, from the reverse pair ``q -> p``
    (``forward``, ``reverse``: their :func:`crosstalk_pair` results, one per part).

    Model: crosstalk ``c`` from ``p`` into ``q`` only, tissue of strength ``t`` seen by both,
    the planes' activity brightness ratio ``rho = b_q / b_p``: forward ``= c + t rho``, reverse
    ``= t / rho``, so the tissue's part of the forward pair is ``reverse rho**2``. ``rho**2`` is
    the ratio of the two sources' ``activity`` (variances of their activity at the pixels
    measured, free of shot noise; 1 where not known): two equally bright planes subtract the
    reverse; a bright source over a dim target (``rho**2`` ~ 1/400 on the hard simulator)
    barely changes, however large its reverse reads. The reverse counts above its null's mean
    (if that is positive) and not below 0; one above MAX_COEFFICIENT (a dim source under a
    bright target's own cells) measures no tissue and counts 0. A forward source with no
    activity gives nan (the pair measures nothing). Uncertainty: the reverse's (its null's
    spread, floored at PAIR_SIGMA_FLOOR) times ``rho**2``."""
    def ok(r):
        return r["n_pixels"] and np.isfinite(r["coefficient"])

    back = [r for r in reverse if ok(r) and r["coefficient"] <= MAX_COEFFICIENT]
    if not back:
        return 0.0, 0.0
    v = float(np.mean([r["coefficient"] - max(np.nan_to_num(r["null_mean"]), 0.0) for r in back]))
    e = max(float(np.mean([np.nan_to_num(r["null_std"], nan=np.inf) for r in back])), PAIR_SIGMA_FLOOR)
    a_p = np.mean([r.get("activity", np.nan) for r in forward if ok(r)] or [np.nan])
    a_q = np.mean([r.get("activity", np.nan) for r in back])
    if not (np.isfinite(a_p) and np.isfinite(a_q)):
        rho2 = 1.0
    elif a_p <= 0:
        return float("nan"), float("nan")
    else:
        rho2 = max(float(a_q), 0.0) / float(a_p)
    if rho2 == 0:
        return 0.0, 0.0
    return rho2 * max(v, 0.0), rho2 * e


#: a source plane whose activity (:func:`crosstalk_pair`'s ``activity``, a variance) is below this
#: share of the other sources' median measures no crosstalk of its own (:func:`crosstalk_table`):
#: the hard simulator's dim plane under 0.3 of plane 0's light (seed 12, c 0.3 at k = 2) carried
#: a false 0.201 at k = 1 alone, every other pair there being left out as tissue
DIM_SOURCE = 0.2


def crosstalk_table(pairs: dict, max_separation: int, nplanes: int, min_coefficient: float) -> list[dict]:
    """One row per signed separation ``k`` from :func:`crosstalk_pair` results
    ``pairs[(p, q)]`` (lists, one per part): each plane pair's coefficient with its null's
    spread as uncertainty, combined by :func:`combine_pairs` (precision-weighted, robust to a
    dim or failed plane's pair). The regression cannot fully tell ``p -> p + k`` from the
    reverse (tissue shared by both planes reads both ways), so ``k`` is ``significant`` only
    when its coefficient reaches ``min_coefficient``, stands 3 uncertainties above the null
    mean and exceeds the reverse direction's (``-k``) by ``min_coefficient``. Pairs whose ratio
    peaks off the recorded pixel (``peak`` False: a cell both planes see) get no weight, unless
    they read no more than their null. A pair whose shared tissue lies near the recorded pixel
    (``tissue_px`` within TISSUE_REACH of the pair's ``diameter``, where known) reads crosstalk
    plus a cell both planes see (hard simulator, k = 1: 0.176 and 0.201 at c = 0.15, seed 12,
    tissue 3 px off, reverses 0.033 and 0.049). It gets no weight when the tissue's part, the
    reverse pair scaled by the planes' brightness (:func:`tissue_part`), is clearly above zero
    (3 of its uncertainties) and at least AMBIGUOUS_REVERSE of the pair (a dim target's reverse,
    however large, barely counts). A pair whose tissue part is unknown (a source with no
    activity) or above MAX_COEFFICIENT is left out, and so is every pair whose source is far
    dimmer than the other sources (DIM_SOURCE; with 3 source planes or more)."""
    rows = {}
    # each source plane's activity (the median over its pairs): a source far dimmer than the others
    # holds mostly the crosstalk it receives, and its pairs measure that, not its own light
    act = {}
    for (p, _q), rs in pairs.items():
        act.setdefault(p, []).extend(r.get("activity", np.nan) for r in rs if r["n_pixels"])
    act = {p: float(np.nanmedian(v)) if np.isfinite(v).any() else np.nan for p, v in act.items()}
    known = [a for a in act.values() if np.isfinite(a)]
    dim = {p for p, a in act.items() if len(known) >= 3 and np.isfinite(a)
           and a < DIM_SOURCE * float(np.median([b for q, b in act.items() if q != p and np.isfinite(b)]))}
    for ks in range(1, min(max_separation, nplanes - 1) + 1):
        for k in (ks, -ks):
            res = [(p, p + k, r) for p in range(nplanes) if 0 <= p + k < nplanes
                   for r in pairs.get((p, p + k), []) if r["n_pixels"] and np.isfinite(r["coefficient"])]
            if not len(res):
                rows[k] = dict(separation=k, coefficient=np.nan, uncertainty=np.nan, null_mean=np.nan,
                               null_std=np.nan, pair_min=np.nan, pair_max=np.nan, n_pixels=0, n_plane_pairs=0,
                               pairs="")
                continue
            c = [r["coefficient"] for _, _, r in res]

            # A pair that reads no more than its null at the recorded pixel says "no crosstalk here"
            # whatever peaks a few px away, and keeps its weight (it outvotes a pair where tissue
            # shared by the source and the target's own source lies on the recorded pixel)
            def reads_above_null(r):
                return r["coefficient"] > (np.nan_to_num(r["null_mean"])
                                           + 3 * max(np.nan_to_num(r["null_std"], nan=np.inf), PAIR_SIGMA_FLOOR))

            # where shared tissue lies near the recorded pixel, a cell both planes see reads both ways
            # (scaled by the planes' brightness), crosstalk one way
            def near(r):
                reach = TISSUE_REACH * r["diameter"] if np.isfinite(r.get("diameter", np.nan)) else AMBIGUOUS_PX
                return r.get("tissue_px", np.inf) < reach

            tissue = [tissue_part(pairs.get((p, q), []), pairs.get((q, p), [])) if near(r) else (0.0, 0.0)
                      for p, q, r in res]
            # a pair above MAX_COEFFICIENT measures no crosstalk (pixels where the target is that
            # active are left out): a dim source under a bright target's cells reads 0.8 or 10; nor
            # does one whose tissue part is unknown (a source with no activity) or above it
            usable = [(r.get("peak", True) or not reads_above_null(r)) and r["coefficient"] <= MAX_COEFFICIENT
                      and np.isfinite(t) and t <= MAX_COEFFICIENT
                      and not (t > 3 * te and t >= AMBIGUOUS_REVERSE * v) and p not in dim
                      for (p, q, r), v, (t, te) in zip(res, c, tissue)]
            coef, err, w = combine_pairs([v if ok else np.nan for v, ok in zip(c, usable)],
                                         [r["null_std"] for _, _, r in res])
            wsum = w.sum() if w.sum() > 0 else 1.0
            rows[k] = dict(separation=k, coefficient=coef, uncertainty=err,
                           null_mean=float(np.dot(w, [r["null_mean"] for _, _, r in res]) / wsum),
                           null_std=err, pair_min=min(c), pair_max=max(c),
                           n_pixels=int(sum(r["n_pixels"] for _, _, r in res)), n_plane_pairs=len(res),
                           pairs=pairs_text([(p, q, r["coefficient"], r["null_std"], wi)
                                             for (p, q, r), wi in zip(res, w)]))
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
