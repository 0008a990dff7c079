"""Tracking one subject's cells across sessions: :func:`track_subject`.

The published method of CellReg (Sheintuch et al. 2017, J Neurophysiol 118: 1721-1736), in 3-D:

1. every session's volume is registered onto the reference session's
   (:mod:`~planeflow.core.tracking.align`: rotation, translation, z shift, non-rigid warp);
2. cells of every two sessions within ``max_distance_um`` are candidates; their centroid
   distances and footprint correlations (over neighbouring planes, so a neuron that moved a
   plane in z is compared with itself) are fitted by CellReg's mixture models, which give each
   pair ``P_same`` (:mod:`~planeflow.core.tracking.model`);
3. cells are clustered across sessions with at most one cell per session per cluster
   (:mod:`~planeflow.core.tracking.cluster`): a cluster is a track.

A cell is one ``cell_id`` of the session's volume step (its ROIs in every plane), so a neuron
seen in two planes of one session is one track entry. ``across_planes: false`` is the classic
per-plane matching, for comparison: each cell's primary ROI alone, matched within its plane,
no z shift.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from planeflow import PlaneflowError
from planeflow.core.tracking import align, cluster, features, model
from planeflow.core.tracking.cells import SessionCells, check_sessions

#: the ``tracking:`` options and their defaults
DEFAULTS = dict(
    reference=None,             # session name; None: the first session
    max_distance_um=12.0,       # candidate pairs: centroids at most this far apart in the plane
    p_same_threshold=0.5,       # a pair joins a track from this P_same
    model="joint",              # spatial_correlation | centroid_distance | joint
    max_shift_px=30.0,          # largest translation searched between sessions
    max_rotation_deg=6.0,       # largest rotation searched
    rotation_step_deg=1.0,      # coarse angle grid (refined 4x finer around the best)
    max_z_shift_planes=1,       # largest z shift searched, whole planes (fractional estimate within)
    max_plane_distance=1.0,     # footprints compared across planes this far apart after the z shift, and
                                # candidate cells' depths (after the z shift) at most this far apart
    nonrigid=True,              # non-rigid refinement of the registration
    nonrigid_block_px=64,       # its block size
    nonrigid_max_px=5.0,        # its largest displacement
    highpass_px=10.0,           # mean images high-passed at this scale (px) before registration
    across_planes=True,         # False: one plane at a time (each cell's primary ROI, its plane only)
)

#: tracked_cells.tsv (the caller adds ``subject`` in front)
TRACKED_CELLS_COLUMNS = ("session", "plane", "roi", "cell_id", "track_id", "match_score")
#: tracks.tsv
TRACKS_COLUMNS = ("track_id", "n_sessions", "sessions", "planes", "y_um", "x_um", "z_um")
#: the per-pair summary
PAIRS_COLUMNS = ("session_a", "session_b", "cells_a", "cells_b", "tracked_both", "shift_y_px", "shift_x_px",
                 "rotation_deg", "z_shift_planes", "alignment_corr", "registration_peak")


@dataclass
class TrackingResult:
    """Rows of the three tables (column lists: :data:`TRACKED_CELLS_COLUMNS`,
    :data:`TRACKS_COLUMNS`, :data:`PAIRS_COLUMNS`), each session's transform onto the reference,
    the fitted model, the tracks (session index -> cell index) and the options used."""

    tracked_cells: list[dict]
    tracks: list[dict]
    pairs: list[dict]
    reference: str
    transforms: list[align.Transform]
    clusters: list[dict]
    model: model.PairModel
    options: dict
    positions: dict = field(default_factory=dict)    # (session index, cell index) -> (y px, x px, z plane) ref.
    pair_features: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))   # distance, correlation, P_same
    seconds: float = 0.0

    tracked_cells_columns = TRACKED_CELLS_COLUMNS
    tracks_columns = TRACKS_COLUMNS
    pairs_columns = PAIRS_COLUMNS


def options_with_defaults(options: dict | None) -> dict:
    """``options`` over :data:`DEFAULTS`; an unknown key or model is an error."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise PlaneflowError(f"tracking: unknown option(s) {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    out = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None or k == "reference"}}
    if out["model"] not in model.MODELS:
        raise PlaneflowError(f"tracking: model must be one of {', '.join(model.MODELS)}, got {out['model']!r}")
    return out


def _reference(sessions: list[SessionCells], name) -> int:
    if name is None:
        return 0
    names = [s.session for s in sessions]
    if str(name) not in names:
        raise PlaneflowError(f"tracking: reference session {name!r} is not one of {', '.join(names)}")
    return names.index(str(name))


def register_sessions(sessions: list[SessionCells], ref: int, opt: dict) -> list[align.Transform]:
    """Each session's transform onto the reference session (identity for the reference)."""
    out = []
    per_plane = not opt["across_planes"]
    for s, sc in enumerate(sessions):
        if s == ref:
            out.append(align.identity(sc.shape))
            continue
        out.append(align.register(
            sessions[ref].means, sc.means, sigma=float(opt["highpass_px"]), max_rotation=float(opt["max_rotation_deg"]),
            rotation_step=float(opt["rotation_step_deg"]), max_shift=float(opt["max_shift_px"]),
            max_z_shift=0 if per_plane else int(opt["max_z_shift_planes"]), nonrigid_on=bool(opt["nonrigid"]),
            block=int(opt["nonrigid_block_px"]), max_nonrigid=float(opt["nonrigid_max_px"])))
    return out


