"""detection: suite2p ROI detection, extraction, deconvolution and classification.

The calls and their order are those of suite2p 1.x's own ``pipeline`` for one plane
after registration, so that results equal ``suite2p.run_s2p`` on the same data.
Imports only the suite2p modules it calls (:mod:`planeflow._s2p_import`); cellpose's
models only with ``detection.algorithm: cellpose``.
"""
from __future__ import annotations

import logging
import time

import numpy as np
from scipy.stats import skew

from planeflow import suite2p_api as s2p
from planeflow.io.history import append_history
from planeflow.io.planefiles import save_plane_outputs, without_reg_metrics
from planeflow.plan.layout import PART_FILES
from planeflow.steps._suite2p import is_plane_failure, prepare_suite2p_step, select_classifier


log = logging.getLogger("planeflow")

OUTPUT_NAMES = tuple(PART_FILES["detection"])


def detection(in_ops: str, in_bin: str, out: dict, overrides: dict, torch_device: str = "cpu",
              threads: int = 1) -> dict:
    """``out`` maps each of OUTPUT_NAMES to its path. A plane processed in several parts (mROI
    stripes, ``acquisition.roi_mode: separate``; binary_write's ``ops["nparts"]``) gets sparsery's
    spatial scale from the ROI diameter (:func:`stripe_spatial_scale`)."""
    t0 = time.time()
    ops, settings, device = prepare_suite2p_step(in_ops, in_bin, overrides, torch_device, threads)
    scale_set = stripe_spatial_scale(settings, int(ops.get("nparts", 1)))
    if scale_set:
        settings["detection"]["sparsery_settings"]["spatial_scale"] = scale_set["to"]
        log.info("detection: %s", scale_set["reason"])
    n, Ly, Lx = ops["nframes"], ops["Ly"], ops["Lx"]
    classfile = select_classifier(settings)
    times = {}
    diameter = np.array(settings["diameter"], dtype=float).ravel()
    if diameter.size == 1:
        diameter = np.array([diameter[0], diameter[0]])

    failure = None
    with s2p.BinaryFile(Ly=Ly, Lx=Lx, filename=str(in_bin), n_frames=n) as f_reg:
        badframes = np.asarray(ops.get("badframes", np.zeros(n, bool))).copy()
        failure = unusable_plane(ops, badframes)
        try:
            if failure:
                raise PlaneUnusable(failure)
            detect_outputs, stat, redcell = s2p.detection_wrapper(
                f_reg, meanImg_chan2=None, yrange=ops["yrange"], xrange=ops["xrange"],
                tau=settings["tau"], fs=settings["fs"], diameter=diameter,
                settings=settings["detection"], classifier_path=classfile, badframes=badframes,
                preclassify=settings["classification"]["preclassify"], device=device)
        except Exception as e:
            if not (isinstance(e, PlaneUnusable) or is_plane_failure(e)):
                raise  # out of memory, the device: the job fails and is retried
            if isinstance(e, PlaneUnusable):
                pass
            elif "no ROIs were found" in str(e):
                # a blank plane (e.g. outside the tissue) is a result, not a failure
                log.warning("detection: suite2p found no ROI in this plane (%s); writing empty "
                            "outputs so the session completes", e)
            else:
                failure = f"suite2p detection failed on this plane: {type(e).__name__}: {e}"
            if failure:
                log.warning("detection: %s; writing an empty plane (no ROIs) so that the session "
                            "completes; QC marks it as failed", failure)
            detect_outputs, stat = empty_detection(ops, failure)
        times["detection"] = time.time() - t0
        log.info("detection: %d ROIs in %.1f s", len(stat), times["detection"])

        stat, F, Fneu, spks, iscell, more = extract_deconvolve_classify(
            stat, f_reg, settings, classfile, device)
        times.update(more)

    result = {**without_reg_metrics(ops), **settings, **detect_outputs, "diameter": diameter,
              "classifier_path": str(classfile), "detect_output_keys": sorted(detect_outputs),
              "settings_keys": sorted(settings),
              "plane_times": {**ops.get("plane_times", {}), **times}}
    if failure:
        result["plane_failure"] = {"step": "detection", "reason": failure}
    if scale_set:
        result["spatial_scale_set"] = scale_set
    result = append_history(result, "detection", [in_ops, in_bin], time.time() - t0, {
        "failure": failure,
        **({"spatial_scale_set": scale_set} if scale_set else {}),
        "n_rois": int(len(stat)),
        "n_cells": int(np.sum(iscell[:, 0])) if len(iscell) else 0,
        "algorithm": settings["detection"]["algorithm"],
        "classifier": str(classfile),
    })
    save_plane_outputs(out, stat, F, Fneu, spks, iscell, result)
    return result


