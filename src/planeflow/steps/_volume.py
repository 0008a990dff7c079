"""The first half of volume_stats: plane offsets, crosstalk and one ID per cell across a
session's planes (the method: :mod:`planeflow.core.volume.identity`).

Reads every plane's final suite2p folder (never writes to it) and writes the tables
``plane_offsets.tsv``, ``crosstalk.tsv``, ``rois.tsv`` and ``cells.tsv`` (see
docs/volume.md). Traces are read plane pair by plane pair (memory-mapped, only the rows
of candidate ROIs), so memory does not grow with planes x ROIs x frames.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from planeflow.core import volume as vol
from planeflow.io.tables import format_value, write_tsv
from planeflow.io.planefiles import full_frame_image, load_array, load_ops
from planeflow.steps.crosstalk import read_table
from planeflow.plan.resources import crosstalk_on_frames

log = logging.getLogger("planeflow")

#: columns of the tables, in order
OFFSET_COLUMNS = ("plane", "dy_px", "dx_px", "confidence", "source", "compared_with", "part_offsets")
CROSSTALK_COLUMNS = ("separation", "coefficient", "uncertainty", "method", "collinearity", "axial", "pair_min",
                     "pair_max", "null_mean", "null_std", "n_pixels", "n_plane_pairs", "votes", "votes_against",
                     "pairs", "significant")
ROI_COLUMNS = ("plane", "roi", "accepted", "cell_id", "primary", "duplicate_of_reason", "duplicate_of",
               "match_correlation", "snr", "contrast", "npix", "y_px", "x_px", "y_um", "x_um", "z_um", "field",
               "unreliable")
CELL_COLUMNS = ("cell_id", "accepted", "n_rois", "planes", "primary_plane", "primary_roi", "y_px", "x_px",
                "y_um", "x_um", "z_um", "rois")


def _neucoeff(ops: dict) -> float:
    """The neuropil coefficient suite2p used (suite2p 1.x: extraction.neuropil_coefficient;
    0.x: neucoeff; 0.7, suite2p's default, when the ops predate both)."""
    if "neucoeff" in ops:
        return float(ops["neucoeff"])
    ext = ops.get("extraction") or (ops.get("settings") or {}).get("extraction") or {}
    return float(ext.get("neuropil_coefficient", 0.7))


def _tau(ops: dict) -> float:
    return float(ops.get("tau", (ops.get("settings") or {}).get("tau", 1.0)))


def _traces(plane: dict, rows):
    """F and Fneu rows of one plane, memory-mapped, only ``rows`` read."""
    F = np.load(plane["F"], mmap_mode="r")
    Fn = np.load(plane["Fneu"], mmap_mode="r")
    rows = np.asarray(sorted(rows), dtype=np.int64)
    return rows, np.asarray(F[rows]), np.asarray(Fn[rows])


def _mean_images(ops: list[dict]) -> list[np.ndarray]:
    """Each plane's mean image (full frame) on one frame as large as the largest plane."""
    Ly = max(int(o["Ly"]) for o in ops)
    Lx = max(int(o["Lx"]) for o in ops)
    means = []
    for o in ops:
        m = np.zeros((Ly, Lx), np.float32)
        img = full_frame_image(o, "meanImg") if "meanImg" in o else np.zeros((int(o["Ly"]), int(o["Lx"])))
        m[:img.shape[0], :img.shape[1]] = img
        means.append(m)
    return means


def frame_crosstalk(parts: list | None, options: dict, nplanes: int, threads: int = 1) -> list | None:
    """Crosstalk per separation measured on the frames of the binaries detection read
    (:func:`planeflow.steps.crosstalk.measure_pairs`, pooled by
    :func:`planeflow.core.volume.crosstalk_table`); None when not measured (volume.crosstalk
    off, one plane, no binaries given); ``threads``: as :func:`measure_pairs`."""
    if not parts or not crosstalk_on_frames(options, nplanes):
        return None
    from planeflow.steps.crosstalk import measure_pairs

    found = measure_pairs(parts, options, threads)
    return vol.crosstalk_table(found["pairs"], int(options["crosstalk_max_separation"]), found["nplanes"],
                               float(options["crosstalk_min"]))


def read_planes(planes: list[dict], session: dict, options: dict | None = None, parts: list | None = None,
                subtracted: str | None = None, threads: int = 1) -> vol.Planes:
    """What the identity of cells needs of a session's final plane folders (``planes``: per
    plane the files ops, stat, iscell, F, Fneu), the traces read on demand; crosstalk measured
    on the frames of ``parts`` (:func:`frame_crosstalk`) and the coefficients taken out of them
    (``subtracted``: rule crosstalk's table)."""
    ops = [load_ops(p["ops"]) for p in planes]
    stats = [load_array(p["stat"], allow_pickle=True) for p in planes]
    iscells = [load_array(p["iscell"]) for p in planes]
    means = _mean_images(ops)
    rects = [[*q["offset"], int(q["Ly"]), int(q["Lx"])] for q in ops[0].get("parts") or []]
    part_shifts = [vol.part_reference_shifts(o.get("parts") or []) for o in ops]
    part_shifts = [d if len(d) == len(rects) else np.zeros((len(rects), 2)) for d in part_shifts]
    return vol.Planes(
        numbers=[int(p) for p in session["planes"]],
        recorded=[vol.Rois(s, ic, m) for s, ic, m in zip(stats, iscells, means)], means=means,
        recorded_shifts=vol.recorded_shifts([o.get("yoff") for o in ops], [o.get("xoff") for o in ops]),
        part_rects=rects, part_shifts=part_shifts, fields=session.get("fields"),
        neucoeffs=[_neucoeff(o) for o in ops], fs=float(session.get("fs") or ops[0].get("fs", 1.0)),
        tau=_tau(ops[0]), traces=lambda p, rows: _traces(planes[p], rows),
        frame_crosstalk=frame_crosstalk(parts, options or {}, len(planes), threads),
        subtracted=read_table(subtracted) if subtracted else {})


def cells_across_planes(planes: list[dict], out: dict, session: dict, options: dict, parts: list | None = None,
                        subtracted: str | None = None, threads: int = 1) -> dict:
    """``planes``: per plane (session order) the files of its final folder (ops, stat,
    iscell, F, Fneu); ``session``: session_id, planes (plane numbers), dx, dy, dz, fs, nrois
    and the scan fields of multi-ROI sessions (:func:`planeflow.plan.session.scan_fields`);
    ``options``: the config's ``volume`` group, ``offsets`` keyed by plane number. Writes the
    four tables (and the figure ``out["view"]``) from :func:`planeflow.core.volume.identify_cells`;
    ``parts``, ``subtracted`` and ``threads`` as :func:`read_planes`."""
    t0 = time.time()
    found = vol.identify_cells(read_planes(planes, session, options, parts, subtracted, threads), session, options)
    off_rows, xt_rows, roi_rows, cell_rows = (found[k] for k in ("offsets", "crosstalk", "rois", "cells"))
    write_tsv(out["offsets"], off_rows, OFFSET_COLUMNS)
    write_tsv(out["crosstalk"], xt_rows, CROSSTALK_COLUMNS)
    write_tsv(out["rois"], roi_rows, ROI_COLUMNS)
    write_tsv(out["cells"], cell_rows, CELL_COLUMNS)
    n, n_rois, n_ghosts = len(planes), found["n_rois"], found["n_ghosts"]
    if out.get("view"):
        from planeflow.core import figures

        def strings(rows, columns):
            return [{c: format_value(r.get(c)) for c in columns} for r in rows]

        figures.volume_view(out["view"], strings(off_rows, OFFSET_COLUMNS), strings(roi_rows, ROI_COLUMNS),
                            strings(xt_rows, CROSSTALK_COLUMNS), title=f"{session['session_id']}: "
                            f"{len(cell_rows)} cells from {n_rois} ROIs in {n} planes")
    n_dup = sum(1 for r in roi_rows if r["duplicate_of_reason"])
    log.info("volume: %d planes, %d ROIs -> %d cells (%d axial duplicates, %d crosstalk ghosts) in %.1f s",
             n, n_rois, len(cell_rows), n_dup - n_ghosts, n_ghosts, time.time() - t0)
    # the cell_id of every ROI drawn in the volume's labels (crosstalk ghosts are not)
    labels = {(r["plane"], r["roi"]): r["cell_id"] for r in roi_rows
              if r["cell_id"] is not None and r["duplicate_of_reason"] != "crosstalk"}
    return dict(n_rois=n_rois, n_cells=len(cell_rows), n_ghosts=n_ghosts, offsets=found["offsets_px"].tolist(),
                labels=labels, crosstalk=xt_rows)
