"""One ID per cell across a session's planes: the ROIs of neighbouring planes that are one cell
(footprints that overlap once the plane offsets are taken out, and activity that correlates) get
one ``cell_id``; crosstalk ghosts (a dim copy of a brighter plane's cell at the same recorded
pixel) join their source's cell.

:func:`identify_cells` runs the whole identity of a session from its planes (:class:`Planes`) in
the steps below, each a pure function: ROIs moved into part 0's frame, crosstalk measured and
taken out of the mean images, plane offsets, each ROI's signal-to-noise, matching ROI pairs,
groups, then the ``rois.tsv`` and ``cells.tsv`` rows (docs/volume.md). Traces come through a
reader (:data:`TraceReader`), a few ROIs of one or two planes at a time.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
from scipy.ndimage import gaussian_filter1d

from planeflow.core.volume.crosstalk import GHOST_MAX_RATIO, estimate_crosstalk
from planeflow.core.volume.fields import move_part_rois, realign_parts, roi_fields, volume_um
from planeflow.core.volume.offsets import field_plane_offsets, plane_offsets, shift_image
from planeflow.core.volume.rois import candidate_pairs, overlap

log = logging.getLogger("planeflow")

#: ROIs whose traces are read at a time for their signal-to-noise
TRACE_CHUNK = 256

#: (plane index, ROI rows) -> (the rows sorted, their F, their Fneu)
TraceReader = Callable[[int, Iterable[int]], "tuple[np.ndarray, np.ndarray, np.ndarray]"]
Roi = tuple  # (plane index, ROI index)


# ----------------------------------------------------------------------------- traces
def activity(F: np.ndarray, Fneu: np.ndarray, neucoeff: float, fs: float, tau: float) -> np.ndarray:
    """Neuropil-subtracted traces, slow baseline removed (Gaussian, sigma 10 tau) and smoothed
    (sigma tau / 4), in frames; rows = ROIs."""
    x = np.asarray(F, np.float64) - neucoeff * np.asarray(Fneu, np.float64)
    if x.shape[-1] < 3:
        return x - x.mean(axis=-1, keepdims=True)
    x = x - gaussian_filter1d(x, max(1.0, 10 * tau * fs), axis=-1, mode="reflect")
    return gaussian_filter1d(x, max(0.5, tau * fs / 4), axis=-1, mode="reflect")


def snr(F: np.ndarray, Fneu: np.ndarray, neucoeff: float, fs: float, tau: float) -> np.ndarray:
    """Signal-to-noise per ROI: std of :func:`activity` over the noise of the unsmoothed,
    baseline-removed trace (1.4826 MAD of its frame-to-frame differences / sqrt 2)."""
    x = np.asarray(F, np.float64) - neucoeff * np.asarray(Fneu, np.float64)
    if x.shape[0] == 0 or x.shape[-1] < 3:
        return np.zeros(x.shape[0])
    d = np.diff(x, axis=-1)
    noise = 1.4826 * np.median(np.abs(d - np.median(d, axis=-1, keepdims=True)), axis=-1) / np.sqrt(2)
    a = activity(F, Fneu, neucoeff, fs, tau)
    return a.std(axis=-1) / np.maximum(noise, 1e-9)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d > 0 else 0.0


def group_rois(n_per_plane: list[int], edges: dict, compatible, plane_distance: int) -> list[list]:
    """Complete-linkage grouping of ROIs ``(plane, roi)`` across planes.

    ``edges``: {((p, i), (q, j)): score} of pairs that match (p < q, at most
    ``plane_distance`` apart). Pairs are taken by decreasing score; two groups merge only
    when they share no plane and *every* cross pair of members at most ``plane_distance``
    apart is itself an edge, and every farther cross pair passes ``compatible(a, b)``
    (footprints still overlap). So A-B and B-C never pull in an unrelated C.
    Returns the groups (lists of (plane, roi)), every ROI in exactly one.
    """
    group = {(p, i): frozenset([(p, i)]) for p, n in enumerate(n_per_plane) for i in range(n)}
    for (a, b), _ in sorted(edges.items(), key=lambda kv: -kv[1]):
        ga, gb = group[a], group[b]
        if ga is gb:
            continue
        if {m[0] for m in ga} & {m[0] for m in gb}:
            continue
        ok = True
        for x in ga:
            for y in gb:
                u, v = (x, y) if x[0] < y[0] else (y, x)
                if v[0] - u[0] <= plane_distance:
                    ok = (u, v) in edges
                else:
                    ok = compatible(u, v)
                if not ok:
                    break
            if not ok:
                break
        if ok:
            merged = ga | gb
            for m in merged:
                group[m] = merged
    seen, out = set(), []
    for g in group.values():
        if id(g) not in seen:
            seen.add(id(g))
            out.append(sorted(g))
    return sorted(out)


def cell_labels(stats: list, cell_ids: list, offsets: np.ndarray, shape) -> np.ndarray:
    """(planes, Ly, Lx) label image in plane 0's frame: every ROI's pixels, moved by minus its
    plane's offset (rounded), hold its cell id (``cell_ids[p][i]``; 0 or None = not drawn), so one
    cell has one label in every plane it spans."""
    Ly, Lx = shape
    out = np.zeros((len(stats), Ly, Lx), np.int32)
    for p, (stat, ids) in enumerate(zip(stats, cell_ids)):
        dy, dx = int(round(offsets[p][0])), int(round(offsets[p][1]))
        for s, cid in zip(stat, ids):
            if not cid:
                continue
            y = np.asarray(s["ypix"], np.int64) - dy
            x = np.asarray(s["xpix"], np.int64) - dx
            ok = (y >= 0) & (y < Ly) & (x >= 0) & (x < Lx)
            out[p, y[ok], x[ok]] = int(cid)
    return out


# ----------------------------------------------------------------------------- a session's identity
@dataclass
class Planes:
    """What the identity of cells needs of a session's planes, in session order."""

    numbers: list          # plane numbers
    recorded: list         # rois.Rois of each plane where recorded (crosstalk ghosts are there)
    means: list            # mean images on one (Ly, Lx) frame
    recorded_shifts: np.ndarray  # (planes, 2): offsets.recorded_shifts of the registration shifts
    part_rects: list       # [y0, x0, h, w] of each part processed separately (roi_mode separate), else []
    part_shifts: list      # per plane, each part's reference shift (fields.part_reference_shifts)
    fields: list | None    # scan fields of a multi-ROI session (plan.session.scan_fields), else None
    neucoeffs: list        # suite2p's neuropil coefficient of each plane
    fs: float
    tau: float
    traces: TraceReader
    frame_crosstalk: list | None = None  # crosstalk_table rows measured on the frames, or None
    subtracted: dict = field(default_factory=dict)  # separation -> coefficient taken out of the frames

    @property
    def shape(self) -> tuple[int, int]:
        return self.means[0].shape

    def __len__(self) -> int:
        return len(self.numbers)