def stripe_spatial_scale(settings: dict, nparts: int) -> dict | None:
    """The spatial scale sparsery detects at in one part of a plane processed in stripes
    (``nparts`` > 1, ``acquisition.roi_mode: separate``) when suite2p would estimate it
    (``detection.sparsery_settings.spatial_scale: 0``, its default), or None (nothing changes).

    suite2p's estimate is the most common best scale among the 50 brightest peaks of its
    correlation map, one peak per 11 x 11 px. In a stripe (e.g. 128 x 96 px, 9 cells) every
    peak gets a vote, and background and edge peaks, which favour the smallest boxes, outvote
    the cells: measured on planted 10-px cells, 6 px or 48 px instead of the 12 px estimated on
    the stitched plane, and recall fell to 0.55 (docs/inputs.md). The stripes of a plane share
    their optics and cells, so each part uses the scale of the ROI ``diameter`` (the sessions
    sheet's or the config's, else suite2p's default): sparsery's box side ``3 * 2**scale`` px
    nearest to it on a log scale, ``round(log2(diameter / 3))`` within suite2p's 1..4. A
    spatial scale set in the config is kept, and so is every other detection algorithm.
    """
    det = settings.get("detection") or {}
    sparsery = det.get("sparsery_settings") or {}
    if nparts <= 1 or det.get("algorithm", "sparsery") != "sparsery" or int(sparsery.get("spatial_scale", 0)) > 0:
        return None
    d = float(np.mean(np.asarray(settings["diameter"], dtype=float)))
    scale = int(np.clip(np.round(np.log2(max(d, 1e-6) / 3)), 1, 4))
    return {"from": int(sparsery.get("spatial_scale", 0)), "to": scale, "pixels": 3 * 2 ** scale,
            "diameter": d, "nparts": int(nparts),
            "reason": (f"one of {nparts} mROI stripes of the plane: sparsery's spatial scale set to "
                       f"{scale} ({3 * 2 ** scale} px, from the ROI diameter {d:g} px) instead of "
                       "suite2p's estimate, which is unreliable in a field this small; set "
                       "detection.sparsery_settings.spatial_scale to choose another")}


class PlaneUnusable(Exception):
    """suite2p cannot detect cells on this plane (the reason is the message)."""


#: fewest frames registration must have kept (not bad frames) for detection to run
MIN_GOOD_FRAMES = 10


def unusable_plane(ops: dict, badframes) -> str | None:
    """Why suite2p's detection cannot work on this registered plane, or None.

    Checked before detection so that a plane whose registration failed (every frame
    at the shift limit and hence a bad frame, e.g. a plane too dim to register) ends
    as an empty plane with this reason instead of a numpy error deep in suite2p.
    """
    if ops.get("plane_failure"):
        return ops["plane_failure"]["reason"]
    n = len(badframes)
    good = int(n - np.sum(badframes))
    if good < MIN_GOOD_FRAMES:
        return (f"registration kept {good} of {n} frames (the others are bad frames: shifts at the "
                "limit or poor correlation with the reference), too few to detect cells; the plane is "
                "probably too dim or empty to register on its own")
    (y0, y1), (x0, x1) = ops["yrange"], ops["xrange"]
    if y1 - y0 < 2 or x1 - x0 < 2:
        return f"registration left no valid field of view (yrange {ops['yrange']}, xrange {ops['xrange']})"
    return None


def empty_detection(ops: dict, failure: str | None):
    """suite2p's detect outputs of a plane without ROIs (blank, or failed with ``failure``)."""
    (y0, y1), (x0, x1) = ops["yrange"], ops["xrange"]
    crop = np.zeros((max(int(y1) - int(y0), 0), max(int(x1) - int(x0), 0)), np.float32)
    out = {"Vcorr": crop, "max_proj": crop.copy(), "no_rois": True}
    if failure:
        out["failure"] = failure
    return out, np.array([], dtype=object)


def extract_deconvolve_classify(stat, f_reg, settings: dict, classfile, device,
                                snr_filter: bool = True):
    """suite2p's steps after ROI detection, in the order of its own pipeline: extraction
    (ROI and neuropil traces; with ``snr_filter`` ROIs below
    ``extraction.snr_threshold`` are dropped and the rest re-extracted), per-ROI snr,
    skew and std, deconvolution (preprocess + OASIS) and classification.

    ``f_reg``: the open registered movie (suite2p ``BinaryFile``). Returns ``(stat, F,
    Fneu, spks, iscell, times)``; an empty ``stat`` gives empty arrays.
    """
    n, Ly, Lx = f_reg.shape
    times = {}
    if len(stat) == 0:
        log.warning("no ROI in this plane; writing empty traces and classification")
        F = Fneu = spks = np.zeros((0, n), np.float32)
        return stat, F, Fneu, spks, np.zeros((0, 2)), times

    ex = settings["extraction"]
    t1 = time.time()
    snr_threshold = ex["snr_threshold"] if snr_filter else 0
    for step in range(1 + (snr_threshold > 0)):
        F, Fneu, _, _ = s2p.extraction_wrapper(stat, f_reg, f_reg_chan2=None,
                                                      settings=ex, device=device)
        dF = F.copy() - ex["neuropil_coefficient"] * Fneu
        snr = 1 - 0.5 * np.diff(dF, axis=1).var(axis=1) / dF.var(axis=1)
        keep = snr > snr_threshold
        if step == 0 and snr_threshold > 0 and (~keep).sum() > 0:
            log.info("extraction: removing %d ROIs with snr < %s", (~keep).sum(), snr_threshold)
            stat = s2p.assign_overlaps(stat[keep], Ly, Lx)
        else:
            break
    sk, sd = skew(dF, axis=1), np.std(dF, axis=1)
    for k, s in enumerate(stat):
        s["snr"], s["skew"], s["std"] = snr[k], sk[k], sd[k]
    times["extraction"] = time.time() - t1

    t1 = time.time()
    if settings["run"]["do_deconvolution"]:
        dF = F.copy() - ex["neuropil_coefficient"] * Fneu
        dF = s2p.preprocess(F=dF, fs=settings["fs"], batch_size=ex["batch_size"],
                                   device=device, **settings["dcnv_preprocess"])
        spks = s2p.oasis(F=dF, batch_size=ex["batch_size"], tau=settings["tau"],
                                fs=settings["fs"])
    else:
        spks = np.zeros_like(F)
    times["deconvolution"] = time.time() - t1
    t1 = time.time()
    iscell = s2p.classify(stat=stat, classfile=classfile)
    times["classification"] = time.time() - t1
    return stat, F, Fneu, spks, iscell, times