def _candidate_pairs(all_units, transforms, pixel_um, opt) -> list[tuple]:
    """(session a, unit a, session b, unit b, distance µm, correlation) of every session pair."""
    per_plane = not opt["across_planes"]
    out = []
    n = len(all_units)
    for a in range(n):
        for b in range(a + 1, n):
            za, zb = (0.0, 0.0) if per_plane else (transforms[a].z_shift, transforms[b].z_shift)
            for i, j, d, r in features.candidates(all_units[a], all_units[b], za, zb, pixel_um=pixel_um,
                                                  max_distance=float(opt["max_distance_um"]),
                                                  max_plane_distance=0.0 if per_plane else
                                                  float(opt["max_plane_distance"]),
                                                  max_depth_difference=None if per_plane else
                                                  float(opt["max_plane_distance"])):
                out.append((a, i, b, j, d, r))
    return out


def track_subject(sessions: list[SessionCells], options: dict | None = None) -> TrackingResult:
    """Track the cells of one subject's sessions (module docstring). A single session gives
    every cell its own track. Raises :class:`~planeflow.PlaneflowError` on sessions that cannot be
    compared (:func:`~planeflow.core.tracking.cells.check_sessions`) or unknown options."""
    t0 = time.perf_counter()
    check_sessions(sessions)
    opt = options_with_defaults(options)
    ref = _reference(sessions, opt.get("reference"))
    per_plane = not opt["across_planes"]
    transforms = register_sessions(sessions, ref, opt)
    all_units = [features.units(sc, s, transforms[s], per_plane) for s, sc in enumerate(sessions)]
    pixel_um = sessions[ref].pixel_um()
    cand = _candidate_pairs(all_units, transforms, pixel_um, opt)
    fitted = model.fit([c[4] for c in cand], [c[5] for c in cand], float(opt["max_distance_um"]))
    p = fitted.p_same(np.array([c[4] for c in cand]), np.array([c[5] for c in cand]), opt["model"]) if cand else []
    pairs = [(a, i, b, j, float(pp)) for (a, i, b, j, _, _), pp in zip(cand, p)]
    clusters = cluster.cluster([len(u) for u in all_units], pairs, float(opt["p_same_threshold"]))
    score = cluster.scores(clusters, pairs)
    result = _tables(sessions, ref, transforms, all_units, clusters, score, fitted, opt)
    result.pair_features = np.array([(c[4], c[5], pp) for c, pp in zip(cand, p)]).reshape(-1, 3)
    result.seconds = time.perf_counter() - t0
    return result


def _order(clusters: list[dict]) -> list[dict]:
    """Tracks in a stable order: by the first session they are in, then that session's cell."""
    return sorted(clusters, key=lambda c: (min(c), c[min(c)]))


def _tables(sessions, ref, transforms, all_units, clusters, score, fitted, opt) -> TrackingResult:
    dy_um, dx_um = sessions[ref].pixel_um()
    dz = sessions[ref].dz_um
    ref_planes = sessions[ref].planes
    rows, tracks, positions, kept = [], [], {}, []
    for tid, c in enumerate(_order(clusters), start=1):
        members = []
        for s, u in sorted(c.items()):
            unit = all_units[s][u]
            cell = sessions[s].cells[unit.index]
            members.append((s, unit, cell))
            positions[(s, unit.index)] = (unit.y, unit.x, unit.z)
            rows.append(dict(session=sessions[s].session, plane=cell.primary[0], roi=cell.primary[1],
                             cell_id=cell.cell_id, track_id=tid, match_score=score.get((s, u), float("nan"))))
        zs = float(np.mean([m[1].z for m in members]))
        z_number = float(np.interp(zs, np.arange(len(ref_planes)), ref_planes))
        tracks.append(dict(track_id=tid, n_sessions=len(members), sessions=[sessions[s].session for s, _, _ in members],
                           planes=[cell.primary[0] for _, _, cell in members],
                           y_um=float(np.mean([m[1].y for m in members])) * dy_um,
                           x_um=float(np.mean([m[1].x for m in members])) * dx_um,
                           z_um=z_number * dz if dz else None))
        kept.append({s: unit.index for s, unit, _ in members})
    rows.sort(key=lambda r: ([x.session for x in sessions].index(r["session"]), r["cell_id"]))
    pair_rows = _pair_rows(sessions, transforms, kept, ref)
    return TrackingResult(tracked_cells=rows, tracks=tracks, pairs=pair_rows, reference=sessions[ref].session,
                          transforms=transforms, clusters=kept, model=fitted, options=opt, positions=positions)


def relative(ta: align.Transform, tb: align.Transform) -> dict:
    """Session b's rigid transform onto session a's frame, both given onto the reference."""
    c = ta.centre
    ry, rx = tb.rigid_forward(np.array([c[0]]), np.array([c[1]]))
    ay, ax = ta.rigid_inverse(ry, rx)
    return dict(shift_y_px=float(ay[0] - c[0]), shift_x_px=float(ax[0] - c[1]),
                rotation_deg=tb.theta_deg - ta.theta_deg, z_shift_planes=tb.z_shift - ta.z_shift)


def _pair_rows(sessions, transforms, clusters, ref: int) -> list[dict]:
    """One row per session pair. The registrations were measured against the reference: a pair
    with the reference shows its own quality; another pair the weaker of its two sessions'."""
    out = []
    for a in range(len(sessions)):
        for b in range(a + 1, len(sessions)):
            ta, tb = transforms[a], transforms[b]
            if ref in (a, b):
                moved = tb if a == ref else ta
                q, peak = moved.quality, moved.peak
            else:
                q, peak = float(np.nanmin([ta.quality, tb.quality])), float(min(ta.peak, tb.peak))
            out.append(dict(session_a=sessions[a].session, session_b=sessions[b].session,
                            cells_a=len(sessions[a].cells), cells_b=len(sessions[b].cells),
                            tracked_both=sum(1 for c in clusters if a in c and b in c),
                            **relative(ta, tb), alignment_corr=q, registration_peak=peak))
    return out
