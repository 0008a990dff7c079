"""Conversion between suite2p ROIs and cellpose label images / GUI files.

Export (suite2p -> cellpose)
    :func:`stat_to_labels` paints the ROIs of ``stat.npy`` into one label image
    (0 = background, the ``i``-th exported ROI = label ``i + 1``);
    :func:`summary_image` gives a full-frame summary image from ops;
    :func:`write_seg` writes the ``<name>_seg.npy`` the cellpose GUI opens, with
    cellpose's own writer (``cellpose.io.masks_flows_to_seg``).

Import (cellpose -> suite2p)
    :func:`read_seg` reads the label image of an (edited) ``_seg.npy`` and checks it;
    :func:`labels_to_stat` turns labels into suite2p ``stat`` with suite2p's own
    ``masks_to_stats`` and ``roi_stats``.

Overlapping ROIs: suite2p ROIs may share pixels; a label image cannot. A shared
pixel goes to the ROI whose *relative* weight there, ``lam / max(lam)`` of that ROI,
is largest (ties: the ROI listed first in ``stat.npy``). Each ROI's peak pixel has
relative weight 1, so an ROI disappears from the label image only when it shares
its peak pixel with an ROI listed earlier. suite2p itself leaves shared pixels out
of both ROIs' traces (``extraction.allow_overlap: false``), so the choice does not
change the exported ROIs' original traces.

cellpose, torch and suite2p are imported inside the functions that need them, through
:mod:`planeflow._s2p_import` (without the parts of suite2p and torchvision they do not use).
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from planeflow import PlaneflowError
from planeflow.io.atomic import save_npy
from planeflow.io.planefiles import load_array

#: summary images that can be exported (keys of ops)
IMG_KEYS = ("meanImg", "meanImgE", "max_proj", "Vcorr")
#: which ROIs to export
ROI_CHOICES = ("accepted", "all")
#: values written into _seg.npy for the GUI's "recompute masks" (cellpose 4 defaults)
FLOW_THRESHOLD = 0.4
CELLPROB_THRESHOLD = 0.0
#: cell probability (logit) written inside / outside masks so that cellpose's
#: dynamics with CELLPROB_THRESHOLD recover exactly the exported masks
CELLPROB_INSIDE = 6.0


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def label_dtype(n_labels: int):
    """uint16 while the labels fit (cellpose's own rule), else uint32."""
    return np.uint16 if n_labels < 2**16 - 1 else np.uint32


# ---- export ---------------------------------------------------------------------------
def select_rois(iscell, n_rois: int, rois: str = "accepted") -> np.ndarray:
    """Indices into stat of the ROIs to export: accepted ones (``iscell[:, 0]``) or all."""
    if rois not in ROI_CHOICES:
        raise PlaneflowError(f"config cellpose.rois is '{rois}'; use one of {', '.join(ROI_CHOICES)}.")
    if rois == "all":
        return np.arange(n_rois)
    iscell = np.asarray(iscell)
    if iscell.ndim != 2 or iscell.shape[0] != n_rois:
        raise PlaneflowError(
            f"iscell.npy has shape {iscell.shape} but stat.npy holds {n_rois} ROIs; the plane "
            "folder is inconsistent: delete it and rerun snakemake.")
    return np.flatnonzero(iscell[:, 0] > 0.5)


def stat_to_labels(stat, Ly: int, Lx: int, indices=None) -> np.ndarray:
    """Label image (Ly, Lx) of the ROIs ``stat[indices]``: ROI ``indices[i]`` -> label ``i + 1``.

    Shared pixels go to the ROI with the largest ``lam / max(lam)`` there (module
    docstring). Pixels outside the frame are ignored.
    """
    indices = np.arange(len(stat)) if indices is None else np.asarray(indices, dtype=int)
    labels = np.zeros((Ly, Lx), dtype=label_dtype(len(indices)))
    best = np.full((Ly, Lx), -np.inf)
    for i, k in enumerate(indices):
        s = stat[k]
        y = np.asarray(s["ypix"]).astype(np.int64).ravel()
        x = np.asarray(s["xpix"]).astype(np.int64).ravel()
        lam = np.asarray(s.get("lam", np.ones(y.size)), dtype=float).ravel()
        if lam.size != y.size:
            lam = np.ones(y.size)
        peak = lam.max() if lam.size else 0.0
        w = lam / peak if peak > 0 else np.ones(y.size)
        ok = (y >= 0) & (y < Ly) & (x >= 0) & (x < Lx)
        y, x, w = y[ok], x[ok], w[ok]
        # within one ROI a pixel listed twice keeps its larger weight
        order = np.argsort(w, kind="stable")
        y, x, w = y[order], x[order], w[order]
        win = w > best[y, x]
        best[y[win], x[win]] = w[win]
        labels[y[win], x[win]] = i + 1
    return labels


def summary_image(ops: dict, img_key: str = "meanImg") -> np.ndarray:
    """A full-frame (Ly, Lx) float32 summary image from ops.

    ``max_proj`` and ``Vcorr`` cover only the registration crop (``yrange``,
    ``xrange``); they are placed back into the full frame, zero outside.
    """
    if img_key not in IMG_KEYS:
        raise PlaneflowError(f"config cellpose.img_key is '{img_key}'; use one of {', '.join(IMG_KEYS)}.")
    img = ops.get(img_key)
    if img is None or np.ndim(img) != 2:
        raise PlaneflowError(
            f"this plane's ops.npy has no 2-D '{img_key}' image; set cellpose.img_key to one of "
            f"{', '.join(k for k in IMG_KEYS if np.ndim(ops.get(k)) == 2) or 'the images ops holds'}.")
    from planeflow.io.planefiles import full_frame_image

    return full_frame_image(ops, img_key)


def flows_from_labels(labels: np.ndarray) -> list:
    """cellpose flows [RGB flow, dP, cellprob] computed from masks, as ``model.eval`` returns
    them, so the GUI shows flows and can recompute masks without running a model.

    dP: cellpose's own diffusion flows (``dynamics.masks_to_flows_gpu`` on CPU), scaled
    by 5 like a network's output; cellprob: +/- CELLPROB_INSIDE inside / outside masks.
    """
    import torch

    from planeflow._s2p_import import cellpose_module

    dynamics, plot = cellpose_module("cellpose.dynamics"), cellpose_module("cellpose.plot")
    # cellpose's flow code needs consecutive labels; flows do not depend on the numbers
    _, consecutive = np.unique(labels, return_inverse=True)
    consecutive = consecutive.reshape(labels.shape).astype(np.int32)
    if labels.min() > 0:  # no background at all: np.unique started at label 1
        consecutive += 1
    mu, _ = dynamics.masks_to_flows_gpu(consecutive, device=torch.device("cpu"))
    dP = (5.0 * mu).astype(np.float32)
    cellprob = np.where(labels > 0, CELLPROB_INSIDE, -CELLPROB_INSIDE).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):  # all-zero flows of an empty plane
        rgb = plot.dx_to_circ(dP)
    return [rgb, dP, cellprob]