def rois_in_common_frame(planes: Planes) -> list:
    """Each plane's ROIs in part 0's registered frame (parts registered on references of their
    own moved by their part's reference shift); the recorded ROIs where there is one part."""
    rects = planes.part_rects
    if len(rects) <= 1:
        return list(planes.recorded)
    return [move_part_rois(r, roi_fields(r, rects), d) for r, d in zip(planes.recorded, planes.part_shifts)]


def typical_diameter(rois: list) -> float:
    """Median ROI diameter of the planes (px; 10 when no plane has an ROI)."""
    return float(np.median([np.sqrt(r.npix.mean() / np.pi) * 2 for r in rois if r.n] or [10.0]))


def clean_means(planes: Planes, coefficients: dict) -> list:
    """The mean images with crosstalk taken out at the recorded pixels: plane ``p + k`` minus
    ``c_k`` times plane ``p`` for every separation ``k`` in ``coefficients``."""
    clean = [m.astype(np.float64) for m in planes.means]
    raw = planes.recorded_shifts
    for separation, c in coefficients.items():
        for source in range(len(planes)):
            target = source + separation
            if 0 <= target < len(planes):
                clean[target] -= c * shift_image(planes.means[source].astype(np.float64),
                                                 *(raw[source] - raw[target]))
    return clean


