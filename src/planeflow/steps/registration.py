"""registration: suite2p 1.x motion correction of one plane (part).

Reads ``data_raw.bin`` (never modified) and writes the registered movie to a new
``data.bin``, calling ``suite2p.registration.registration_wrapper`` with the raw
binary as input and the new one as output, as suite2p does with keep_movie_raw.
Imports only the suite2p modules it calls (:mod:`planeflow._s2p_import`); the
registration metrics (scikit-learn) only when they are computed.

Frames smaller than the non-rigid blocks (narrow mROI stripes in ``roi_mode: separate``,
small fields of view): suite2p 1.1.0 makes one block along a dimension whose length is at
most ``block_size`` and then fails inside torch ("Input and output sizes should be greater
than 0"). :func:`fit_blocks` adapts the block size of such a part before suite2p is called.
"""
from __future__ import annotations

import logging
import os
import shutil
import time

import numpy as np

from planeflow import suite2p_api as s2p
from planeflow.io.atomic import atomic_path, save_npy
from planeflow.io.history import append_history
from planeflow.steps._suite2p import is_plane_failure, prepare_suite2p_step


log = logging.getLogger("planeflow")

#: smallest non-rigid block planeflow adapts to; a frame side under 2 * MIN_BLOCK px
#: has no sensible block and non-rigid registration is turned off for that part
MIN_BLOCK = 32


def fit_blocks(Ly: int, Lx: int, block_size, nonrigid: bool) -> dict | None:
    """How the non-rigid blocks must change for a ``Ly`` x ``Lx`` frame, or None if they fit.

    suite2p 1.1.0 (``registration.nonrigid.make_blocks``/``calculate_nblocks``) needs at
    least two blocks along each side, i.e. ``block_size[d] < L[d]``. A side that breaks this
    gets the largest power of two <= L/2 (>= 3 overlapping blocks; the other side keeps its
    block size). If that is below :data:`MIN_BLOCK` px (a side under 64 px), non-rigid
    registration is turned off for this part (rigid registration still runs).

    Returns ``{"from", "to", "frame", "nonrigid", "reason"}`` (``to`` is None when non-rigid
    is turned off) or None when nothing changes.
    """
    if not nonrigid:
        return None
    frame = [int(Ly), int(Lx)]
    old = [int(b) for b in block_size]
    if all(b < L for b, L in zip(old, frame)):
        return None
    new = [b if b < L else 2 ** int(np.floor(np.log2(L / 2))) if L >= 2 else 0
           for b, L in zip(old, frame)]
    sides = [n for n, b, L in zip(new, old, frame) if b >= L]
    if min(sides) < MIN_BLOCK:
        return {"from": old, "to": None, "frame": frame, "nonrigid": False,
                "reason": f"frame {frame[0]}x{frame[1]} px is too small for non-rigid blocks "
                          f"(a side under {2 * MIN_BLOCK} px); non-rigid registration turned off, "
                          "rigid registration only"}
    return {"from": old, "to": new, "frame": frame, "nonrigid": True,
            "reason": f"block_size {old} is not smaller than the {frame[0]}x{frame[1]} px frame "
                      f"(suite2p needs two or more non-rigid blocks per side); using {new}"}


