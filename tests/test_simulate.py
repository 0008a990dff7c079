"""The synthetic session generator: file layout, interleaving, ground truth, determinism."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from planeflow import PlaneflowError
import tifffile

from planeflow.synth.groundtruth import load_ground_truth
from planeflow.synth.simulate import simulate_session

P, T, LY, LX, NC, D, M = 3, 40, 56, 64, 4, 8, 2


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """Noise-free session: intensities are exactly the model, so structure is checkable."""
    d = tmp_path_factory.mktemp("clean")
    res = simulate_session(d, nplanes=P, nframes=T, Ly=LY, Lx=LX, cells_per_plane=NC,
                           diameter=D, max_shift=M, seed=7, noise=False)
    return res, load_ground_truth(res["ground_truth"]), tifffile.imread(res["files"][0])


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    d = tmp_path_factory.mktemp("noisy")
    res = simulate_session(d, nplanes=P, nframes=T, Ly=LY, Lx=LX, cells_per_plane=NC,
                           diameter=D, max_shift=M, seed=7)
    return res, load_ground_truth(res["ground_truth"])


def unshift(frame, dy, dx, m=M):
    """The interior [m:L-m] of the un-shifted field, read from a frame whose content moved by (dy, dx)."""
    Ly, Lx = frame.shape
    return frame[m + dy:Ly - m + dy, m + dx:Lx - m + dx]


def test_single_file_layout(noisy):
    res, gt = noisy
    assert [Path(f).name for f in res["files"]] == ["synthetic_00001.tif"]
    assert Path(res["ground_truth"]).name == "ground_truth.npz"
    with tifffile.TiffFile(res["files"][0]) as tif:
        assert len(tif.pages) == P * T
        page = tif.pages[0]
        assert page.shape == (LY, LX) and page.dtype == np.int16
    a = tifffile.imread(res["files"][0])
    assert a.shape == (P * T, LY, LX) and a.dtype == np.int16
    assert a.min() >= -50 and 0 < a.mean() < 1000
    for k in ("nplanes", "nframes", "Ly", "Lx", "cells_per_plane", "diameter", "fs", "tau",
              "max_shift", "nfiles", "seed", "name", "noise"):
        assert k in res
    assert (res["nplanes"], res["nframes"], res["Ly"], res["Lx"]) == (P, T, LY, LX)


def test_ground_truth_keys_shapes_dtypes(noisy):
    _, gt = noisy
    assert (gt["nplanes"], gt["Ly"], gt["Lx"], gt["nframes"]) == (P, LY, LX, T)
    assert isinstance(gt["nplanes"], int) and isinstance(gt["fs"], float)
    assert gt["fs"] == 15.0 and gt["tau"] == 1.0 and gt["diameter"] == D
    assert gt["labels"].shape == (P, LY, LX) and gt["labels"].dtype == np.int32
    assert gt["footprints"].shape == (P, NC, LY, LX) and gt["footprints"].dtype == np.float32
    assert gt["centers"].shape == (P, NC, 2)
    assert gt["traces"].shape == (P, NC, T) and gt["traces"].dtype == np.float32
    assert gt["spikes"].shape == (P, NC, T)
    assert gt["shifts"].shape == (T, 2)
    for p in range(P):
        assert sorted(np.unique(gt["labels"][p])) == list(range(NC + 1))


def test_labels_match_centers_and_footprints(noisy):
    _, gt = noisy
    r = D / 2
    yy, xx = np.mgrid[0:LY, 0:LX]
    for p in range(P):
        lab = gt["labels"][p]
        for k in range(1, NC + 1):
            mask = lab == k
            cy, cx = gt["centers"][p, k - 1]
            assert abs(yy[mask].mean() - cy) < 1.0 and abs(xx[mask].mean() - cx) < 1.0
            assert 0.5 * np.pi * r ** 2 < mask.sum() < 1.6 * np.pi * r ** 2
            fp = gt["footprints"][p, k - 1]
            assert fp.max() == pytest.approx(1.0)
            np.testing.assert_array_equal(mask, fp > 0.5)   # label = footprint above half its peak
        # non-overlapping cells, away from the border by more than max_shift + radius
        c = gt["centers"][p]
        dist = np.hypot(*(c[:, None, :] - c[None, :, :]).transpose(2, 0, 1))
        assert dist[~np.eye(NC, dtype=bool)].min() >= D
        assert np.all(c[:, 0] > M + r) and np.all(c[:, 0] < LY - 1 - M - r)
        assert np.all(c[:, 1] > M + r) and np.all(c[:, 1] < LX - 1 - M - r)


def test_traces_are_spikes_convolved_with_exponential(noisy):
    _, gt = noisy
    s, c = gt["spikes"], gt["traces"].astype(float)
    g = np.exp(-1.0 / (gt["tau"] * gt["fs"]))
    np.testing.assert_allclose(c[..., 0], s[..., 0], atol=1e-5)
    np.testing.assert_allclose(c[..., 1:], g * c[..., :-1] + s[..., 1:], rtol=1e-5, atol=1e-4)
    assert np.all(s >= 0) and np.all(s == np.round(s))
    assert np.all((s > 0).sum(-1) >= 3)          # every planted cell is active


def test_shifts_integer_and_bounded(noisy):
    _, gt = noisy
    s = gt["shifts"]
    assert np.all(s == np.round(s)) and np.abs(s).max() <= M
    assert np.abs(s).max() == M and len(np.unique(s, axis=0)) > 3   # there is real motion


def test_no_motion_when_max_shift_zero(tmp_path):
    simulate_session(tmp_path, nplanes=1, nframes=10, Ly=32, Lx=32, cells_per_plane=2,
                     diameter=6, max_shift=0, seed=0)
    assert not np.any(load_ground_truth(tmp_path)["shifts"])


def test_shift_sign_convention(clean):
    """Frame content of volume v is displaced by +shifts[v] relative to the un-shifted field."""
    _, gt, a = clean
    s = gt["shifts"].astype(int)
    for p in range(P):
        frames = a[p::P].astype(float)
        for v in range(1, T):
            # brute-force search of the content displacement of frame v relative to frame 0
            best, arg = -2.0, None
            for dy in range(-2 * M, 2 * M + 1):
                for dx in range(-2 * M, 2 * M + 1):
                    y0, x0 = 2 * M + dy, 2 * M + dx
                    win = frames[v][y0:y0 + LY - 4 * M, x0:x0 + LX - 4 * M]
                    c = np.corrcoef(win.ravel(), frames[0][2 * M:LY - 2 * M, 2 * M:LX - 2 * M].ravel())[0, 1]
                    if c > best:
                        best, arg = c, (dy, dx)
            assert arg == tuple(s[v] - s[0]), (p, v)


def test_plane_interleaving_recovers_each_planes_cells(clean):
    """Page i is plane i % nplanes of volume i // nplanes: cell traces read out of the pages
    follow that plane's planted calcium, not another plane's."""
    _, gt, a = clean
    s = gt["shifts"].astype(int)

    def score(pages_of_plane, p):
        cs = []
        for k in range(1, NC + 1):
            mask = unshift(gt["labels"][p], 0, 0) == k
            f = np.array([unshift(fr, *s[v])[mask].mean() for v, fr in enumerate(pages_of_plane)])
            cs.append(np.corrcoef(f, gt["traces"][p, k - 1])[0, 1])
        return np.array(cs)

    for p in range(P):
        own = score(a[p::P].astype(float), p)
        assert own.min() > 0.95, own
        for q in range(1, P):
            other = score(a[(p + q) % P::P].astype(float), p)
            assert other.mean() < 0.6 and np.all(other < own), (q, other)
    # volume order: reading plane 0 with the volumes reversed breaks the match
    rev = score(a[0::P][::-1].astype(float), 0)
    assert rev.mean() < 0.5


def test_noise_free_intensity_model(clean):
    """Inside a cell, the noise-free intensity rises with its calcium by gain * f0 * dff."""
    _, gt, a = clean
    s = gt["shifts"].astype(int)
    p, k = 1, 0
    y, x = np.round(gt["centers"][p, k]).astype(int)
    f = np.array([a[v * P + p][y + s[v, 0], x + s[v, 1]] for v in range(T)], dtype=float)
    fp = gt["footprints"][p, k, y, x]
    slope = np.polyfit(gt["traces"][p, k], f, 1)[0]
    expected = gt["gain"] * gt["f0"][p, k] * gt["dff"][p, k] * fp
    assert slope == pytest.approx(expected, rel=0.1)


def test_deterministic_by_seed(tmp_path):
    kw = dict(nplanes=2, nframes=12, Ly=40, Lx=40, cells_per_plane=3, diameter=8, max_shift=2)
    r1 = simulate_session(tmp_path / "a", seed=3, **kw)
    r2 = simulate_session(tmp_path / "b", seed=3, **kw)
    r3 = simulate_session(tmp_path / "c", seed=4, **kw)
    a1, a2, a3 = (tifffile.imread(r["files"][0]) for r in (r1, r2, r3))
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, a3)
    g1, g2, g3 = (load_ground_truth(r["ground_truth"]) for r in (r1, r2, r3))
    for key in ("labels", "centers", "traces", "spikes", "shifts"):
        np.testing.assert_array_equal(g1[key], g2[key])
    assert not np.array_equal(g1["centers"], g3["centers"])


def test_nfiles_split_keeps_order_and_whole_volumes(tmp_path):
    kw = dict(nplanes=3, nframes=20, Ly=40, Lx=48, cells_per_plane=3, diameter=8, max_shift=2,
              seed=11, name="rec")
    one = simulate_session(tmp_path / "one", nfiles=1, **kw)
    three = simulate_session(tmp_path / "three", nfiles=3, **kw)
    assert [Path(f).name for f in three["files"]] == ["rec_00001.tif", "rec_00002.tif", "rec_00003.tif"]
    assert [Path(f).name for f in one["files"]] == ["rec_00001.tif"]
    parts = [tifffile.imread(f) for f in three["files"]]
    assert all(len(x) % 3 == 0 and len(x) > 0 for x in parts)
    assert sum(len(x) for x in parts) == 3 * 20
    np.testing.assert_array_equal(np.concatenate(parts), tifffile.imread(one["files"][0]))


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        simulate_session(tmp_path, nframes=5, nfiles=6, Ly=32, Lx=32, cells_per_plane=1)
    with pytest.raises(PlaneflowError, match="reduce cells_per_plane"):   # far too many cells for the field of view
        simulate_session(tmp_path, nframes=5, Ly=32, Lx=32, cells_per_plane=50)