#: columns of a crosstalk row that the measure on frames supplies (the rest, the mean-image
#: regression's: ghost votes, collinearity with shared tissue)
FRAME_COLUMNS = ("coefficient", "uncertainty", "null_mean", "null_std", "pair_min", "pair_max", "n_pixels",
                 "n_plane_pairs", "pairs", "significant")


def _with_frames(rows: list, frame_rows: list | None) -> list:
    """Mean-image rows with the coefficient, its uncertainty and significance of the measure
    on frames (``method`` frames), which follows activity, not structure, and is the more
    precise where it exists."""
    if frame_rows is None:
        return rows
    by_k = {r["separation"]: r for r in frame_rows}
    out = []
    for r in rows:
        f = by_k.get(r["separation"])
        out.append(r if f is None else {**r, **{k: f[k] for k in FRAME_COLUMNS}, "method": "frames"})
    return out


def crosstalk_and_clean_means(planes: Planes, overrides: dict, options: dict, diameter: float):
    """Crosstalk at recorded pixels (``crosstalk.tsv`` rows), the separations where ghosts are
    looked for (coefficient of each), and the mean images with the crosstalk taken out
    (:func:`clean_means`).

    The coefficients are measured on the frames where given (``planes.frame_crosstalk``),
    else on the mean images (:func:`estimate_crosstalk`, where shared tissue is told apart at a
    first estimate of the offsets: made on images that still hold the ghosts, then again on
    the cleaned ones). With crosstalk already subtracted from the frames the rows are what is
    left, and ghosts are still looked for at the subtracted separations."""
    rows = []
    coefficients: dict = {}
    clean = [m.astype(np.float64) for m in planes.means]
    if options["crosstalk"] != "off" and len(planes) > 1:
        min_conf = float(options["min_confidence"])
        for _round in range(1 if planes.frame_crosstalk is not None else 2):
            first = plane_offsets(clean, overrides, min_conf)
            rows = estimate_crosstalk(planes.recorded, planes.means, planes.recorded_shifts,
                                      int(options["crosstalk_max_separation"]), float(options["crosstalk_min"]),
                                      diameter, np.array([[r["dy_px"], r["dx_px"]] for r in first]))
            rows = _with_frames(rows, planes.frame_crosstalk)
            coefficients = {r["separation"]: r["coefficient"] for r in rows if r["significant"]}
            clean = clean_means(planes, coefficients)
    ghosts_at = {**{k: c for k, c in planes.subtracted.items() if k not in coefficients}, **coefficients}
    return rows, ghosts_at, clean


def offset_rows(planes: Planes, clean_means: list, overrides: dict, min_confidence: float,
                separations: Iterable = ()):
    """``plane_offsets.tsv`` rows and the offsets (planes, 2): chained over neighbouring planes,
    field by field where a plane is made of several (seams between stripes stay put); with
    parts processed separately, each part's own offset against plane 0's of that part. A pair
    of planes at a crosstalk ``separation`` that lines up on the source's ghost is left out
    (:func:`planeflow.core.volume.plane_offsets`' ``ghosts``; one part only)."""
    rects = planes.part_rects
    if len(rects) > 1:
        clean_means = [realign_parts(c, rects, d) for c, d in zip(clean_means, planes.part_shifts)]
    field_rects = rects if len(rects) > 1 else [f["rect"] for f in planes.fields or []]
    raw = planes.recorded_shifts
    ghosts = {} if len(rects) > 1 else {
        (p, p + k): tuple(raw[p] - raw[p + k]) for k in separations for p in range(len(planes))
        if 0 <= p + k < len(planes)}
    rows = field_plane_offsets(clean_means, field_rects, overrides, min_confidence, ghosts=ghosts)
    offsets = np.array([[r["dy_px"], r["dx_px"]] for r in rows])
    if len(rects) > 1:
        for p in range(len(planes)):
            own = offsets[p] + planes.part_shifts[p] - planes.part_shifts[0]
            rows[p]["part_offsets"] = ";".join(f"{k}:{a:.3g},{b:.3g}" for k, (a, b) in enumerate(own))
    for i, r in enumerate(rows):
        r["plane"] = planes.numbers[i]
        r["compared_with"] = planes.numbers[r["pair"]] if r.get("pair") is not None else None
        if r["source"] == "interpolated":
            log.warning("volume: plane %d offset interpolated (confidence %.2f < %.2f)", planes.numbers[i],
                        r["confidence"], min_confidence)
    return rows, offsets


