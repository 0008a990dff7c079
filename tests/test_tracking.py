"""Tracking cells across sessions of one subject (planeflow.core.tracking) against planted truth.

A small subject (3 sessions x 3 planes x 128 x 128 px, no motion, moves between sessions as the
issue plants them) is simulated once; every session's cells come from its planted labels, so
these tests check the tracking itself, not suite2p (benchmarks/tracking_accuracy.py runs the
workflow)."""
from __future__ import annotations

import numpy as np
import pytest

from planeflow import PlaneflowError
from planeflow.core.tracking import (PAIRS_COLUMNS, TRACKED_CELLS_COLUMNS, TRACKS_COLUMNS, SessionCells,
                                     read_session, track_subject, tracking_figure)
from planeflow.core.tracking.track import relative
from planeflow.synth.subject import load_truth, score_tracking, simulate_subject, truth_ids, truth_session

Z_SHIFTS = [0.0, 0.7, -0.3]


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    out = tmp_path_factory.mktemp("subject")
    sim = simulate_subject(out, nsessions=3, nplanes=3, nframes=20, Ly=128, Lx=128, cells_per_plane=20,
                           max_shift=0, z_shifts=Z_SHIFTS, max_translation=15.0, seed=4)
    truth = load_truth(sim["truth"])
    sessions = [truth_session(s["folder"], s["name"]) for s in sim["sessions"]]
    pop = [truth_ids(sc, ids) for sc, ids in zip(sessions, truth["ids"])]
    return dict(sessions=sessions, truth=truth, pop=pop, names=[s.session for s in sessions])


@pytest.fixture(scope="module")
def tracked(subject):
    return {mode: track_subject(subject["sessions"], {"across_planes": mode == "3d"}) for mode in ("3d", "plane")}


def _score(subject, result):
    return score_tracking(result, subject["names"], subject["pop"], subject["truth"]["moves"])


def test_3d_tracking_meets_the_targets(subject, tracked):
    s = _score(subject, tracked["3d"])
    assert s["all"]["true"] >= 40
    assert s["all"]["precision"] >= 0.95, s["pairs"]
    assert s["all"]["recall"] >= 0.90, s["pairs"]
    assert s["purity"] >= 0.95


def test_3d_beats_one_plane_at_a_time_on_z_shifted_pairs(subject, tracked):
    s3, sp = _score(subject, tracked["3d"]), _score(subject, tracked["plane"])
    assert s3["z_shifted"]["pairs"] == 2          # 0-1 (0.7 planes) and 1-2 (1.0)
    assert s3["z_shifted"]["recall"] >= 0.9
    assert s3["z_shifted"]["recall"] >= sp["z_shifted"]["recall"] + 0.3


def test_registration_recovers_the_planted_moves(subject, tracked):
    moves = subject["truth"]["moves"]
    t = tracked["3d"].transforms
    for s in (1, 2):
        rel = relative(t[0], t[s])
        theta, ty, tx, z = moves[s]
        assert abs(rel["rotation_deg"] - theta) < 0.5
        assert abs(rel["shift_y_px"] - ty) < 1.5 and abs(rel["shift_x_px"] - tx) < 1.5
        assert abs(rel["z_shift_planes"] - z) < 0.35


def test_tables_have_their_columns_and_one_row_per_cell(subject, tracked):
    r = tracked["3d"]
    assert all(set(row) == set(TRACKED_CELLS_COLUMNS) for row in r.tracked_cells)
    assert all(set(row) == set(TRACKS_COLUMNS) for row in r.tracks)
    assert all(set(row) == set(PAIRS_COLUMNS) for row in r.pairs)
    assert len(r.tracked_cells) == sum(len(s.cells) for s in subject["sessions"])
    assert len(r.pairs) == 3
    # at most one cell per session in a track
    for tid in {row["track_id"] for row in r.tracked_cells}:
        sessions = [row["session"] for row in r.tracked_cells if row["track_id"] == tid]
        assert len(sessions) == len(set(sessions))
    assert len(r.tracks) == len({row["track_id"] for row in r.tracked_cells})


def test_one_session_gives_every_cell_its_own_track(subject):
    one = subject["sessions"][:1]
    r = track_subject(one, {})
    assert len(r.tracked_cells) == len(one[0].cells) == len(r.tracks)
    assert {t["n_sessions"] for t in r.tracks} == {1}
    assert r.pairs == []


def test_a_neuron_in_two_planes_is_one_entry(subject, tracked):
    multi = [c for c in subject["sessions"][0].cells if len(c.footprints) > 1]
    assert multi, "the simulation should hold cells seen in two planes"
    ids = [row["cell_id"] for row in tracked["3d"].tracked_cells if row["session"] == subject["names"][0]]
    assert len(ids) == len(set(ids))


def _copy(sc: SessionCells, **change) -> SessionCells:
    kw = dict(session=sc.session, planes=list(sc.planes), dz_um=sc.dz_um, dy_um=sc.dy_um, dx_um=sc.dx_um,
              means=sc.means, cells=sc.cells)
    kw.update(change)
    return SessionCells(**kw)


def test_bad_input_is_one_clear_error(subject, tmp_path):
    a, b = subject["sessions"][:2]
    with pytest.raises(PlaneflowError, match="same planes"):
        track_subject([a, _copy(b, planes=b.planes[:2], means=b.means[:2])], {})
    with pytest.raises(PlaneflowError, match="pixel size"):
        track_subject([a, _copy(b, dx_um=2.0)], {})
    with pytest.raises(PlaneflowError, match="unknown option"):
        track_subject([a], {"max_distanse_um": 3})
    with pytest.raises(PlaneflowError, match="no sessions"):
        track_subject([], {})
    with pytest.raises(PlaneflowError, match="missing"):
        read_session("s", cells_tsv=tmp_path / "cells.tsv", rois_tsv=tmp_path / "rois.tsv",
                     offsets_tsv=tmp_path / "plane_offsets.tsv", plane_dirs=[], geometry={})


