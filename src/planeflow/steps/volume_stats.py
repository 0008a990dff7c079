"""volume_stats: per-session table, voxel size, a zarr volume and a summary figure."""
from __future__ import annotations

import json
import logging
import os
import shutil
import time

import numpy as np

from planeflow import __version__
from planeflow.core import figures
from planeflow.io.atomic import save_json, save_text
from planeflow.io.history import suite2p_version
from planeflow.io.planefiles import load_array, load_ops
from planeflow.plan.layout import VOLUME_FILES

log = logging.getLogger("planeflow")

OUTPUT_NAMES = tuple(VOLUME_FILES)


def _stage_times(ops: dict) -> dict:
    """Seconds per step from the plane's processing_history."""
    out: dict = {}
    for h in ops.get("processing_history", []):
        out[h["step"]] = out.get(h["step"], 0.0) + float(h.get("duration", 0.0))
    return out


def volume_stats(planes: list[dict], out: dict, session: dict) -> dict:
    """``planes``: per plane (in plane order) paths ops, stat, iscell of the final folder.

    ``session``: session metadata (session_id, dx, dy, dz, fs).
    """
    import zarr

    t0 = time.time()
    rows, means, labels, acc, rej, times = [], [], [], [], [], {}
    all_ops = [load_ops(p["ops"]) for p in planes]
    ny = max(int(o["Ly"]) for o in all_ops)
    nx = max(int(o["Lx"]) for o in all_ops)
    next_id = 1
    for z, (p, ops) in enumerate(zip(planes, all_ops)):
        stat = load_array(p["stat"], allow_pickle=True)
        iscell = load_array(p["iscell"])
        ly, lx = int(ops["Ly"]), int(ops["Lx"])
        n_acc = int(iscell[:, 0].sum()) if len(iscell) else 0
        mean = np.zeros((ny, nx), np.float32)
        mean[:ly, :lx] = ops.get("meanImg", np.zeros((ly, lx)))
        lab = np.zeros((ny, nx), np.int32)
        li = figures.label_image(stat, (ly, lx))
        lab[:ly, :lx] = np.where(li > 0, li + next_id - 1, 0)
        next_id += len(stat)
        means.append(mean)
        labels.append(lab)
        acc.append(n_acc)
        rej.append(len(stat) - n_acc)
        st = _stage_times(ops)
        times[int(ops.get("iplane", z))] = st
        rows.append({"plane": int(ops.get("iplane", z)), "n_rois": len(stat), "n_accepted": n_acc,
                     "n_rejected": len(stat) - n_acc, "nframes": int(ops["nframes"]), "Ly": ly,
                     "Lx": lx, "fs": float(ops["fs"]),
                     "max_rigid_shift_px": float(np.max(np.hypot(ops["yoff"], ops["xoff"])))
                     if "yoff" in ops else 0.0,
                     **{f"seconds_{k}": round(v, 3) for k, v in st.items()}})

    dx, dy, dz = session.get("dx"), session.get("dy"), session.get("dz")
    voxel = [dx, dy, dz]
    summary = {
        "session_id": session["session_id"],
        "planes": [r["plane"] for r in rows],
        "n_rois_per_plane": [r["n_rois"] for r in rows],
        "n_accepted_per_plane": acc,
        "total_rois": int(sum(r["n_rois"] for r in rows)),
        "total_accepted": int(sum(acc)),
        "voxel_size": voxel,
        "voxel_size_units": "um (x, y, z); null where unknown",
        "volume_shape": [len(planes), ny, nx],
        "fs": float(session["fs"]),
        "processing_times": times,
        "planeflow_version": __version__,
        "suite2p_version": suite2p_version(),
    }
    cols = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99)
    text = "\t".join(cols) + "\n" + "".join(
        "\t".join(str(r.get(c, "")) for c in cols) + "\n" for r in rows)
    save_text(out["table"], text)

    # zarr store, written to a temporary folder then renamed into place
    zpath = os.fspath(out["zarr"])
    tmp = zpath.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    root = zarr.open_group(tmp, mode="w")
    chunks = (1, min(ny, 512), min(nx, 512))
    m = root.create_array("mean", shape=(len(planes), ny, nx), dtype="float32", chunks=chunks)
    m[:] = np.stack(means)
    m.attrs.update({"description": "per-plane mean image of the registered movie", "axes": ["z", "y", "x"]})
    lab = root.create_array("labels", shape=(len(planes), ny, nx), dtype="int32", chunks=chunks)
    lab[:] = np.stack(labels)
    lab.attrs.update({"description": "ROI labels: 0 background, k = k-th ROI of the session "
                                     "counted plane by plane in stat.npy order", "axes": ["z", "y", "x"]})
    root.attrs.update(json.loads(json.dumps(summary, default=float)))
    shutil.rmtree(zpath, ignore_errors=True)
    os.replace(tmp, zpath)

    figures.volume_summary(out["figure"], np.stack(means), np.array(acc), np.array(rej),
                           title=f"{session['session_id']}: {summary['total_accepted']} accepted ROIs")
    summary["duration"] = time.time() - t0
    save_json(out["summary"], summary)
    log.info("volume_stats: %d planes, %d ROIs (%d accepted)", len(planes), summary["total_rois"],
             summary["total_accepted"])
    return summary