def roi_snrs(planes: Planes, rois: list, chunk: int = TRACE_CHUNK) -> list:
    """Signal-to-noise of every ROI (:func:`snr`), ``chunk`` ROIs of one plane at a time."""
    out = []
    for p in range(len(planes)):
        parts = []
        for start in range(0, rois[p].n, chunk):
            _, F, Fneu = planes.traces(p, range(start, min(start + chunk, rois[p].n)))
            parts.append(snr(F, Fneu, planes.neucoeffs[p], planes.fs, planes.tau))
        out.append(np.concatenate(parts) if parts else np.zeros(0))
    return out


def matching_pairs(planes: Planes, rois: list, offsets: np.ndarray, coefficients: dict, diameter: float,
                   options: dict):
    """ROI pairs of two planes whose activity correlates (at least ``min_correlation``):

    - *axial* pairs, planes at most ``max_plane_distance`` apart whose footprints overlap once
      the plane offsets are taken out: ``{(roi, roi): correlation}``;
    - *ghosts*, at a separation with a crosstalk coefficient, footprints that overlap at the same
      recorded pixel and the target at most GHOST_MAX_RATIO as bright as its source:
      ``{ghost: (source, correlation)}`` (the best source of each ghost).

    Traces are read plane pair by plane pair, only the rows of candidate ROIs."""
    max_distance = int(options["max_plane_distance"])
    min_overlap, min_corr = float(options["min_overlap"]), float(options["min_correlation"])
    raw = planes.recorded_shifts
    axial: dict = {}
    ghosts: dict = {}
    separations = set(range(1, min(max_distance, len(planes) - 1) + 1)) | {abs(k) for k in coefficients}
    for p in range(len(planes)):
        for sep in sorted(separations):
            q = p + sep
            if q >= len(planes) or rois[p].n == 0 or rois[q].n == 0:
                continue
            candidates = []  # (kind, i, j): kind "axial" or the crosstalk separation (source -> target)
            if sep <= max_distance:
                candidates += [("axial", i, j) for i, j, _o in candidate_pairs(
                    rois[p], rois[q], offsets[q] - offsets[p], planes.shape, min_overlap, diameter)]
            for k in (sep, -sep):
                if k in coefficients:  # recorded pixel of p in q's frame: + raw[p] - raw[q]
                    candidates += [(k, i, j) for i, j, _o in candidate_pairs(
                        planes.recorded[p], planes.recorded[q], raw[p] - raw[q], planes.shape, min_overlap,
                        diameter)]
            if not candidates:
                continue
            rows_p, act_p = _activity(planes, p, {c[1] for c in candidates})
            rows_q, act_q = _activity(planes, q, {c[2] for c in candidates})
            for kind, i, j in candidates:
                corr = correlation(act_p[rows_p[i]], act_q[rows_q[j]])
                if corr < min_corr:
                    continue
                a, b = (p, i), (q, j)
                if kind == "axial":
                    axial[(a, b)] = corr
                    continue
                source, target = (a, b) if kind > 0 else (b, a)
                c_src = rois[source[0]].contrast[source[1]]
                c_tgt = rois[target[0]].contrast[target[1]]
                dim_enough = not np.isfinite(c_tgt) or c_tgt <= GHOST_MAX_RATIO * c_src
                if np.isfinite(c_src) and c_src > 0 and dim_enough:
                    if target not in ghosts or ghosts[target][1] < corr:
                        ghosts[target] = (source, corr)
    return axial, ghosts


