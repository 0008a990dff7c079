"""cellpose_export: a finished plane's ROIs as a cellpose label image and GUI file.

Writes, from ``suite2p/plane<p>/{ops,stat,iscell}.npy``: ``masks.npy`` (label image,
0 = background, exported ROI i = label i + 1), the summary image ``<name>.tif``, the
``<name>_seg.npy`` that the cellpose GUI opens (written by cellpose's own
``masks_flows_to_seg``) and ``conversion_meta.npy`` (which stat index each label
is). See :mod:`planeflow.core.cellpose_masks` for how overlapping ROIs are resolved.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import tifffile

from planeflow.core import cellpose_masks as cp
from planeflow.io.atomic import atomic_path, save_npy
from planeflow.io.history import append_history
from planeflow.io.planefiles import load_array, load_ops
from planeflow.plan.layout import CELLPOSE_EXPORT_FILES

log = logging.getLogger("planeflow")

OUTPUT_NAMES = tuple(CELLPOSE_EXPORT_FILES)


def cellpose_export(in_ops: str, in_stat: str, in_iscell: str, out: dict,
                    img_key: str = "meanImg", rois: str = "accepted") -> dict:
    """``out`` maps each of OUTPUT_NAMES to its path; returns conversion_meta."""
    t0 = time.time()
    ops = load_ops(in_ops)
    stat = load_array(in_stat, allow_pickle=True)
    iscell = load_array(in_iscell)
    Ly, Lx = int(ops["Ly"]), int(ops["Lx"])
    img = cp.summary_image(ops, img_key)
    indices = cp.select_rois(iscell, len(stat), rois)
    labels = cp.stat_to_labels(stat, Ly, Lx, indices)
    diameter = float(np.mean(np.ravel(ops.get("diameter", [0.0]))))

    meta = cp.export_meta(Path(in_stat).parent, labels, img_key, indices, rois, len(stat))
    if meta["hidden_labels"]:
        log.warning("cellpose_export: ROI(s) %s share their peak pixel with an earlier ROI and "
                    "have no pixel left in the label image",
                    [int(indices[lab - 1]) for lab in meta["hidden_labels"]])
    meta.update(image=Path(out["image"]).name, seg=Path(out["seg"]).name)

    with atomic_path(out["image"], suffix=".tif") as tmp:
        tifffile.imwrite(tmp, img, photometric="minisblack", metadata=None)
    save_npy(out["masks"], labels)
    cp.write_seg(out["seg"], img, labels, image_name=Path(out["image"]).name, diameter=diameter)
    hist = append_history({"processing_history": ops.get("processing_history", [])},
                          "cellpose_export", [in_ops, in_stat, in_iscell], time.time() - t0,
                          {"n_rois": meta["n_rois"], "img_key": img_key, "rois": rois})
    meta["processing_history"] = hist["processing_history"]
    save_npy(out["conversion_meta"], meta)
    log.info("cellpose_export: %d of %d ROIs (%s) on %s, %dx%d", meta["n_rois"], len(stat),
             rois, img_key, Ly, Lx)
    return meta
