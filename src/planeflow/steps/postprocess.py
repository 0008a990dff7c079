"""postprocess: dF/F, optional cell filters, per-ROI statistics and per-plane figures."""
from __future__ import annotations

import logging
import time

import numpy as np

from planeflow import PlaneflowError
from planeflow.core import figures
from planeflow.io.atomic import save_npy, save_text
from planeflow.core.dff import apply_filters, compute_dff, roi_table
from planeflow.io.history import append_history
from planeflow.io.planefiles import load_array, load_ops
from planeflow.plan.layout import FIGURES, PART_FILES

log = logging.getLogger("planeflow")

OUTPUT_NAMES = (*PART_FILES["postprocess"], *FIGURES)


def _table_tsv(table: dict) -> str:
    cols = list(table)
    lines = ["\t".join(cols)]
    n = len(table[cols[0]]) if cols else 0
    for i in range(n):
        cells = []
        for c in cols:
            v = table[c][i]
            cells.append(f"{v:.6g}" if isinstance(v, (float, np.floating)) else str(v))
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


def postprocess(inputs: dict, out: dict, options: dict) -> dict:
    """``inputs``: ops, stat, iscell, F, Fneu (detection outputs); ``out``: OUTPUT_NAMES → path.

    ``options``: the config's ``postprocess`` section (dff, filters, figures).
    """
    t0 = time.time()
    ops = load_ops(inputs["ops"])
    stat = load_array(inputs["stat"], allow_pickle=True)
    iscell = load_array(inputs["iscell"])
    # memory maps: dF/F reads them a block of ROIs at a time (planeflow.core.dff), so the job's
    # own memory holds dF/F and not three more copies of the traces
    F = load_array(inputs["F"], mmap_mode="r")
    Fneu = load_array(inputs["Fneu"], mmap_mode="r")
    if not (len(stat) == len(iscell) == F.shape[0] == Fneu.shape[0]):
        raise PlaneflowError(
            f"detection outputs next to '{inputs['stat']}' disagree on the number of ROIs "
            f"(stat {len(stat)}, iscell {len(iscell)}, F {F.shape[0]}): delete that folder and rerun."
        )
    d = options["dff"]
    dff, dff_info = compute_dff(
        F, Fneu, tau=float(ops["tau"]), fs=float(ops["fs"]),
        neuropil_coefficient=float(ops["extraction"]["neuropil_coefficient"]),
        percentile=float(d["percentile"]), window_s=d["window_s"],
        smooth_s=d["smooth_s"], subtract_neuropil=bool(d["subtract_neuropil"]))

    dx, dy = ops.get("dx"), ops.get("dy")
    table = roi_table(stat, iscell, dx, dy)
    filters = {k: v for k, v in options["filters"].items() if v is not None}
    if any(k.endswith("_um") or k.endswith("_um2") for k in filters) and not (dx and dy):
        raise PlaneflowError(
            f"postprocess.filters {sorted(filters)} are in µm but session "
            f"'{ops.get('session_id')}' has no pixel size: set dx and dy in the sessions sheet."
        )
    iscell_out, filter_results = apply_filters(iscell, table, filters)
    table["passed_filters"] = (iscell_out[:, 0] if len(iscell_out) else np.zeros(0)).astype(int)
    table["dff_max"] = dff.max(axis=1) if len(dff) else np.zeros(0)

    # stat gains the per-ROI statistics; dicts are copied, the input file is untouched
    new_stat = []
    for k, s in enumerate(stat):
        s = dict(s)
        for c in ("eccentricity", "diameter_um", "area_um2"):
            s[c] = float(table[c][k])
        new_stat.append(s)
    new_stat = np.array(new_stat, dtype=object) if new_stat else np.array([], dtype=object)

    title = f"{ops.get('session_id', '')} plane {ops.get('iplane')}"
    fig_opts = options["figures"]
    figures.mean_image_rois(out["fig_rois"], ops.get("meanImg"), stat, iscell_out, title=title)
    figures.registration_shifts(out["fig_shifts"], ops, title=title)
    figures.example_traces(out["fig_traces"], F, dff, iscell_out, stat, ops["fs"],
                           n=int(fig_opts["n_traces"]), title=title)

    n_acc = int(iscell_out[:, 0].sum()) if len(iscell_out) else 0
    result = {**ops, "dff": dff_info, "filter_results": filter_results,
              "iscell_filtered": iscell_out[:, 0].astype(bool) if len(iscell_out) else np.zeros(0, bool)}
    result = append_history(result, "postprocess", [inputs[k] for k in ("ops", "stat", "iscell", "F", "Fneu")],
                            time.time() - t0, {"n_rois": len(stat), "n_accepted": n_acc,
                                               "filters": filters, **dff_info})
    save_npy(out["dff"], dff)
    save_npy(out["stat"], new_stat)
    save_npy(out["iscell"], iscell_out)
    save_text(out["roi_stats"], _table_tsv(table))
    save_npy(out["ops"], result)
    log.info("postprocess: %d ROIs, %d accepted after %d filter(s)", len(stat), n_acc, len(filter_results))
    return result