def test_read_session_moves_footprints_into_the_common_frame(tmp_path):
    from planeflow.io.tables import write_tsv

    vol = tmp_path / "volume_stats"
    vol.mkdir()
    write_tsv(vol / "plane_offsets.tsv", [dict(plane=0, dy_px=0, dx_px=0), dict(plane=1, dy_px=2, dx_px=-3)],
              ["plane", "dy_px", "dx_px"])
    write_tsv(vol / "cells.tsv",
              [dict(cell_id=1, accepted=True, primary_plane=0, primary_roi=0, z_um=7.5, rois="0:0,1:0"),
               dict(cell_id=2, accepted=False, primary_plane=1, primary_roi=1, z_um=15, rois="1:1")],
              ["cell_id", "accepted", "primary_plane", "primary_roi", "z_um", "rois"])
    write_tsv(vol / "rois.tsv", [], ["plane", "roi"])
    dirs = []
    for p in (0, 1):
        d = tmp_path / f"plane{p}"
        d.mkdir()
        mean = np.zeros((32, 32), np.float32)
        mean[10 + 2 * p, 10 - 3 * p] = 1.0                      # one bright pixel, the plane's offset applied
        stat = np.array([dict(ypix=np.array([5, 6]) + 2 * p, xpix=np.array([7, 7]) - 3 * p, lam=np.ones(2)),
                         dict(ypix=np.array([20]), xpix=np.array([20]), lam=np.ones(1))], dtype=object)
        np.save(d / "stat.npy", stat, allow_pickle=True)
        np.save(d / "ops.npy", dict(meanImg=mean), allow_pickle=True)
        dirs.append(d)
    sc = read_session("s1", cells_tsv=vol / "cells.tsv", rois_tsv=vol / "rois.tsv",
                      offsets_tsv=vol / "plane_offsets.tsv", plane_dirs=dirs, geometry=dict(dx=1.0, dy=1.0, dz=15.0))
    assert [c.cell_id for c in sc.cells] == [1]                   # the rejected cell is left out
    cell = sc.cells[0]
    assert cell.rois == [(0, 0), (1, 0)]
    for p in (0, 1):
        assert cell.footprints[p].ypix.tolist() == [5, 6] and cell.footprints[p].xpix.tolist() == [7, 7]
        assert np.unravel_index(np.argmax(sc.means[p]), (32, 32)) == (10, 10)
    assert cell.z_plane == pytest.approx(0.5)


def test_tracking_figure_draws_every_session(subject, tracked):
    fig = tracking_figure(tracked["3d"], subject["sessions"])
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) >= 4
    assert any("reference" in ax.get_title() for ax in fig.axes)


@pytest.fixture(scope="module")
def at_limits(tmp_path_factory):
    """Every move at the issue's limits (translation 20 px, rotation 5°, z shift of one plane):
    in this subject (seed 1) a neuron of the first session has, in the second, a silent twin at
    its depth and another neuron straight below it, 29 µm deeper, that lies a plane away."""
    out = tmp_path_factory.mktemp("limits")
    sim = simulate_subject(out, nsessions=3, nplanes=4, nframes=20, Ly=128, Lx=128, cells_per_plane=25,
                           max_shift=0, at_limits=True, seed=1)
    truth = load_truth(sim["truth"])
    sessions = [truth_session(s["folder"], s["name"]) for s in sim["sessions"]]
    pop = [truth_ids(sc, ids) for sc, ids in zip(sessions, truth["ids"])]
    return dict(sessions=sessions, truth=truth, pop=pop, names=[s.session for s in sessions])


def test_moves_at_the_limits_and_no_match_across_depth(at_limits):
    moves = at_limits["truth"]["moves"]
    assert np.allclose(np.abs(moves[1:, 0]), 5.0) and np.allclose(np.hypot(moves[1:, 1], moves[1:, 2]), 20.0)
    assert np.allclose(np.abs(moves[1:, 3]), 1.0)
    s3 = _score(at_limits, track_subject(at_limits["sessions"], {}))
    sp = _score(at_limits, track_subject(at_limits["sessions"], {"across_planes": False}))
    # no track holds two neurons (without the depth gate the neuron above is matched, P_same 1.0)
    assert s3["all"]["correct"] == s3["all"]["predicted"] and s3["purity"] == 1.0, s3["pairs"]
    assert s3["all"]["recall"] >= 0.95, s3["pairs"]
    assert s3["z_shifted"]["recall"] >= sp["z_shifted"]["recall"] + 0.5


def test_cells_a_plane_apart_in_depth_are_no_candidates():
    from planeflow.core.tracking.features import Unit, _splat, candidates

    patch = _splat(np.repeat(np.arange(10.0, 16.0), 6), np.tile(np.arange(20.0, 26.0), 6), np.ones(36))
    a = [Unit(session=0, index=0, y=12.5, x=22.5, z=1.0, patches={1: patch})]
    b = [Unit(session=1, index=0, y=12.5, x=22.5, z=z, patches={1: patch, 2: patch}) for z in (1.4, 2.6)]
    found = candidates(a, b, 0.0, 0.0, pixel_um=(1.0, 1.0), max_distance=12.0, max_plane_distance=1.0,
                       max_depth_difference=1.0)
    assert [j for _, j, _, _ in found] == [0]