def write_seg(path, img: np.ndarray, labels: np.ndarray, image_name: str, diameter: float) -> dict:
    """Write the cellpose GUI file ``path`` (``<name>_seg.npy``) atomically; return its dict.

    The dict comes from cellpose's own ``io.masks_flows_to_seg`` (outlines, masks,
    chan_choose, ismanual, filename, flows, diameter), run in a temporary folder; then
    ``img`` (the summary image, used when the .tif is not beside the file),
    ``est_diam``, ``flow_threshold`` and ``cellprob_threshold`` are added and
    ``filename`` is set to ``image_name``, the bare name of the .tif: the GUI looks for
    it beside the _seg.npy (so copies of the pair stay together) and saves edits
    back to the _seg.npy that was opened.
    """
    from planeflow._s2p_import import cellpose_module

    cpio = cellpose_module("cellpose.io")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flows = flows_from_labels(labels)
    tmpdir = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmpdir", dir=path.parent)
    try:
        stem = Path(image_name).stem
        cpio.masks_flows_to_seg(img, labels, flows, os.path.join(tmpdir, stem + ".tif"))
        written = os.path.join(tmpdir, stem + "_seg.npy")
        dat = np.load(written, allow_pickle=True).item()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    dat.update({
        "img": np.asarray(img, np.float32),
        "filename": image_name,
        "est_diam": float(diameter),
        "diameter": float(diameter),
        "flow_threshold": FLOW_THRESHOLD,
        "cellprob_threshold": CELLPROB_THRESHOLD,
    })
    save_npy(path, dat)
    return dat


def export_meta(source_path, labels: np.ndarray, img_key: str, roi_indices, rois: str,
                n_stat: int) -> dict:
    """conversion_meta.npy of an export (keys of the LBM-Suite2p-Python reference, plus
    the stat index of every label)."""
    present = np.unique(labels)
    present = present[present > 0].astype(int)
    hidden = sorted(set(range(1, len(roi_indices) + 1)) - set(present.tolist()))
    return {
        "source_format": "suite2p",
        "source_path": os.path.abspath(os.fspath(source_path)),
        "converted_at": now_iso(),
        "n_rois": int(len(roi_indices)),
        "shape": [int(v) for v in labels.shape],
        "img_key": img_key,
        "rois": rois,
        "n_stat": int(n_stat),
        "roi_indices": np.asarray(roi_indices, dtype=np.int64),
        "hidden_labels": hidden,
        "overlap_rule": "largest lam / max(lam) of the ROI wins; ties: lower stat index",
    }