def registration(in_ops: str, in_bin: str, out_bin: str, out_ops: str, overrides: dict,
                 torch_device: str = "cpu", threads: int = 1, shared: str | None = None,
                 rigid: str | None = None, plane: int | None = None, part: int = 0) -> dict:
    """``shared``: the session's consensus (rule shared_motion) when shared motion is on;
    the plane (part) is then registered with its rigid shifts from there (``plane``, ``part``
    pick them), non-rigid per plane on top; ``rigid``: the plane's own rigid pass (its
    reference image)."""
    t0 = time.time()
    failure = None
    ops, settings, device = prepare_suite2p_step(in_ops, in_bin, overrides, torch_device, threads)
    n, Ly, Lx = ops["nframes"], ops["Ly"], ops["Lx"]
    adapted = fit_blocks(Ly, Lx, settings["registration"]["block_size"],
                         bool(settings["registration"]["nonrigid"]))
    if adapted is not None:
        settings = {**settings, "registration": {**settings["registration"],
                                                 "nonrigid": adapted["nonrigid"],
                                                 "block_size": adapted["to"] or adapted["from"]}}
        (log.info if adapted["nonrigid"] else log.warning)("registration: %s", adapted["reason"])
    rs = settings["registration"]
    times = {}
    with atomic_path(out_bin) as tmp:
        if settings["run"]["do_registration"] > 0:
            os.unlink(tmp)  # BinaryFile creates it with the right size
            with s2p.BinaryFile(Ly=Ly, Lx=Lx, filename=os.fspath(in_bin), n_frames=n) as f_raw, \
                 s2p.BinaryFile(Ly=Ly, Lx=Lx, filename=os.fspath(tmp), n_frames=n, write=True) as f_reg:
                given = None
                if shared and not s2p.private_ok():  # the public path: the plane's own motion
                    log.warning("registration: %s", s2p.version_warning())
                elif shared:
                    given = shared_shifts(shared, rigid, plane, part)
                try:
                    if given is not None:
                        reg = register_with_shifts(f_raw, f_reg, given, rs, device)
                    else:
                        reg = s2p.registration_wrapper(
                            f_reg, f_raw=f_raw, align_by_chan2=rs["align_by_chan2"], save_path=None,
                            badframes=None, settings=rs, device=device)
                except Exception as e:
                    if not is_plane_failure(e):
                        raise  # out of memory, the device: the job fails and is retried
                    failure = f"suite2p registration failed on this plane: {type(e).__name__}: {e}"
                    log.warning("registration: %s; keeping the movie unregistered and marking "
                                "the plane as failed (detection will leave it empty)", failure)
                    reg = unregistered(f_raw, f_reg, ops)
                times["registration"] = time.time() - t0
                if settings["run"]["do_regmetrics"] and n >= 1500:
                    t1 = time.time()
                    reg["tPC"], reg["regPC"], reg["regDX"] = s2p.get_pc_metrics(
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
    if failure:
        reg["plane_failure"] = {"step": "registration", "reason": failure}
    out = {**ops, **settings, **reg, "reg_file": os.path.abspath(out_bin),
           "reg_output_keys": sorted(reg), "settings_keys": sorted(settings),
           "plane_times": {**ops.get("plane_times", {}), **times}}
    if adapted is not None:
        out["block_size_adapted"] = adapted
    out = append_history(out, "registration", [in_ops, in_bin], time.time() - t0, {
        "device": str(device),
        "nonrigid": bool(rs["nonrigid"]),
        "block_size": [int(b) for b in rs["block_size"]],
        **({"block_size_adapted": adapted} if adapted is not None else {}),
        "shared_motion": reg.get("shared_motion"),
        "max_rigid_shift_px": float(np.max(np.hypot(reg["yoff"], reg["xoff"]))) if "yoff" in reg else 0.0,
        "n_badframes": int(np.sum(reg["badframes"])),
        "failure": failure,
    })
    save_npy(out_ops, out)
    return out


def unregistered(f_raw, f_reg, ops: dict) -> dict:
    """Copy the raw movie unchanged into ``f_reg`` and return registration outputs of
    zero shifts with every frame marked bad (a plane suite2p could not register)."""
    n, Ly, Lx = f_raw.shape
    for t in range(0, n, 500):
        f_reg[t:t + 500] = f_raw[t:t + 500]
    zeros = np.zeros(n, np.int64)
    return {"yrange": [0, Ly], "xrange": [0, Lx], "badframes": np.ones(n, bool),
            "badframes0": np.zeros(n, bool), "yoff": zeros, "xoff": zeros.copy(),
            "corrXY": np.zeros(n, np.float32), "meanImg": ops["meanImg"], "bidiphase": 0}


def shared_shifts(path: str, rigid: str, plane: int, part: int) -> dict:
    """One plane's (part's) entry of the shared_motion file, and the reference image of its
    own rigid pass (``rigid``)."""
    with np.load(path) as z:
        k = np.flatnonzero((z["plane"] == int(plane)) & (z["part"] == int(part)))
        if len(k) != 1:
            raise ValueError(f"'{path}' holds no shifts of plane {plane} part {part}")
        k = int(k[0])
        return {"yoff": z["yoff"][k], "xoff": z["xoff"][k], "own_yoff": z["own_yoff"][k],
                "own_xoff": z["own_xoff"][k], "bidiphase": int(z["bidiphase"][k]),
                "weight": float(z["weight"][k]), "agreement": float(z["agreement"][k]),
                "agrees": bool(z["agrees"][k]), "offset": z["offset"][k].tolist(),
                "refImg": np.load(rigid)["refImg"]}


#: share of a batch's block shifts at the non-rigid limit above which the non-rigid pass
#: follows nothing (:func:`locked_at_limit`)
LOCKED_SHARE = 0.5


def locked_at_limit(ymax1: np.ndarray, xmax1: np.ndarray, limit: float) -> bool:
    """Whether suite2p's non-rigid block shifts of a batch of frames sit at or beyond ``limit``
    (``maxregshiftNR``; its subpixel step reaches 3 px past it) in more than LOCKED_SHARE of
    blocks and frames: the block phase correlation found no peak (on the hard simulator's dim
    plane, seed 12, every block of every frame sat at 8 px with maxregshiftNR 5, which moved
    the plane's whole mean image 8 px)."""
    at = (np.abs(np.asarray(ymax1)) >= limit - 0.5) | (np.abs(np.asarray(xmax1)) >= limit - 0.5)
    return bool(at.size and at.mean() > LOCKED_SHARE)


def register_with_shifts(f_raw, f_reg, given: dict, rs: dict, device) -> dict:
    """suite2p registration of ``f_raw`` into ``f_reg`` with given rigid shifts.

    What ``registration_wrapper`` / ``register_frames`` do, with the rigid phase
    correlation replaced by ``given`` shifts. The reference: for a plane that agrees with
    the consensus, suite2p's own (from its rigid pass), so that such a plane is registered
    as suite2p alone would where its shifts equal the consensus; otherwise the mean of
    suite2p's sample of frames (``nimg_init``) moved by the given shifts. Each batch of frames (phase
    corrected, clipped to the reference's range) is moved by them, suite2p's non-rigid
    phase correlation runs on top (left out when its first batch's blocks sit at the shift
    limit: :func:`locked_at_limit`), ``shift_frames`` applies both; ``compute_crop`` then
    marks bad frames and the valid range. ``corrXY`` is the rigid phase correlation at the
    given shift. suite2p's two_step_registration is not used (the rigid shifts are fixed).
    """
    import torch

    n, Ly, Lx = f_raw.shape
    yoff = np.asarray(given["yoff"], np.int64)
    xoff = np.asarray(given["xoff"], np.int64)
    bidiphase = given["bidiphase"]
    if given["agrees"]:
        refImg = np.asarray(given["refImg"])
    else:
        ix = np.linspace(0, n, 1 + min(rs["nimg_init"], n), dtype=int)[:-1]
        sample = np.asarray(f_raw[ix]).astype(np.float32)
        if bidiphase != 0:
            sample = s2p.bidiphase_shift(sample, bidiphase)
        refImg = np.mean([np.roll(f, (-int(y), -int(x)), axis=(0, 1))
                          for f, y, x in zip(sample, yoff[ix], xoff[ix])], axis=0).astype("int16")
    (maskMul, maskOffset, cfRefImg, maskMulNR, maskOffsetNR, cfRefImgNR, blocks, rmin, rmax) = \
        s2p.compute_filters_and_norm(refImg, norm_frames=rs["norm_frames"], spatial_smooth=rs["smooth_sigma"],
                                          spatial_taper=rs["spatial_taper"],
                                          block_size=rs["block_size"] if rs["nonrigid"] else None,
                                          subpixel=rs["subpixel"], device=device)
    lcorr = int(min(np.round(rs["maxregshift"] * min(Ly, Lx)), min(Ly, Lx) // 2))
    mean_img = np.zeros((Ly, Lx), "float32")
    corr, nr = [], []
    use_nr = maskMulNR is not None and rs["maxregshiftNR"] > 0
    for t0 in range(0, n, rs["batch_size"]):
        t1 = min(t0 + rs["batch_size"], n)
        fr = torch.from_numpy(np.asarray(f_raw[t0:t1])).to(device)
        if bidiphase != 0:
            fr = s2p.bidiphase_shift(fr, bidiphase)
        fr_c = torch.clip(fr, rmin, rmax) if rmin > -np.inf else fr
        yk, xk = yoff[t0:t1], xoff[t0:t1]
        cc = s2p.rigid_phasecorr(fr_c, cfRefImg, maskMul, maskOffset, rs["maxregshift"], rs["smooth_sigma_time"],
                             return_cc=True)[3]
        iy, ix_ = np.clip(yk + lcorr, 0, 2 * lcorr), np.clip(xk + lcorr, 0, 2 * lcorr)
        corr.append(cc[np.arange(len(cc)), iy, ix_])
        ymax1 = xmax1 = None
        if use_nr:
            rolled = torch.stack([torch.roll(f, shifts=(-int(y), -int(x)), dims=(0, 1))
                                  for f, y, x in zip(fr_c, yk, xk)], axis=0)
            ymax1, xmax1, cmax1 = s2p.nonrigid_phasecorr(rolled, blocks, maskMulNR, maskOffsetNR, cfRefImgNR,
                                                     rs["snr_thresh"], rs["maxregshiftNR"])[:3]
            block_shifts = [a.cpu().numpy() for a in (ymax1, xmax1, cmax1)]
            if t0 == 0 and locked_at_limit(*block_shifts[:2], rs["maxregshiftNR"]):
                log.warning("registration: non-rigid pass left out: its blocks sit at the %s px limit in most "
                            "frames (a plane this dim has no structure for them to follow); rigid shifts only",
                            rs["maxregshiftNR"])
                use_nr, ymax1, xmax1 = False, None, None
            else:
                nr.append(tuple(block_shifts))
        frames = s2p.shift_frames(fr, yk, xk, ymax1, xmax1, blocks, device=device)
        mean_img += frames.sum(axis=0) / n
        f_reg[t0:t1] = frames
    corrXY = np.concatenate(corr)
    nonrigid_offsets = tuple(np.concatenate([b[i] for b in nr]) for i in range(3)) if nr else (None, None, None)
    badframes0 = np.zeros(n, bool)
    badframes, yrange, xrange = s2p.compute_crop(
        xoff=xoff, yoff=yoff, corrXY=corrXY, th_badframes=rs["th_badframes"], badframes=badframes0.copy(),
        maxregshift=rs["maxregshift"], Ly=Ly, Lx=Lx)
    reg = s2p.registration_outputs_to_dict(refImg, rmin, rmax, mean_img, (yoff, xoff, corrXY),
                                                nonrigid_offsets, (None, None), None, badframes, badframes0,
                                                yrange, xrange, bidiphase)
    reg["meanImgE"] = s2p.highpass_mean_image(mean_img.astype("float32"), aspect=1.0)
    reg["yoff_own"], reg["xoff_own"] = np.asarray(given["own_yoff"]), np.asarray(given["own_xoff"])
    reg["shared_motion"] = {k: given[k] for k in ("weight", "agreement", "agrees", "offset")}
    log.info("registration: rigid shifts from the session's consensus (weight %.1f, agreement %.0f%%%s)",
             given["weight"], 100 * given["agreement"], "" if given["agrees"] else ", consensus alone")
    return reg
