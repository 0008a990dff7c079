"""Scoring suite2p output against the ground truth planted by :mod:`planeflow.synth.simulate`.

* :func:`load_ground_truth` reads ``ground_truth.npz``.
* :func:`match_rois` matches suite2p ROIs (``stat.npy``) to planted cell masks one to
  one and reports recall and precision.
* :func:`registration_error` compares suite2p's rigid offsets with the planted motion.
* :func:`reference_offset` gives the constant displacement between suite2p's
  reference image and the un-shifted field of view (to put ROIs into ground-truth
  coordinates before matching).

Sign convention (checked empirically against suite2p 1.1.0): suite2p registers frame
``t`` by ``roll(frame, (-yoff[t], -xoff[t]))``, i.e. ``(yoff, xoff)`` is the
displacement of the frame content relative to the reference image. The simulator's
``shifts[t] = (dy, dx)`` is the displacement of the content relative to the
un-shifted field of view. Therefore ``yoff[t] = dy[t] - cy`` and ``xoff[t] = dx[t] - cx``
where ``(cy, cx)`` is the (constant) displacement of suite2p's reference image
relative to the un-shifted field of view; a planted cell centred at ``(y, x)``
appears at ``(y + cy, x + cx)`` in suite2p's registered frames, mean image and ROIs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def load_ground_truth(path) -> dict:
    """Load ``ground_truth.npz`` (a file or the folder holding it) into a dict.

    0-d arrays become Python scalars; everything else stays a numpy array.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "ground_truth.npz"
    out = {}
    with np.load(path, allow_pickle=False) as z:
        for k in z.files:
            v = z[k]
            out[k] = v.item() if v.ndim == 0 else v
    return out


def _roi_pixels(roi, Ly, Lx, offset):
    y = np.asarray(roi["ypix"]).astype(np.int64).ravel() - int(round(offset[0]))
    x = np.asarray(roi["xpix"]).astype(np.int64).ravel() - int(round(offset[1]))
    ok = (y >= 0) & (y < Ly) & (x >= 0) & (x < Lx)
    return y, x, ok


def match_rois(stat, labels_plane, min_iou=0.25, offset=(0, 0)) -> dict:
    """Match detected ROIs to planted cells one to one, maximising total IoU.

    Criterion: a detected ROI and a planted cell may be matched when the
    intersection over union (IoU) of their pixel sets is at least ``min_iou``;
    among those pairs the one-to-one assignment maximising the summed IoU is chosen
    (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``). The default
    ``min_iou = 0.25`` accepts a suite2p ROI that is smaller than the planted mask
    (soma_crop) or a bit larger (it takes in surrounding neuropil pixels), as long as
    it is essentially the same cell: two disjoint neighbouring cells cannot both
    reach 0.25 with one ROI, because a ROI overlapping two planted masks equally
    shares its pixels between them. Pixel weights ``lam`` are ignored; a pixel
    belongs to an ROI if it is listed in ``ypix``/``xpix``.

    Parameters
    ----------
    stat : sequence of dict
        suite2p ``stat`` (each with ``ypix`` and ``xpix``; ``lam``/``med`` unused).
    labels_plane : (Ly, Lx) int array
        Planted masks of one plane, 0 = background, k > 0 = cell k.
    min_iou : float
        Minimum IoU for a pair to count as a match.
    offset : (cy, cx)
        Displacement of suite2p's reference image relative to the un-shifted field of
        view (:func:`reference_offset`); ROI pixels are moved by ``-offset`` (rounded)
        before comparison. Pixels falling outside the frame are dropped.

    Returns
    -------
    dict with ``n_true``, ``n_detected``, ``n_matched``, ``recall`` (n_matched /
    n_true), ``precision`` (n_matched / n_detected), ``f1``, ``matches`` (int array
    (n_matched, 2) of (roi index, cell label)), ``match_iou`` (IoU of each match),
    ``missed`` (labels of unmatched cells), ``spurious`` (indices of unmatched ROIs),
    ``iou`` (n_detected, n_true) IoU matrix with columns in the order of ``cell_labels``.
    """
    from scipy.optimize import linear_sum_assignment

    labels_plane = np.asarray(labels_plane)
    Ly, Lx = labels_plane.shape
    cell_labels = np.unique(labels_plane)
    cell_labels = cell_labels[cell_labels > 0]
    ntrue, ndet = len(cell_labels), len(stat)
    area = np.array([(labels_plane == k).sum() for k in cell_labels], dtype=float)
    col = np.zeros(int(labels_plane.max()) + 1, dtype=np.int64) - 1
    col[cell_labels] = np.arange(ntrue)

    iou = np.zeros((ndet, ntrue))
    for i, roi in enumerate(stat):
        y, x, ok = _roi_pixels(roi, Ly, Lx, offset)
        # unique pixels only (overlapping lists would inflate the counts)
        lin = np.unique(y[ok] * Lx + x[ok])
        npix = len(lin) + int((~ok).sum())          # pixels outside still count in the union
        if npix == 0 or ntrue == 0:
            continue
        lab = labels_plane.ravel()[lin]
        inter = np.bincount(col[lab[lab > 0]], minlength=ntrue).astype(float)
        iou[i] = inter / (npix + area - inter)

    matches = np.zeros((0, 2), dtype=np.int64)
    match_iou = np.zeros(0)
    if ndet and ntrue:
        r, c = linear_sum_assignment(-np.where(iou >= min_iou, iou, 0.0))
        keep = iou[r, c] >= min_iou
        r, c = r[keep], c[keep]
        matches = np.stack([r, cell_labels[c]], axis=1).astype(np.int64)
        match_iou = iou[r, c]
    nm = len(matches)
    recall = nm / ntrue if ntrue else float("nan")
    precision = nm / ndet if ndet else float("nan")
    f1 = 2 * nm / (ntrue + ndet) if (ntrue + ndet) else float("nan")
    return dict(n_true=ntrue, n_detected=ndet, n_matched=nm, recall=recall,
                precision=precision, f1=f1, matches=matches, match_iou=match_iou,
                missed=np.setdiff1d(cell_labels, matches[:, 1]),
                spurious=np.setdiff1d(np.arange(ndet), matches[:, 0]),
                iou=iou, cell_labels=cell_labels)


