"""The first half of volume_stats: plane offsets, crosstalk and one ID per cell across a
session's planes.

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

log = logging.getLogger("planeflow")

#: ROIs whose traces are read at a time for their signal-to-noise
TRACE_CHUNK = 256

#: columns of the tables, in order
OFFSET_COLUMNS = ("plane", "dy_px", "dx_px", "confidence", "source", "compared_with", "part_offsets")
CROSSTALK_COLUMNS = ("separation", "coefficient", "method", "collinearity", "axial", "pair_min", "pair_max",
                     "null_mean", "null_std",
                     "n_pixels", "n_plane_pairs", "votes", "votes_against", "significant")
ROI_COLUMNS = ("plane", "roi", "accepted", "cell_id", "primary", "duplicate_of_reason", "duplicate_of",
               "match_correlation", "snr", "contrast", "npix", "y_px", "x_px", "y_um", "x_um", "z_um", "field")
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


def cells_across_planes(planes: list[dict], out: dict, session: dict, options: dict) -> dict:
    """``planes``: per plane (session order) the files of its final folder (ops, stat,
    iscell, F, Fneu); ``session``: session_id, planes (plane numbers), dx, dy, dz, fs, nrois
    and the scan fields of multi-ROI sessions (:func:`planeflow.plan.session.scan_fields`);
    ``options``: the config's ``volume`` group, ``offsets`` keyed by plane number."""
    t0 = time.time()
    numbers = [int(p) for p in session["planes"]]
    n = len(planes)
    ops = [load_ops(p["ops"]) for p in planes]
    stats = [load_array(p["stat"], allow_pickle=True) for p in planes]
    iscells = [load_array(p["iscell"]) for p in planes]
    Ly = max(int(o["Ly"]) for o in ops)
    Lx = max(int(o["Lx"]) for o in ops)
    means = []
    for o in ops:
        m = np.zeros((Ly, Lx), np.float32)
        img = full_frame_image(o, "meanImg") if "meanImg" in o else np.zeros((int(o["Ly"]), int(o["Lx"])))
        m[:img.shape[0], :img.shape[1]] = img
        means.append(m)
    rois = [vol.Rois(s, ic, m) for s, ic, m in zip(stats, iscells, means)]
    recorded = rois             # ROIs where they were recorded (crosstalk ghosts are there)
    # parts processed separately (roi_mode separate) are each registered on a reference of
    # their own: ROIs moved into part 0's registered frame; images after the crosstalk
    rects = [[*q["offset"], int(q["Ly"]), int(q["Lx"])] for q in ops[0].get("parts") or []]
    part_shift = [vol.part_reference_shifts(o.get("parts") or []) for o in ops]
    part_shift = [d if len(d) == len(rects) else np.zeros((len(rects), 2)) for d in part_shift]
    if len(rects) > 1:
        rois = [vol.move_part_rois(r, vol.roi_fields(r, rects), d) for r, d in zip(rois, part_shift)]
    fields = session.get("fields")
    roi_field = [vol.roi_fields(r, [f["rect"] for f in fields]) if fields else [None] * r.n for r in recorded]
    fs = float(session.get("fs") or ops[0].get("fs", 1.0))
    tau = _tau(ops[0])
    diameter = float(np.median([np.sqrt(r.npix.mean() / np.pi) * 2 for r in rois if r.n] or [10.0]))

    # 1. crosstalk at recorded pixels (shared tissue at a first estimate of the offsets taken
    # out); then removed from the mean images used for the final offsets
    overrides = {numbers.index(int(k)): v for k, v in (options.get("offsets") or {}).items()}
    raw = vol.recorded_shifts([o.get("yoff") for o in ops], [o.get("xoff") for o in ops])
    xt_rows = []
    if options["crosstalk"] != "off" and n > 1:
        first = vol.plane_offsets(means, overrides, float(options["min_confidence"]))
        xt_rows = vol.estimate_crosstalk(recorded, means, raw, int(options["crosstalk_max_separation"]),
                                         float(options["crosstalk_min"]), diameter,
                                         np.array([[r["dy_px"], r["dx_px"]] for r in first]))
    coef = {r["separation"]: r["coefficient"] for r in xt_rows if r["significant"]}
    clean = [m.astype(np.float64) for m in means]
    # only a coefficient told apart from shared tissue is removed (an upper bound would
    # take tissue out too and bias the offsets)
    joint = {r["separation"] for r in xt_rows if r["method"] == "joint"}
    for k, c in ((k, c) for k, c in coef.items() if k in joint):
        for p in range(n):
            q = p + k
            if 0 <= q < n:
                d = raw[p] - raw[q]
                clean[q] -= c * vol.shift_image(means[p].astype(np.float64), *d)

    # 2. plane offsets, chained over neighbours
    if len(rects) > 1:
        clean = [vol.realign_parts(c, rects, d) for c, d in zip(clean, part_shift)]
    # field by field where the plane is made of several (seams between stripes stay put)
    field_rects = rects if len(rects) > 1 else [f["rect"] for f in fields or []]
    off_rows = vol.field_plane_offsets(clean, field_rects, overrides, float(options["min_confidence"]))
    off = np.array([[r["dy_px"], r["dx_px"]] for r in off_rows])
    if len(rects) > 1:          # each part's own offset: its frames against plane 0's of that part
        for p in range(n):
            off_rows[p]["part_offsets"] = ";".join(
                f"{k}:{a:.3g},{b:.3g}" for k, (a, b) in enumerate(off[p] + part_shift[p] - part_shift[0]))
    for i, r in enumerate(off_rows):
        r["plane"] = numbers[i]
        r["compared_with"] = numbers[r["pair"]] if r.get("pair") is not None else None
        if r["source"] == "interpolated":
            log.warning("volume: plane %d offset interpolated (confidence %.2f < %.2f)", numbers[i],
                        r["confidence"], float(options["min_confidence"]))

    # 3. per-ROI signal-to-noise, one plane at a time
    snrs = []
    for p in range(n):
        if rois[p].n == 0:
            snrs.append(np.zeros(0))
            continue
        parts = []
        for start in range(0, rois[p].n, TRACE_CHUNK):
            _, F, Fn = _traces(planes[p], range(start, min(start + TRACE_CHUNK, rois[p].n)))
            parts.append(vol.snr(F, Fn, _neucoeff(ops[p]), fs, tau))
        snrs.append(np.concatenate(parts))

    # 4. candidate pairs, traces plane pair by plane pair
    D = int(options["max_plane_distance"])
    min_ov, min_corr = float(options["min_overlap"]), float(options["min_correlation"])
    edges: dict = {}
    ghosts: dict = {}           # (q, j) -> ((p, i), correlation)
    corr_of: dict = {}
    pair_seps = set(range(1, min(D, n - 1) + 1)) | {abs(k) for k in coef}
    for p in range(n):
        for s in sorted(pair_seps):
            q = p + s
            if q >= n or rois[p].n == 0 or rois[q].n == 0:
                continue
            cands = []           # (kind, i, j, overlap)
            if s <= D:
                cands += [("axial", i, j, o) for i, j, o in vol.candidate_pairs(
                    rois[p], rois[q], off[q] - off[p], (Ly, Lx), min_ov, diameter)]
            for k in (s, -s):
                if k in coef:
                    d = raw[q] - raw[p]            # recorded pixel of p in q's frame: + raw[p] - raw[q]
                    cands += [(("ghost", k), i, j, o) for i, j, o in vol.candidate_pairs(
                        recorded[p], recorded[q], -d, (Ly, Lx), min_ov, diameter)]
            if not cands:
                continue
            ri, Fp, Np = _traces(planes[p], {c[1] for c in cands})
            rj, Fq, Nq = _traces(planes[q], {c[2] for c in cands})
            ap = vol.activity(Fp, Np, _neucoeff(ops[p]), fs, tau)
            aq = vol.activity(Fq, Nq, _neucoeff(ops[q]), fs, tau)
            ix = {r: k for k, r in enumerate(ri)}
            jx = {r: k for k, r in enumerate(rj)}
            for kind, i, j, _o in cands:
                c = vol.correlation(ap[ix[i]], aq[jx[j]])
                if c < min_corr:
                    continue
                a, b = (p, i), (q, j)
                if kind == "axial":
                    edges[(a, b)] = c
                    corr_of[(a, b)] = c
                    continue
                k = kind[1]
                src, tgt = (a, b) if k > 0 else (b, a)
                cs, ct = rois[src[0]].contrast[src[1]], rois[tgt[0]].contrast[tgt[1]]
                if np.isfinite(cs) and cs > 0 and (not np.isfinite(ct) or ct <= vol.GHOST_MAX_RATIO * cs):
                    if tgt not in ghosts or ghosts[tgt][1] < c:
                        ghosts[tgt] = (src, c)
            del Fp, Np, Fq, Nq, ap, aq

    # 5. groups: ghosts out, complete linkage over the rest, ghosts follow their source
    edges = {e: c for e, c in edges.items() if e[0] not in ghosts and e[1] not in ghosts}

    def compatible(u, v):
        shift = off[v[0]] - off[u[0]]
        return vol.overlap(rois[u[0]].pixels(u[1], shape=(Ly, Lx)),
                           rois[v[0]].pixels(v[1], -shift[0], -shift[1], (Ly, Lx))) >= min_ov

    groups = vol.group_rois([r.n for r in rois], edges, compatible, D)
    groups = [g for g in groups if not (len(g) == 1 and g[0] in ghosts)]
    info: dict = {}
    cell_rows = []

    def rank(m):
        return (bool(rois[m[0]].accepted[m[1]]), float(snrs[m[0]][m[1]]))

    primaries = [max(g, key=rank) for g in groups]
    order = sorted(range(len(groups)), key=lambda g: primaries[g])
    member_of = {}
    for cid, g in enumerate(order, start=1):
        for m in groups[g]:
            member_of[m] = cid
    # a ghost whose source is itself a ghost ends at the first non-ghost source
    for tgt in ghosts:
        src = ghosts[tgt][0]
        seen = {tgt}
        while src in ghosts and src not in seen:
            seen.add(src)
            src = ghosts[src][0]
        member_of[tgt] = member_of.get(src)
        info[tgt] = dict(reason="crosstalk", of=src, corr=ghosts[tgt][1])

    dx_um, dy_um, dz_um = session.get("dx"), session.get("dy"), session.get("dz")
    if dz_um is None:
        log.warning("volume: session %s has no dz (plane spacing): z_um is left empty; set dz in "
                    "the sessions sheet", session["session_id"])
    if fields:
        log.info("volume: %d scan fields: y_um/x_um are microscope positions (ScanImage reference "
                 "space, µm from the scan centre)", len(fields))
    elif int(session.get("nrois") or 1) > 1:
        log.warning("volume: session %s: the scan fields' positions are not in the header; y_um/x_um are "
                    "plane-image pixels (stripes side by side) times dy/dx", session["session_id"])
    if not fields and (dx_um is None or dy_um is None):
        log.warning("volume: session %s has no dx/dy (pixel size): y_um/x_um are left empty",
                    session["session_id"])

    def coords(p, i):
        y = rois[p].med[i, 0] - off[p, 0]
        x = rois[p].med[i, 1] - off[p, 1]
        y_um, x_um = vol.volume_um(y, x, roi_field[p][i], fields, dy_um, dx_um)
        return dict(y_px=y, x_px=x, y_um=y_um, x_um=x_um, field=roi_field[p][i],
                    z_um=numbers[p] * dz_um if dz_um is not None else None)

    for g_index in order:
        g = groups[g_index]
        prim = primaries[g_index]
        cid = member_of[prim]
        for m in g:
            if m != prim:
                key = (min(m, prim), max(m, prim))
                info[m] = dict(reason="axial", of=prim, corr=corr_of.get(key))
        # depth: planes weighted by the ROIs' brightness (a cell between two planes lies between)
        w = np.array([max(float(np.nan_to_num(rois[m[0]].contrast[m[1]])), 0.0) for m in g])
        w = w if w.sum() > 0 else np.ones(len(g))
        c = coords(*prim)
        z = (float(np.dot(w, [numbers[m[0]] for m in g]) / w.sum()) * dz_um
             if dz_um is not None else None)
        cell_rows.append(dict(
            cell_id=cid, accepted=any(bool(rois[m[0]].accepted[m[1]]) for m in g),
            n_rois=len(g) + sum(1 for t in ghosts if member_of.get(t) == cid),
            planes=",".join(str(numbers[p]) for p in sorted({m[0] for m in g})),
            primary_plane=numbers[prim[0]], primary_roi=prim[1], y_px=c["y_px"], x_px=c["x_px"],
            y_um=c["y_um"], x_um=c["x_um"], z_um=z,
            rois=",".join(f"{numbers[m[0]]}:{m[1]}" for m in g)))

    roi_rows = []
    prim_set = set(primaries)
    for p in range(n):
        for i in range(rois[p].n):
            m = (p, i)
            inf = info.get(m, {})
            of = inf.get("of")
            roi_rows.append(dict(
                plane=numbers[p], roi=i, accepted=bool(rois[p].accepted[i]), cell_id=member_of.get(m),
                primary=m in prim_set, duplicate_of_reason=inf.get("reason", ""),
                duplicate_of=f"{numbers[of[0]]}:{of[1]}" if of else "", match_correlation=inf.get("corr"),
                snr=snrs[p][i], contrast=rois[p].contrast[i], npix=int(rois[p].npix[i]), **coords(p, i)))

    write_tsv(out["offsets"], off_rows, OFFSET_COLUMNS)
    write_tsv(out["crosstalk"], xt_rows, CROSSTALK_COLUMNS)
    write_tsv(out["rois"], roi_rows, ROI_COLUMNS)
    write_tsv(out["cells"], cell_rows, CELL_COLUMNS)
    if out.get("view"):
        from planeflow.core import figures

        def strings(rows, columns):
            return [{c: format_value(r.get(c)) for c in columns} for r in rows]

        figures.volume_view(out["view"], strings(off_rows, OFFSET_COLUMNS), strings(roi_rows, ROI_COLUMNS),
                            strings(xt_rows, CROSSTALK_COLUMNS), title=f"{session['session_id']}: "
                            f"{len(cell_rows)} cells from {sum(r.n for r in rois)} ROIs in {n} planes")
    n_rois = sum(r.n for r in rois)
    n_dup = sum(1 for r in roi_rows if r["duplicate_of_reason"])
    log.info("volume: %d planes, %d ROIs -> %d cells (%d axial duplicates, %d crosstalk ghosts) in %.1f s",
             n, n_rois, len(cell_rows), n_dup - len(ghosts), len(ghosts), time.time() - t0)
    # the cell_id of every ROI drawn in the volume's labels (crosstalk ghosts are not)
    labels = {(r["plane"], r["roi"]): r["cell_id"] for r in roi_rows
              if r["cell_id"] is not None and r["duplicate_of_reason"] != "crosstalk"}
    return dict(n_rois=n_rois, n_cells=len(cell_rows), n_ghosts=len(ghosts), offsets=off.tolist(), labels=labels,
                crosstalk=xt_rows)
