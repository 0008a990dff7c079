"""rigid_shifts: the cheap rigid pass of one plane (part) for shared motion.

suite2p's own rigid registration, shifts only: the reference image from a sample of
frames (``registration.compute_reference``, after the same bidirectional-phase estimate
as ``registration_wrapper``), then rigid phase correlation of every frame against it
(``compute_filters_and_norm`` + ``rigid.phasecorr``, as ``register_frames`` does). One
read of ``data_raw.bin``; nothing is written back. Besides suite2p's shifts and
correlations it keeps each frame's peak SNR of the phase-correlation map (peak over the
map's std, after its mean): the plane's registration quality that weights it in the
session's consensus (rule shared_motion).
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from planeflow import suite2p_api as s2p
from planeflow.io.atomic import atomic_path
from planeflow.steps._suite2p import prepare_suite2p_step

log = logging.getLogger("planeflow")


def reference_and_bidiphase(f_raw, rs: dict, device):
    """suite2p's reference image and bidirectional phase offset of a movie, computed as
    ``registration_wrapper`` does when it is given no reference."""
    n = f_raw.shape[0]
    ix = np.linspace(0, n, 1 + min(rs["nimg_init"], n), dtype=int)[:-1]
    frames = f_raw[ix].copy()
    bidiphase = s2p.bidiphase_compute(frames) if rs["do_bidiphase"] and rs["bidiphase"] == 0 else rs["bidiphase"]
    if bidiphase != 0:
        frames = s2p.bidiphase_shift(frames, bidiphase)
    return s2p.compute_reference(frames, settings=rs, device=device), int(bidiphase)


def rigid_pass(f_raw, refImg, bidiphase: int, rs: dict, device) -> dict:
    """Rigid shifts of every frame against ``refImg`` with suite2p's rigid phase correlation
    (frames clipped to the reference's range as in ``compute_shifts``); per frame yoff, xoff,
    corrXY and the correlation map's peak SNR."""
    import torch

    maskMul, maskOffset, cfRefImg, *_, rmin, rmax = s2p.compute_filters_and_norm(
        refImg, norm_frames=rs["norm_frames"], spatial_smooth=rs["smooth_sigma"],
        spatial_taper=rs["spatial_taper"], block_size=None, device=device)
    n = f_raw.shape[0]
    out = {k: [] for k in ("yoff", "xoff", "corrXY", "peak_snr")}
    for t0 in range(0, n, rs["batch_size"]):
        fr = torch.from_numpy(np.asarray(f_raw[t0:min(t0 + rs["batch_size"], n)])).to(device)
        if bidiphase != 0:
            fr = s2p.bidiphase_shift(fr, bidiphase)
        if rmin > -np.inf:
            fr = torch.clip(fr, rmin, rmax)
        ymax, xmax, cmax, cc = s2p.rigid_phasecorr(fr, cfRefImg, maskMul, maskOffset, rs["maxregshift"],
                                               rs["smooth_sigma_time"], return_cc=True)
        cc = cc.reshape(len(cc), -1)
        out["yoff"].append(ymax.cpu().numpy())
        out["xoff"].append(xmax.cpu().numpy())
        out["corrXY"].append(cmax.cpu().numpy())
        out["peak_snr"].append((cc.max(axis=1) - cc.mean(axis=1)) / (cc.std(axis=1) + 1e-12))
    return {k: np.concatenate(v) for k, v in out.items()}


def rigid_shifts(in_ops: str, in_bin: str, out_shifts: str, overrides: dict, torch_device: str = "cpu",
                 threads: int = 1) -> dict:

    t0 = time.time()
    ops, settings, device = prepare_suite2p_step(in_ops, in_bin, overrides, torch_device, threads)
    rs = settings["registration"]
    with s2p.BinaryFile(Ly=ops["Ly"], Lx=ops["Lx"], filename=os.fspath(in_bin), n_frames=ops["nframes"]) as f_raw:
        refImg, bidiphase = reference_and_bidiphase(f_raw, rs, device)
        res = rigid_pass(f_raw, refImg, bidiphase, rs, device)
    quality = float(np.median(res["peak_snr"]))
    with atomic_path(out_shifts, suffix=".npz") as tmp:
        np.savez(tmp, **res, refImg=refImg, bidiphase=bidiphase, quality=quality,
                 Ly=ops["Ly"], Lx=ops["Lx"], maxregshift=rs["maxregshift"])
    log.info("rigid_shifts: %d frames, y %d..%d, x %d..%d px, quality (median peak SNR) %.1f, %.1f s",
             len(res["yoff"]), res["yoff"].min(), res["yoff"].max(), res["xoff"].min(), res["xoff"].max(),
             quality, time.time() - t0)
    return {"quality": quality}