def _activity(planes: Planes, p: int, rows) -> tuple[dict, np.ndarray]:
    """{ROI row: index} and the activity (:func:`activity`) of those ROIs of plane ``p``."""
    read, F, Fneu = planes.traces(p, rows)
    return ({r: k for k, r in enumerate(read)},
            activity(F, Fneu, planes.neucoeffs[p], planes.fs, planes.tau))


def roi_correlation(planes: Planes) -> Callable:
    """(roi, roi) -> correlation of the two ROIs' activity (:func:`activity`), traces read on
    demand, one ROI at a time, and kept."""
    cache: dict = {}

    def act(m):
        if m not in cache:
            cache[m] = _activity(planes, m[0], [m[1]])[1][0]
        return cache[m]

    return lambda u, v: correlation(act(u), act(v))


#: a plane whose mean image is at most this bright relative to the median of the other planes
#: is too dim for its detections to be trusted
DIM_RATIO = 0.2
#: a plane whose accepted ROIs match a neighbouring plane's (same cell seen twice) at most this
#: share as often as the other planes' do finds what is not there
MATCH_RATIO = 0.25
#: ... judged only on planes with at least this many accepted ROIs, and when the other planes'
#: median match share is at least MIN_MATCH_SHARE
MIN_ACCEPTED, MIN_MATCH_SHARE = 5, 0.1


def unreliable_planes(planes: Planes, rois: list, axial: dict, clean: list | None = None) -> dict:
    """{plane index: reason} of planes whose detections cannot be trusted: too dim (mean image
    at most DIM_RATIO as bright as the other planes' median), or too few of its accepted ROIs
    matching a neighbouring plane's ROI (:func:`matching_pairs`' axial pairs) against the
    other planes (cells span planes; noise found as ROIs does not). Needs 3 planes or more.
    ``clean``: the mean images with crosstalk taken out (:func:`clean_means`), whose brightness
    is then judged: a dim plane under a bright plane's crosstalk is bright only with its ghosts
    (hard simulator, c 0.3 at k 1: 0.24 x the others' with them, none of its own light left
    without)."""
    n = len(planes)
    if n < 3:
        return {}
    bright = np.array([float(np.mean(m)) for m in (planes.means if clean is None else clean)])
    what = "mean image" if clean is None else "mean image without crosstalk"
    matched = [set() for _ in range(n)]
    for a, b in axial:
        matched[a[0]].add(a[1])
        matched[b[0]].add(b[1])
    acc = [np.flatnonzero(r.accepted) for r in rois]
    share = np.array([len(matched[p] & set(acc[p].tolist())) / len(acc[p]) if len(acc[p]) else np.nan
                      for p in range(n)])
    out = {}
    for p in range(n):
        others = np.delete(np.arange(n), p)
        ref = float(np.median(bright[others]))
        if ref > 0 and bright[p] <= DIM_RATIO * ref:
            out[p] = f"too dim: {what} {max(bright[p], 0.0) / ref:.2f} x the other planes'"
            continue
        ref_share = float(np.nanmedian(share[others])) if np.isfinite(share[others]).any() else np.nan
        if len(acc[p]) >= MIN_ACCEPTED and np.isfinite(ref_share) and ref_share >= MIN_MATCH_SHARE \
                and share[p] <= MATCH_RATIO * ref_share:
            out[p] = (f"few matches: {share[p]:.0%} of its accepted ROIs are seen in a neighbouring plane, "
                      f"{ref_share:.0%} in the other planes")
    return out


@dataclass
class Cells:
    """ROIs grouped into cells: ``groups`` (lists of ROIs), each group's ``primary`` (accepted
    first, then the best signal-to-noise), ``order`` (group indices in cell_id order),
    ``cell_of`` ({roi: cell_id}, ghosts with their source's cell) and ``duplicate`` ({roi:
    {reason: axial | crosstalk, of: roi, corr}})."""

    groups: list
    primary: list
    order: list
    cell_of: dict
    duplicate: dict


