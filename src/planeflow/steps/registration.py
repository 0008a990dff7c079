"""registration: suite2p 1.x motion correction of one plane (part).

Reads ``data_raw.bin`` (never modified) and writes the registered movie to a new
``data.bin``, calling ``suite2p.registration.registration_wrapper`` with the raw
binary as input and the new one as output, as suite2p does with keep_movie_raw.
Imports only the suite2p modules it calls (:mod:`planeflow._s2p_import`); the
registration metrics (scikit-learn) only when they are computed.
"""
from __future__ import annotations

import logging
import os
import shutil
import time

import numpy as np

from planeflow._s2p_import import suite2p_module
from planeflow.io.atomic import atomic_path, save_npy
from planeflow.io.history import append_history
from planeflow.steps._suite2p import prepare_suite2p_step

s2p_register = suite2p_module("suite2p.registration.register")
BinaryFile = suite2p_module("suite2p.io.binary").BinaryFile

log = logging.getLogger("planeflow")


def registration(in_ops: str, in_bin: str, out_bin: str, out_ops: str, overrides: dict,
                 torch_device: str = "cpu", threads: int = 1) -> dict:
    t0 = time.time()
    ops, settings, device = prepare_suite2p_step(in_ops, in_bin, overrides, torch_device, threads)
    n, Ly, Lx = ops["nframes"], ops["Ly"], ops["Lx"]
    rs = settings["registration"]
    times = {}
    with atomic_path(out_bin) as tmp:
        if settings["run"]["do_registration"] > 0:
            os.unlink(tmp)  # BinaryFile creates it with the right size
            with BinaryFile(Ly=Ly, Lx=Lx, filename=os.fspath(in_bin), n_frames=n) as f_raw, \
                 BinaryFile(Ly=Ly, Lx=Lx, filename=os.fspath(tmp), n_frames=n, write=True) as f_reg:
                reg = s2p_register.registration_wrapper(
                    f_reg, f_raw=f_raw, align_by_chan2=rs["align_by_chan2"], save_path=None,
                    badframes=None, settings=rs, device=device)
                times["registration"] = time.time() - t0
                if settings["run"]["do_regmetrics"] and n >= 1500:
                    t1 = time.time()
                    get_pc_metrics = suite2p_module("suite2p.registration.metrics").get_pc_metrics
                    reg["tPC"], reg["regPC"], reg["regDX"] = get_pc_metrics(
                        f_reg, yrange=reg["yrange"], xrange=reg["xrange"], settings=rs)
                    times["registration_metrics"] = time.time() - t1
            log.info("registration: %d frames, rigid shift y %.2f..%.2f, x %.2f..%.2f px",
                     n, np.min(reg["yoff"]), np.max(reg["yoff"]), np.min(reg["xoff"]), np.max(reg["xoff"]))
        else:
            # registration switched off: the movie is used as it is
            shutil.copyfile(in_bin, tmp)
            reg = {"yrange": [0, Ly], "xrange": [0, Lx], "badframes": np.zeros(n, bool),
                   "meanImg": ops["meanImg"]}
            log.info("registration: skipped (suite2p run.do_registration = 0)")
    out = {**ops, **settings, **reg, "reg_file": os.path.abspath(out_bin),
           "reg_output_keys": sorted(reg), "settings_keys": sorted(settings),
           "plane_times": {**ops.get("plane_times", {}), **times}}
    out = append_history(out, "registration", [in_ops, in_bin], time.time() - t0, {
        "device": str(device),
        "nonrigid": bool(rs["nonrigid"]),
        "max_rigid_shift_px": float(np.max(np.hypot(reg["yoff"], reg["xoff"]))) if "yoff" in reg else 0.0,
        "n_badframes": int(np.sum(reg["badframes"])),
    })
    save_npy(out_ops, out)
    return out