def _offset_errors(yoff, xoff, shifts):
    yoff = np.asarray(yoff, dtype=float).ravel()
    xoff = np.asarray(xoff, dtype=float).ravel()
    shifts = np.asarray(shifts, dtype=float).reshape(-1, 2)
    if not (len(yoff) == len(xoff) == len(shifts)):
        raise ValueError(f"lengths differ: yoff {len(yoff)}, xoff {len(xoff)}, "
                         f"shifts {len(shifts)}")
    # yoff = dy - cy  ->  cy = dy - yoff (constant); median = robust estimate
    d = shifts - np.stack([yoff, xoff], axis=1)
    c = np.median(d, axis=0)
    return d - c, c


def reference_offset(yoff, xoff, shifts) -> tuple[float, float]:
    """(cy, cx): displacement of suite2p's reference image from the un-shifted FOV.

    Estimated as the per-axis median of ``shifts - (yoff, xoff)``. Pass it as
    ``offset`` to :func:`match_rois`.
    """
    _, c = _offset_errors(yoff, xoff, shifts)
    return float(c[0]), float(c[1])


def registration_error(yoff, xoff, shifts) -> float:
    """RMS error (px) of suite2p's rigid offsets against the planted shifts.

    ``yoff``, ``xoff``: suite2p's per-frame rigid offsets of one plane
    (``reg_outputs["yoff"]``/``["xoff"]`` or ``ops``); ``shifts``: the ground-truth
    ``(nframes, 2)`` array of (dy, dx). With suite2p's convention ``yoff = dy - cy``
    (module docstring), the per-frame error is ``e_t = (dy_t, dx_t) - (yoff_t,
    xoff_t) - (cy, cx)``, where the constant reference offset ``(cy, cx)`` is the
    per-axis median of ``shifts - offsets`` (robust to a few wrong frames, and exact
    when most frames are right). Returns ``sqrt(mean_t |e_t|^2)`` (Euclidean, both
    axes together). Offsets with the opposite sign give a large error.
    """
    e, _ = _offset_errors(yoff, xoff, shifts)
    return float(np.sqrt(np.mean(np.sum(e ** 2, axis=1))))
