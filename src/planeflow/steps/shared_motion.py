"""shared_motion: one consensus rigid motion for the simultaneous planes of a session.

Each plane's rigid shifts (rule rigid_shifts) are relative to its own reference image,
i.e. the brain's motion minus a constant per plane. The consensus removes those constants
(each plane's median shift, then refined against the consensus) and takes, frame by frame,
the weighted median over planes (and parts) of the centred shifts, weighted by each plane's
registration quality (median peak SNR of its phase correlation). A weighted median follows
the planes that carry most of the weight and ignores a plane that is wrong, however wrong.

The shifts each plane is then registered with: the consensus plus that plane's constant,
for a plane that agrees with the consensus on at least ``AGREEMENT`` of the frames (its
registered movie stays where its own registration would put it); the consensus alone for
a plane that does not agree (a plane too dim to register: its own constant is noise).
"""
from __future__ import annotations

import logging
import time

import numpy as np

from planeflow.io.atomic import atomic_path

log = logging.getLogger("planeflow")

#: a plane agrees with the consensus when its shifts are within TOLERANCE px of it (after
#: its constant) on at least this fraction of frames
AGREEMENT = 0.5
TOLERANCE = 1.0


def weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per column of ``values`` (planes, frames): the smallest value whose cumulative weight
    reaches half the total."""
    order = np.argsort(values, axis=0, kind="stable")
    v = np.take_along_axis(values, order, axis=0)
    cw = np.cumsum(np.asarray(weights, float)[order], axis=0)
    k = np.argmax(cw >= 0.5 * cw[-1], axis=0)
    return v[k, np.arange(values.shape[1])]


def consensus(yoff: np.ndarray, xoff: np.ndarray, weights: np.ndarray) -> dict:
    """``yoff``, ``xoff``: (planes, frames) integer rigid shifts; ``weights``: (planes,)."""
    shifts = np.stack([yoff, xoff]).astype(float)                  # (2, planes, frames)
    offset = np.round(np.median(shifts, axis=2))                   # (2, planes)
    for _ in range(2):  # centre, take the weighted median, refine each plane's constant
        cons = np.stack([weighted_median(shifts[a] - offset[a][:, None], weights) for a in (0, 1)])
        offset = np.round(np.median(shifts - cons[:, None, :], axis=2))
    resid = np.abs(shifts - offset[:, :, None] - cons[:, None, :]).max(axis=0)   # (planes, frames)
    agreement = np.mean(resid <= TOLERANCE, axis=1)
    agrees = agreement >= AGREEMENT
    applied = cons[:, None, :] + np.where(agrees, offset, 0.0)[:, :, None]
    return {"consensus_y": cons[0].astype(np.int64), "consensus_x": cons[1].astype(np.int64),
            "yoff": applied[0].astype(np.int64), "xoff": applied[1].astype(np.int64),
            "offset": offset.T.astype(np.int64), "agreement": agreement, "agrees": agrees}


def shared_motion(inputs: list[dict], out_shifts: str) -> dict:
    """``inputs``: one dict per plane and part (plane, part, shifts = a rigid_shifts file)."""
    t0 = time.time()
    runs = []
    for i in inputs:
        with np.load(i["shifts"]) as z:
            runs.append({k: z[k] for k in ("yoff", "xoff", "quality", "bidiphase")})
    nframes = {len(r["yoff"]) for r in runs}
    if len(nframes) != 1:
        raise ValueError(f"rigid passes of different lengths {sorted(nframes)}: planes are not simultaneous")
    weights = np.array([max(float(r["quality"]), 1e-6) for r in runs])
    yoff = np.stack([r["yoff"] for r in runs])
    xoff = np.stack([r["xoff"] for r in runs])
    res = consensus(yoff, xoff, weights)
    with atomic_path(out_shifts, suffix=".npz") as tmp:
        np.savez(tmp, plane=np.array([int(i["plane"]) for i in inputs]),
                 part=np.array([int(i["part"]) for i in inputs]), weight=weights,
                 own_yoff=yoff, own_xoff=xoff, bidiphase=np.array([int(r["bidiphase"]) for r in runs]), **res)
    for i, w, a, ok in zip(inputs, weights, res["agreement"], res["agrees"]):
        log.info("shared_motion: plane %s part %s: weight %.1f, agrees with the consensus on %.0f%% of "
                 "frames%s", i["plane"], i["part"], w, 100 * a,
                 "" if ok else " - registered with the consensus alone (its own shifts disagree)")
    log.info("shared_motion: consensus of %d planes/parts over %d frames in %.1f s", len(inputs),
             yoff.shape[1], time.time() - t0)
    return res
