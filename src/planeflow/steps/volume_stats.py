"""volume_stats: a session's planes as one volume.

First the plane offsets, the crosstalk between planes and one ID per cell across planes
(:mod:`planeflow.steps._volume`: ``plane_offsets.tsv``, ``crosstalk.tsv``, ``rois.tsv``,
``cells.tsv``, ``volume_view.png``), then the per-plane table, voxel size, the aligned
volume and a summary figure. The volume (``volume.zarr``, OME-Zarr 0.5 on zarr v3,
:mod:`planeflow.io.omezarr`) holds the planes' mean images aligned to plane 0 by the plane
offsets, and a labels image
``labels/cells`` in which every ROI carries its cell_id (one value per cell in every plane it
spans; crosstalk ghosts are not drawn)."""
from __future__ import annotations

import json
import logging
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


def volume_stats(planes: list[dict], out: dict, session: dict, options: dict, parts: list | None = None,
                 subtracted: str | None = None, threads: int = 1) -> dict:
    """``planes``: per plane (in plane order) the files of its final folder (ops, stat, iscell,
    F, Fneu, ...); ``session``: session metadata (session_id, planes, dx, dy, dz, fs);
    ``options``: the config's ``volume`` group, ``offsets`` keyed by plane number, the
    session's ``diameter``; ``parts``: the binaries detection read (``plane_index, part, ops,
    bin``, as rule crosstalk's), on whose frames crosstalk is measured; ``subtracted``: rule
    crosstalk's table when crosstalk was taken out of them (volume.crosstalk: subtract);
    ``threads``: the crosstalk measure's (:func:`planeflow.steps.crosstalk.measure_pairs`).
    """
    from planeflow.core import volume as vol
    from planeflow.io.omezarr import write_ome_volume
    from planeflow.steps._volume import cells_across_planes

    t0 = time.time()
    cells = cells_across_planes(planes, out, session, options, parts, subtracted, threads)
    offsets = np.array(cells["offsets"], dtype=float).reshape(-1, 2)
    cell_of = cells["labels"]
    numbers = []
    rows, means, stats, acc, rej, times = [], [], [], [], [], {}
    all_ops = [load_ops(p["ops"]) for p in planes]
    ny = max(int(o["Ly"]) for o in all_ops)
    nx = max(int(o["Lx"]) for o in all_ops)
    for z, (p, ops) in enumerate(zip(planes, all_ops)):
        stat = load_array(p["stat"], allow_pickle=True)
        iscell = load_array(p["iscell"])
        ly, lx = int(ops["Ly"]), int(ops["Lx"])
        n_acc = int(iscell[:, 0].sum()) if len(iscell) else 0
        mean = np.zeros((ny, nx), np.float32)
        mean[:ly, :lx] = ops.get("meanImg", np.zeros((ly, lx)))
        means.append(mean)
        stats.append(stat)
        numbers.append(int(session["planes"][z]) if "planes" in session else int(ops.get("iplane", z)))
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

    ids = [[cell_of.get((numbers[p], i)) for i in range(len(st))] for p, st in enumerate(stats)]
    aligned = np.stack([vol.aligned_image(m, *offsets[p]) for p, m in enumerate(means)])
    labels = vol.cell_labels(stats, ids, offsets, (ny, nx))
    summary["n_cells"] = len({c for c in cell_of.values()})
    write_ome_volume(out["zarr"], aligned, labels, (dz, dy, dx), name=str(session["session_id"]),
                     attrs={"planeflow": json.loads(json.dumps(summary, default=float)),
                            "description": "mean image of each plane's registered movie, aligned to "
                                           "plane 0 by volume_stats/plane_offsets.tsv; labels/cells: "
                                           "cell_id of volume_stats/rois.tsv"})

    figures.volume_summary(out["figure"], np.stack(means), np.array(acc), np.array(rej),
                           title=f"{session['session_id']}: {summary['total_accepted']} accepted ROIs")
    summary["duration"] = time.time() - t0
    save_json(out["summary"], summary)
    log.info("volume_stats: %d planes, %d ROIs (%d accepted)", len(planes), summary["total_rois"],
             summary["total_accepted"])
    return summary
