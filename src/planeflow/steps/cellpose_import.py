"""cellpose_import: ROIs edited in the cellpose GUI back into a suite2p plane folder.

Reads an edited ``<name>_seg.npy``, turns its masks into suite2p ``stat`` with
suite2p's own code (``masks_to_stats``, ``roi_stats``), then extracts traces from the
plane's registered binary, deconvolves and classifies exactly as the detection step
does (:func:`planeflow.steps.detection.extract_deconvolve_classify`). Writes
``{ops,stat,iscell,F,Fneu,spks,conversion_meta}.npy`` in suite2p's layout.
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from planeflow import PlaneflowError
from planeflow.core import cellpose_masks as cp
from planeflow.io.history import append_history
from planeflow.io.planefiles import load_ops, save_plane_outputs
from planeflow.steps._suite2p import prepare_suite2p_step, select_classifier
from planeflow.plan.layout import CELLPOSE_IMPORT_FILES
from planeflow import suite2p_api as s2p
from planeflow.steps.detection import extract_deconvolve_classify

log = logging.getLogger("planeflow")

OUTPUT_NAMES = tuple(CELLPOSE_IMPORT_FILES)
ISCELL_CHOICES = ("all", "classifier")
#: postprocess results in the plane's ops that describe the old ROIs, not the imported ones
STALE_KEYS = ("filter_results", "iscell_filtered", "dff")


def cellpose_import(in_seg: str, in_ops: str, in_bin: str, out: dict, overrides: dict,
                    torch_device: str = "cpu", threads: int = 1,
                    iscell_mode: str = "all") -> dict:
    """``out`` maps each of OUTPUT_NAMES to its path; returns the new ops.

    ``iscell_mode``: ``all`` = every imported ROI is accepted (the masks are the user's
    decision; the classifier's probability is kept in iscell[:, 1]); ``classifier`` =
    suite2p's classifier decides, as in detection.
    """
    t0 = time.time()
    if iscell_mode not in ISCELL_CHOICES:
        raise PlaneflowError(f"config cellpose.import_iscell is '{iscell_mode}'; use one of "
                             f"{', '.join(ISCELL_CHOICES)}.")
    ops0 = load_ops(in_ops)
    if int(ops0.get("nparts", 1)) > 1:
        raise PlaneflowError(
            f"plane '{os.path.dirname(in_ops)}' was processed as {ops0['nparts']} parts "
            "(acquisition.roi_mode: separate); cellpose_import needs one registered movie per "
            "plane. Process the session with roi_mode stitch to edit its ROIs in cellpose.")
    Ly, Lx = int(ops0["Ly"]), int(ops0["Lx"])
    labels, renumbered = cp.read_seg(in_seg, (Ly, Lx))   # bad input fails before any work

    ops, settings, device = prepare_suite2p_step(in_ops, in_bin, overrides, torch_device, threads)
    classfile = select_classifier(settings)
    weights = cp.mean_image_weights(ops["meanImg"])
    stat = cp.labels_to_stat(labels, weights, settings["diameter"],
                             soma_crop=settings["detection"].get("soma_crop", True))
    log.info("cellpose_import: %d ROIs from '%s'%s", len(stat), in_seg,
             " (labels renumbered 1..n)" if renumbered else "")
    with s2p.BinaryFile(Ly=Ly, Lx=Lx, filename=str(in_bin), n_frames=int(ops["nframes"])) as f_reg:
        # every drawn ROI is kept: no snr filter
        stat, F, Fneu, spks, iscell, times = extract_deconvolve_classify(
            stat, f_reg, settings, classfile, device, snr_filter=False)
    iscell = np.asarray(iscell, dtype=float)
    if iscell_mode == "all" and len(iscell):
        iscell[:, 0] = 1.0

    meta = cp.import_meta(in_seg, labels, len(stat), renumbered)
    result = {k: v for k, v in ops.items() if k not in STALE_KEYS}
    result.update({
        **{k: settings[k] for k in ("extraction", "dcnv_preprocess", "classification", "tau", "fs")},
        "classifier_path": str(classfile),
        "save_path": os.path.dirname(os.path.abspath(out["ops"])),
        "ops_path": os.path.abspath(out["ops"]),
        "plane_times": {**ops.get("plane_times", {}), **{f"cellpose_import_{k}": v for k, v in times.items()}},
        "cellpose_import": {k: meta[k] for k in ("source_path", "converted_at", "n_rois")},
    })
    result = append_history(result, "cellpose_import", [in_seg, in_ops, in_bin], time.time() - t0, {
        "n_rois": int(len(stat)),
        "n_cells": int(np.sum(iscell[:, 0])) if len(iscell) else 0,
        "iscell": iscell_mode,
        "classifier": str(classfile),
        "labels_renumbered": bool(renumbered),
    })
    save_plane_outputs(out, stat, F, Fneu, spks, iscell, result, conversion_meta=meta)
    log.info("cellpose_import: %d ROIs, %d accepted", len(stat),
             int(np.sum(iscell[:, 0])) if len(iscell) else 0)
    return result