def group_cells(rois: list, snrs: list, axial: dict, ghosts: dict, offsets: np.ndarray, shape,
                options: dict, correlate: Callable | None = None, leave_out: Iterable = ()) -> Cells:
    """Ghosts out, complete linkage over the other axial pairs (:func:`group_rois`), cell IDs
    in the order of the groups' primaries, ghosts follow their (first non-ghost) source.
    Members farther apart than ``max_plane_distance`` must still overlap and, with
    ``correlate`` ((roi, roi) -> correlation of their activity), correlate at least
    ``min_correlation``: a dim ROI between two cells stacked in depth matches both, the two
    cells do not match each other. Groups whose ROIs all lie in a plane of ``leave_out``
    (unreliable planes, :func:`unreliable_planes`) get no cell ID (nor do their ghosts)."""
    min_overlap = float(options["min_overlap"])
    pairs = {e: c for e, c in axial.items() if e[0] not in ghosts and e[1] not in ghosts}

    def still_overlap(u, v):
        shift = offsets[v[0]] - offsets[u[0]]
        if overlap(rois[u[0]].pixels(u[1], shape=shape),
                   rois[v[0]].pixels(v[1], -shift[0], -shift[1], shape)) < min_overlap:
            return False
        return correlate is None or correlate(u, v) >= float(options["min_correlation"])

    groups = group_rois([r.n for r in rois], pairs, still_overlap, int(options["max_plane_distance"]))
    groups = [g for g in groups if not (len(g) == 1 and g[0] in ghosts)]
    leave_out = set(leave_out)
    groups = [g for g in groups if not all(m[0] in leave_out for m in g)]

    def rank(m):
        return (bool(rois[m[0]].accepted[m[1]]), float(snrs[m[0]][m[1]]))

    primary = [max(g, key=rank) for g in groups]
    order = sorted(range(len(groups)), key=lambda g: primary[g])
    cell_of = {m: cid for cid, g in enumerate(order, start=1) for m in groups[g]}
    duplicate = {}
    for ghost, (source, _corr) in ghosts.items():
        seen = {ghost}
        while source in ghosts and source not in seen:  # a ghost of a ghost ends at a real source
            seen.add(source)
            source = ghosts[source][0]
        cell_of[ghost] = cell_of.get(source)
        duplicate[ghost] = dict(reason="crosstalk", of=source, corr=ghosts[ghost][1])
    for g in order:
        for m in groups[g]:
            if m != primary[g]:
                key = (min(m, primary[g]), max(m, primary[g]))
                duplicate[m] = dict(reason="axial", of=primary[g], corr=axial.get(key))
    return Cells(groups, primary, order, cell_of, duplicate)


def _warn_missing_geometry(session: dict, fields) -> None:
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


