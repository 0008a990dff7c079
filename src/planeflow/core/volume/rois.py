"""A plane's ROIs as the volume sees them: pixel lists, centres, brightness against the local
background (:class:`Rois`), and their overlap across planes."""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
#: pixels around an ROI (beyond a 1-px gap) that give its local background
RING_PX = 3


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