# ---- import ---------------------------------------------------------------------------
def read_seg(path, shape) -> tuple[np.ndarray, bool]:
    """The label image of a cellpose ``_seg.npy``, checked against the plane ``shape``,
    and whether its labels had to be renumbered.

    Labels are renumbered 1..n in increasing order of their values (the GUI keeps them
    consecutive already; hand-made files may have gaps). Raises PlaneflowError naming
    the file when it cannot be read, has no 2-D integer ``masks``, or ``masks`` does
    not have the plane's shape.
    """
    path = os.fspath(path)
    Ly, Lx = (int(v) for v in shape)
    dat = load_array(path, allow_pickle=True, advice="Save it again from the cellpose GUI "
                     "(File > Save masks as _seg.npy).")
    dat = dat.item() if dat.dtype == object and dat.ndim == 0 else dat
    if not isinstance(dat, dict) or "masks" not in dat:
        raise PlaneflowError(
            f"cellpose file '{path}' has no 'masks': it is not a _seg.npy written by the cellpose "
            "GUI. Open the plane's exported .tif or _seg.npy in cellpose and save with Ctrl+S.")
    masks = np.asarray(dat["masks"])
    if masks.ndim == 3 and masks.shape[0] == 1:
        masks = masks[0]
    if masks.shape != (Ly, Lx):
        raise PlaneflowError(
            f"cellpose file '{path}': masks have shape {masks.shape} but this plane is "
            f"{Ly} x {Lx} pixels (Ly, Lx). It belongs to another plane or image; edit the "
            "_seg.npy exported for this plane (results/<session>/cellpose_export/plane<p>/).")
    if not (np.issubdtype(masks.dtype, np.integer) or masks.dtype == bool):
        if not np.all(np.mod(masks, 1) == 0):
            raise PlaneflowError(f"cellpose file '{path}': masks are not integer labels.")
    masks = masks.astype(np.int64)
    if masks.min() == -1:  # old GUI files: -1 = background (the GUI adds 1 as well)
        masks = masks + 1
    if masks.min() < 0:
        raise PlaneflowError(f"cellpose file '{path}': masks hold negative labels "
                             f"(min {masks.min()}); 0 must be background.")
    values, inverse = np.unique(masks, return_inverse=True)
    inverse = inverse.reshape(masks.shape)
    if values[0] != 0:
        inverse = inverse + 1
    labels = inverse.astype(label_dtype(len(values)))
    return labels, not np.array_equal(labels, masks)


def mean_image_weights(mean_img: np.ndarray) -> np.ndarray:
    """Pixel weights for ROIs drawn as masks: suite2p's choice for cellpose masks found
    on the mean image (``detection.anatomical.select_rois``, img 'meanImg'):
    0.1 + the mean image scaled to [0, 1] between its 1st and 99th percentile."""
    m = np.asarray(mean_img, dtype=np.float64)
    lo, hi = np.percentile(m, 1), np.percentile(m, 99)
    return 0.1 + np.clip((m - lo) / max(hi - lo, 1e-12), 0, 1)


def labels_to_stat(labels: np.ndarray, weights: np.ndarray, diameter, soma_crop: bool = True):
    """suite2p stat of a consecutive label image (label i + 1 -> ROI i).

    ``suite2p.detection.anatomical.masks_to_stats`` gives ypix, xpix, lam (from
    ``weights``) and med; ``suite2p.detection.roi_stats`` adds npix, soma_crop,
    compact, radius, aspect_ratio, npix_norm ... as for suite2p's own cellpose
    detection (median normalisation), keeping every ROI (no npix or overlap
    limits: the user drew them); ``assign_overlaps`` sets ``overlap`` (all False,
    labels do not overlap).
    """
    from planeflow import suite2p_api as s2p

    assign_overlaps, roi_stats, masks_to_stats = s2p.assign_overlaps, s2p.roi_stats, s2p.masks_to_stats

    Ly, Lx = labels.shape
    if labels.max() == 0:
        return np.array([], dtype=object)
    d = np.ravel(np.asarray(diameter, dtype=float))
    d = [d[0], d[0]] if d.size == 1 else [d[0], d[1]]
    stat = masks_to_stats(labels.astype(np.int32), weights)
    stat = roi_stats(stat, Ly, Lx, diameter=d, max_overlap=None, do_soma_crop=bool(soma_crop), npix_norm_min=-np.inf,
                     npix_norm_max=np.inf, median=True)
    return assign_overlaps(stat, Ly, Lx)


def import_meta(source_path, labels: np.ndarray, n_rois: int, renumbered: bool) -> dict:
    return {
        "source_format": "cellpose",
        "source_path": os.path.abspath(os.fspath(source_path)),
        "converted_at": now_iso(),
        "n_rois": int(n_rois),
        "shape": [int(v) for v in labels.shape],
        "traces_extracted": True,
        "labels_renumbered": bool(renumbered),
    }