def cell_and_roi_rows(planes: Planes, rois: list, snrs: list, cells: Cells, ghosts: dict, offsets: np.ndarray,
                      session: dict):
    """The rows of ``cells.tsv`` (one per cell: its ROIs, primary ROI, position; depth = the
    planes weighted by the ROIs' brightness, so a cell between two planes lies between) and
    of ``rois.tsv`` (one per ROI: its cell, whether primary, what it duplicates)."""
    numbers = planes.numbers
    dx_um, dy_um, dz_um = session.get("dx"), session.get("dy"), session.get("dz")
    roi_field = [roi_fields(r, [f["rect"] for f in planes.fields]) if planes.fields else [None] * r.n
                 for r in planes.recorded]

    def position(p, i):
        y = rois[p].med[i, 0] - offsets[p, 0]
        x = rois[p].med[i, 1] - offsets[p, 1]
        y_um, x_um = volume_um(y, x, roi_field[p][i], planes.fields, dy_um, dx_um)
        return dict(y_px=y, x_px=x, y_um=y_um, x_um=x_um, field=roi_field[p][i],
                    z_um=numbers[p] * dz_um if dz_um is not None else None)

    cell_rows = []
    for g in cells.order:
        members, prim = cells.groups[g], cells.primary[g]
        cid = cells.cell_of[prim]
        weight = np.array([max(float(np.nan_to_num(rois[m[0]].contrast[m[1]])), 0.0) for m in members])
        weight = weight if weight.sum() > 0 else np.ones(len(members))
        where = position(*prim)
        z = (float(np.dot(weight, [numbers[m[0]] for m in members]) / weight.sum()) * dz_um
             if dz_um is not None else None)
        cell_rows.append(dict(
            cell_id=cid, accepted=any(bool(rois[m[0]].accepted[m[1]]) for m in members),
            n_rois=len(members) + sum(1 for t in ghosts if cells.cell_of.get(t) == cid),
            planes=",".join(str(numbers[p]) for p in sorted({m[0] for m in members})),
            primary_plane=numbers[prim[0]], primary_roi=prim[1], y_px=where["y_px"], x_px=where["x_px"],
            y_um=where["y_um"], x_um=where["x_um"], z_um=z,
            rois=",".join(f"{numbers[m[0]]}:{m[1]}" for m in members)))
    primaries = set(cells.primary)
    roi_rows = []
    for p in range(len(planes)):
        for i in range(rois[p].n):
            dup = cells.duplicate.get((p, i), {})
            of = dup.get("of")
            roi_rows.append(dict(
                plane=numbers[p], roi=i, accepted=bool(rois[p].accepted[i]), cell_id=cells.cell_of.get((p, i)),
                primary=(p, i) in primaries, duplicate_of_reason=dup.get("reason", ""),
                duplicate_of=f"{numbers[of[0]]}:{of[1]}" if of else "", match_correlation=dup.get("corr"),
                snr=snrs[p][i], contrast=rois[p].contrast[i], npix=int(rois[p].npix[i]), **position(p, i)))
    return cell_rows, roi_rows


def identify_cells(planes: Planes, session: dict, options: dict) -> dict:
    """Plane offsets, crosstalk and one ID per cell of a session (see the module docstring).
    ``session``: session_id, dx, dy, dz (µm), nrois; ``options``: the config's ``volume`` group,
    ``offsets`` (overrides) keyed by plane number. Returns the rows of the four tables
    (``offsets``, ``crosstalk``, ``rois``, ``cells``), the offsets (planes, 2) as
    ``offsets_px`` and the number of crosstalk ghosts."""
    overrides = {planes.numbers.index(int(k)): v for k, v in (options.get("offsets") or {}).items()}
    rois = rois_in_common_frame(planes)
    diameter = typical_diameter(rois)
    xt_rows, coefficients, clean = crosstalk_and_clean_means(planes, overrides, options, diameter)
    off_rows, offsets = offset_rows(planes, clean, overrides, float(options["min_confidence"]), coefficients)
    snrs = roi_snrs(planes, rois)
    axial, ghosts = matching_pairs(planes, rois, offsets, coefficients, diameter, options)
    unreliable = unreliable_planes(planes, rois, axial, clean if coefficients else None)
    for p, why in unreliable.items():
        log.warning("volume: plane %d: detections unreliable (%s)%s", planes.numbers[p], why,
                    "" if options.get("keep_unreliable_planes") else
                    "; its ROIs seen in no other plane are left out of cells.tsv (volume.keep_unreliable_planes)")
    cells = group_cells(rois, snrs, axial, ghosts, offsets, planes.shape, options, roi_correlation(planes),
                        leave_out=() if options.get("keep_unreliable_planes") else unreliable)
    _warn_missing_geometry(session, planes.fields)
    cell_rows, roi_rows = cell_and_roi_rows(planes, rois, snrs, cells, ghosts, offsets, session)
    for r in roi_rows:
        r["unreliable"] = unreliable.get(planes.numbers.index(r["plane"]), "")
    return dict(offsets=off_rows, crosstalk=xt_rows, rois=roi_rows, cells=cell_rows, offsets_px=offsets,
                n_ghosts=len(ghosts), n_rois=sum(r.n for r in rois))
