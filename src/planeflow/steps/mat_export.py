"""mat_export: a finished plane as suite2p's ``Fall.mat``, for MATLAB users.

Runs when the suite2p setting ``io.save_mat`` is true (``suite2p: {io: {save_mat: true}}`` in the
config), as suite2p's own pipeline writes ``Fall.mat`` then. The file is written by suite2p's
``suite2p.io.save_mat`` from the plane's final folder (ops, stat, F, Fneu, spks, iscell), into a
temporary folder beside the output and then renamed, so a killed job leaves no partial file.
"""
from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile
import time

import numpy as np

from planeflow import suite2p_api as s2p
from planeflow.io.planefiles import load_array, load_ops

log = logging.getLogger("planeflow")


def matlab_safe(value):
    """``value`` with every None, also inside lists (planeflow's processing_history), as an empty
    array: scipy's savemat cannot write None, and suite2p's save_mat replaces it in dicts only."""
    if value is None:
        return np.array([])
    if isinstance(value, dict):
        return {k: matlab_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [matlab_safe(v) for v in value]
    return value


def mat_export(plane: dict, out_mat: str) -> dict:
    """``plane``: the files of a final plane folder (planeflow.plan.layout.plane_folder_files);
    writes ``out_mat``. Returns the number of ROIs and frames written."""
    t0 = time.time()
    ops = load_ops(plane["ops"])
    arrays = {k: load_array(plane[k], allow_pickle=k == "stat") for k in ("stat", "F", "Fneu", "spks", "iscell")}
    folder = os.path.dirname(os.path.abspath(out_mat))
    os.makedirs(folder, exist_ok=True)
    for stale in glob.glob(os.path.join(glob.escape(folder), ".mat_export.*")):  # a killed earlier try
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".mat_export.") as tmp:
        # suite2p writes Fall.mat into ops["save_path"]: a temporary folder, renamed when complete
        s2p.save_mat(matlab_safe({**ops, "save_path": tmp}), arrays["stat"], arrays["F"], arrays["Fneu"],
                     arrays["spks"], arrays["iscell"], None)
        os.replace(os.path.join(tmp, "Fall.mat"), out_mat)
    n_rois, n_frames = arrays["F"].shape if arrays["F"].ndim == 2 else (0, 0)
    log.info("mat_export: %d ROIs x %d frames to %s in %.1f s", n_rois, n_frames, out_mat, time.time() - t0)
    return {"n_rois": int(n_rois), "n_frames": int(n_frames)}
