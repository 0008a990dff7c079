"""merge: assemble a plane's final suite2p folder from its part(s).

A plane is processed as one part (the whole frame) or, for multi-ROI recordings
processed separately, as several parts placed side by side. Merging shifts each
part's ROI pixels and centroids by the part's offset in the plane image,
concatenates traces and classifications along the ROI axis and tiles the images.
With one part the offsets are zero and the result equals that part's outputs.
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from planeflow import PlaneflowError
from planeflow.io.atomic import save_npy
from planeflow.io.history import append_history
from planeflow.io.planefiles import REG_METRICS, load_array, load_ops
from planeflow.plan.layout import PLANE_FILES

log = logging.getLogger("planeflow")

OUTPUT_NAMES = PLANE_FILES
#: keys of ops that hold planeflow's bookkeeping, not suite2p's
PLANEFLOW_KEYS = ("reg_output_keys", "detect_output_keys", "settings_keys")


def split_ops(ops: dict) -> dict:
    """Split flat ops into suite2p 1.x's db / settings / reg_outputs / detect_outputs files.

    suite2p's own readers (``suite2p.io.combined``, the NWB export, the GUI without
    ops.npy) load these. In db, ``dx``/``dy`` keep suite2p's meaning (ROI offsets in
    pixels, None here); planeflow's pixel sizes in µm are in ops.npy only.
    """
    settings = {k: ops[k] for k in ops.get("settings_keys", []) if k in ops}
    reg = {k: ops[k] for k in ops.get("reg_output_keys", []) if k in ops}
    for k in ("yrange", "xrange"):
        reg[k] = ops[k]
    det = {k: ops[k] for k in ops.get("detect_output_keys", []) if k in ops}
    taken = set(settings) | set(reg) | set(det) | set(PLANEFLOW_KEYS)
    db = {k: v for k, v in ops.items() if k not in taken}
    db["dx"] = db["dy"] = None
    return {"db": db, "settings": settings, "reg_outputs": reg, "detect_outputs": det}
FULL_IMAGES = ("meanImg", "meanImgE", "refImg", "meanImg_chan2")
CROPPED_IMAGES = ("max_proj", "Vcorr")
PIXEL_INDEX_KEYS = ("ipix_neuropil", "neuropil_mask")


def _shift_stat(stat, oy: int, ox: int, Lx_part: int, Lx_plane: int):
    out = []
    for s in stat:
        s = dict(s)
        s["ypix"] = np.asarray(s["ypix"]) + oy
        s["xpix"] = np.asarray(s["xpix"]) + ox
        s["med"] = [s["med"][0] + oy, s["med"][1] + ox]
        for key in PIXEL_INDEX_KEYS:  # flat indices into the part image
            if key in s and s[key] is not None and np.size(s[key]):
                y, x = np.divmod(np.asarray(s[key]), Lx_part)
                s[key] = (y + oy) * Lx_plane + (x + ox)
        out.append(s)
    return out


def merge(parts: list[dict], out: dict, plane_shape: tuple[int, int], offsets: list) -> dict:
    """``parts``: one dict per part with paths ops, stat, iscell, F, Fneu, spks, dff, and
    reg_ops: registration's ops, the one source of suite2p's registration metrics (regPC, tPC;
    the first part's, as suite2p's GUI shows one set) that the steps in between leave out.

    ``offsets``: (y, x) of each part's top-left corner in the plane image of ``plane_shape``.
    """
    t0 = time.time()
    if len(parts) != len(offsets):
        raise ValueError("one offset per part is needed")
    Ly, Lx = (int(v) for v in plane_shape)
    stats, arrays = [], {k: [] for k in ("iscell", "F", "Fneu", "spks", "dff")}
    canvases = {k: np.zeros((Ly, Lx), np.float32) for k in FULL_IMAGES + CROPPED_IMAGES}
    present = set()
    yr, xr = [Ly, 0], [Lx, 0]
    part_ops = []
    for part, (oy, ox) in zip(parts, offsets):
        ops = load_ops(part["ops"])
        part_ops.append(ops)
        ly, lx = int(ops["Ly"]), int(ops["Lx"])
        stat = load_array(part["stat"], allow_pickle=True)
        stats.extend(_shift_stat(stat, oy, ox, lx, Lx))
        for k in arrays:  # memory maps: each merged array is built and written on its own below
            arrays[k].append(load_array(part[k], mmap_mode="r"))
        if not len({len(stat)} | {a[-1].shape[0] for a in arrays.values()}) == 1:
            raise PlaneflowError(f"outputs of part '{part['ops']}' disagree on the number of ROIs; "
                                 "delete that plane's intermediate folders and rerun.")
        y0, y1 = (int(v) for v in ops.get("yrange", [0, ly]))
        x0, x1 = (int(v) for v in ops.get("xrange", [0, lx]))
        for k in FULL_IMAGES:
            if ops.get(k) is not None:
                canvases[k][oy:oy + ly, ox:ox + lx] = ops[k]
                present.add(k)
        for k in CROPPED_IMAGES:
            if ops.get(k) is not None:
                canvases[k][oy + y0:oy + y1, ox + x0:ox + x1] = ops[k]
                present.add(k)
        yr = [min(yr[0], oy + y0), max(yr[1], oy + y1)]
        xr = [min(xr[0], ox + x0), max(xr[1], ox + x1)]

    base = part_ops[0]
    merged = dict(base)
    if parts[0].get("reg_ops"):
        reg = load_ops(parts[0]["reg_ops"])
        merged.update({k: reg[k] for k in REG_METRICS if k in reg})
    merged.update({"Ly": Ly, "Lx": Lx, "yrange": yr, "xrange": xr, "nparts": len(parts)})
    for k in FULL_IMAGES:
        if k in present:
            merged[k] = canvases[k] if len(parts) > 1 else base[k]
    for k in CROPPED_IMAGES:
        if k in present:
            merged[k] = canvases[k][yr[0]:yr[1], xr[0]:xr[1]] if len(parts) > 1 else base[k]
    if len(parts) > 1:
        merged["parts"] = [{"offset": [int(oy), int(ox)], "Ly": int(o["Ly"]), "Lx": int(o["Lx"]),
                            "yoff": o.get("yoff"), "xoff": o.get("xoff"), "n_rois": int(n)}
                           for o, (oy, ox), n in zip(part_ops, offsets, [len(a) for a in arrays["iscell"]])]
    stat = np.array(stats, dtype=object) if stats else np.array([], dtype=object)
    merged = append_history(merged, "merge", [p["ops"] for p in parts], time.time() - t0,
                            {"n_parts": len(parts), "offsets": [list(map(int, o)) for o in offsets],
                             "n_rois": len(stat)})
    merged["save_path"] = os.path.dirname(os.path.abspath(out["ops"]))
    merged["ops_path"] = os.path.abspath(out["ops"])
    save_npy(out["stat"], stat)
    for k, v in arrays.items():  # one part's array is copied from its map; parts' are joined one array at a time
        save_npy(out[k], np.concatenate(v, axis=0) if len(v) > 1 else v[0])
    for name, part in split_ops(merged).items():
        save_npy(out[name], part)
    save_npy(out["ops"], merged)
    log.info("merge: %d part(s), %d ROIs", len(parts), len(stat))
    return merged
