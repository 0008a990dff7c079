import numpy as np
import pytest

from planeflow.core.dff import (
    FILTERS,
    apply_filters,
    compute_dff,
    dff_windows,
    eccentricity,
    rolling_percentile,
    roi_table,
)


def test_windows_follow_tau_and_fs():
    assert dff_windows(1.0, 30.0) == (300, 15)
    assert dff_windows(0.5, 10.0, window_s=20, smooth_s=1) == (200, 10)


def test_rolling_percentile_tracks_a_drifting_baseline():
    T = 3000
    t = np.arange(T)
    base = 100 + 20 * np.sin(2 * np.pi * t / T)
    x = base[None].repeat(2, 0).astype(np.float32)
    est = rolling_percentile(x, 301, 50)
    assert np.max(np.abs(est - base)[:, 200:-200]) < 1.0  # edges use a one-sided window


def test_dff_recovers_planted_transients():
    rng = np.random.default_rng(0)
    fs, tau, T = 10.0, 1.0, 4000
    t = np.arange(T)
    F0 = 500 + 100 * np.sin(2 * np.pi * t / 2000)  # slow drift of the baseline
    spikes = rng.random(T) < 0.01
    kernel = np.exp(-np.arange(50) / (tau * fs))
    calcium = np.convolve(spikes.astype(float), kernel)[:T]
    true = 0.5 * calcium  # dF/F of the planted signal
    F = (F0 * (1 + true))[None].astype(np.float32)
    dff, info = compute_dff(F, np.zeros_like(F), tau=tau, fs=fs, percentile=8, subtract_neuropil=False)
    assert info["window_frames"] == 100 and info["smooth_frames"] == 5
    assert np.corrcoef(dff[0], true)[0, 1] > 0.95
    quiet = true < 0.01
    assert abs(np.median(dff[0][quiet])) < 0.05


def test_dff_is_the_same_whatever_the_block_of_rois_and_reads_memory_maps(tmp_path, monkeypatch):
    """dF/F is computed DFF_BLOCK_ROIS ROIs at a time (postprocess' memory stays about one trace
    array): the result must not depend on the block, and F and Fneu may be memory maps."""
    import planeflow.core.dff as dffmod

    rng = np.random.default_rng(3)
    F = (300 + 40 * rng.standard_normal((37, 900))).astype(np.float32)
    Fneu = (150 + 10 * rng.standard_normal((37, 900))).astype(np.float32)
    np.save(tmp_path / "F.npy", F)
    np.save(tmp_path / "Fneu.npy", Fneu)
    whole, info = compute_dff(F, Fneu, tau=1.0, fs=15.0)
    monkeypatch.setattr(dffmod, "DFF_BLOCK_ROIS", 5)  # 8 blocks, the last one of 2 ROIs
    blocked, info_b = compute_dff(np.load(tmp_path / "F.npy", mmap_mode="r"),
                                  np.load(tmp_path / "Fneu.npy", mmap_mode="r"), tau=1.0, fs=15.0)
    assert blocked.dtype == np.float32 and type(blocked) is np.ndarray and info_b == info
    assert np.array_equal(blocked, whole)
    one, _ = compute_dff(F[12:13], Fneu[12:13], tau=1.0, fs=15.0)  # one ROI alone: its own row
    assert np.array_equal(one[0], whole[12])


def test_dff_empty_plane():
    dff, info = compute_dff(np.zeros((0, 100)), np.zeros((0, 100)), tau=1, fs=10)
    assert dff.shape == (0, 100)


def disc(cy, cx, r):
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    m = yy ** 2 + xx ** 2 <= r ** 2
    return (yy[m] + cy).astype(np.int32), (xx[m] + cx).astype(np.int32)


def line(cy, cx, n):
    return np.full(n, cy, np.int32), np.arange(cx, cx + n, dtype=np.int32)


def test_eccentricity_disc_vs_line():
    assert eccentricity(*disc(20, 20, 5)) < 0.05
    assert eccentricity(*line(5, 5, 20)) > 0.99
    y, x = disc(0, 0, 6)
    assert 0.5 < eccentricity(y, x * 3) < 0.99  # a 3:1 ellipse


def make_stat():
    out = []
    for (y, x), r in [((disc(20, 20, 5)), 5), ((disc(50, 50, 2)), 2), ((line(5, 5, 20)), 3)]:
        out.append({"ypix": y, "xpix": x, "lam": np.ones(len(y)), "med": [float(np.median(y)), float(np.median(x))],
                    "npix": len(y), "radius": r, "compact": 1.0, "snr": 0.5, "skew": 1.0, "aspect_ratio": 1.0})
    return out


def test_filters_in_microns_and_results():
    stat = make_stat()
    iscell = np.array([[1, 0.9], [1, 0.8], [1, 0.7]])
    table = roi_table(stat, iscell, dx=2.0, dy=2.0)
    assert table["diameter_um"][0] == pytest.approx(20.0)
    assert table["area_um2"][1] == pytest.approx(len(stat[1]["ypix"]) * 4)
    out, results = apply_filters(iscell, table, {"min_diameter_um": 10.0, "max_eccentricity": 0.9})
    assert out[:, 0].tolist() == [1, 0, 0]
    assert out[:, 1].tolist() == [0.9, 0.8, 0.7]  # probabilities untouched
    assert [r["filter_name"] for r in results] == ["min_diameter_um", "max_eccentricity"]
    assert results[0]["n_removed"] == 1 and results[0]["removed_indices"].tolist() == [1]
    assert results[1]["n_removed"] == 1 and results[1]["removed_indices"].tolist() == [2]
    assert results[1]["n_remaining"] == 1
    assert set(FILTERS) >= {"min_diameter_um", "max_area_um2", "max_eccentricity"}
