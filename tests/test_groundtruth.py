"""Scoring against planted ground truth: ROI matching and registration error."""
from __future__ import annotations

import numpy as np
import pytest

from planeflow.synth.groundtruth import (
    load_ground_truth,
    match_rois,
    reference_offset,
    registration_error,
)

LY, LX, R = 80, 100, 5.0


def disk(cy, cx, r=R, shape=(LY, LX)):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2


@pytest.fixture
def labels():
    """Ten disk-shaped cells on a 2 x 5 grid, labels 1..10."""
    lab = np.zeros((LY, LX), np.int32)
    centers = [(20 + 40 * i, 12 + 19 * j) for i in range(2) for j in range(5)]
    for k, (cy, cx) in enumerate(centers, start=1):
        lab[disk(cy, cx)] = k
    return lab


def roi(mask, dy=0, dx=0):
    """A suite2p-like stat entry for the pixels of ``mask`` moved by (dy, dx)."""
    y, x = np.nonzero(mask)
    y, x = y + dy, x + dx
    return {"ypix": y.astype(np.int32), "xpix": x.astype(np.int32),
            "lam": np.ones(len(y), np.float32), "med": [int(np.median(y)), int(np.median(x))]}


def stat_from(labels, keep=None, dy=0, dx=0):
    ks = range(1, labels.max() + 1) if keep is None else keep
    return np.array([roi(labels == k, dy, dx) for k in ks], dtype=object)


def test_perfect_match(labels):
    r = match_rois(stat_from(labels), labels)
    assert (r["n_true"], r["n_detected"], r["n_matched"]) == (10, 10, 10)
    assert r["recall"] == 1.0 and r["precision"] == 1.0 and r["f1"] == 1.0
    np.testing.assert_array_equal(r["matches"], np.stack([np.arange(10), np.arange(1, 11)], 1))
    np.testing.assert_allclose(r["match_iou"], 1.0)
    assert len(r["missed"]) == 0 and len(r["spurious"]) == 0


def test_matching_is_by_overlap_not_by_order(labels):
    order = [7, 2, 9, 1, 10, 3, 5, 4, 8, 6]
    r = match_rois(stat_from(labels, keep=order), labels)
    assert r["n_matched"] == 10
    assert {(int(i), int(k)) for i, k in r["matches"]} == {(i, k) for i, k in enumerate(order)}


def test_missing_cells(labels):
    r = match_rois(stat_from(labels, keep=[1, 2, 4, 5, 6, 8, 9]), labels)
    assert r["n_matched"] == 7 and r["recall"] == pytest.approx(0.7) and r["precision"] == 1.0
    assert sorted(r["missed"].tolist()) == [3, 7, 10]


def test_spurious_rois(labels):
    st = list(stat_from(labels))
    st.append(roi(disk(40, 50, 4)))              # background, between the rows
    st.append(roi(disk(40, 90, 6)))
    r = match_rois(st, labels)
    assert r["n_detected"] == 12 and r["n_matched"] == 10
    assert r["recall"] == 1.0 and r["precision"] == pytest.approx(10 / 12)
    assert sorted(r["spurious"].tolist()) == [10, 11]


def test_duplicate_rois_match_once(labels):
    st = list(stat_from(labels)) + [roi(disk(20, 12, 4))]   # second ROI on cell 1
    r = match_rois(st, labels)
    assert r["n_matched"] == 10 and r["precision"] == pytest.approx(10 / 11)
    assert r["spurious"].tolist() == [10]        # the full-size ROI wins cell 1


def test_one_roi_spanning_two_cells_matches_at_most_one(labels):
    both = (labels == 1) | (labels == 2) | disk(20, 21.5, 3)
    st = [roi(both)]
    r = match_rois(st, labels)
    assert r["n_matched"] <= 1


def test_smaller_soma_cropped_roi_still_matches(labels):
    # suite2p's soma_crop often keeps only the core of a cell
    st = [roi(disk(20, 12, 0.65 * R))]
    r = match_rois(st, labels)
    assert r["n_matched"] == 1 and r["matches"][0].tolist() == [0, 1]
    assert 0.25 <= r["match_iou"][0] < 0.6


def test_shifted_rois_and_offset(labels):
    # a small displacement still matches, with lower IoU
    r = match_rois(stat_from(labels, dy=2, dx=1), labels)
    assert r["n_matched"] == 10 and r["match_iou"].max() < 0.8
    # a displacement larger than the cell radius does not
    r = match_rois(stat_from(labels, dy=0, dx=9), labels)
    assert r["n_matched"] == 0 and r["recall"] == 0.0
    # giving the reference offset puts the ROIs back in ground-truth coordinates
    r = match_rois(stat_from(labels, dy=0, dx=9), labels, offset=(0, 9))
    assert r["n_matched"] == 10 and np.allclose(r["match_iou"], 1.0)


def test_min_iou_threshold(labels):
    st = [roi(disk(20, 12 + 4.5, R))]            # cell 1 shifted by ~0.9 radius
    iou = match_rois(st, labels, min_iou=0.0)["iou"][0, 0]
    assert 0.1 < iou < 0.5
    assert match_rois(st, labels, min_iou=iou - 1e-6)["n_matched"] == 1
    assert match_rois(st, labels, min_iou=iou + 1e-6)["n_matched"] == 0


def test_empty_inputs(labels):
    r = match_rois([], labels)
    assert r["n_detected"] == 0 and r["recall"] == 0.0 and np.isnan(r["precision"])
    r = match_rois(stat_from(labels), np.zeros_like(labels))
    assert r["n_true"] == 0 and r["precision"] == 0.0 and np.isnan(r["recall"])


def test_rois_partly_outside_frame_are_clipped(labels):
    st = [roi(labels == 1, dy=0, dx=0)]
    st[0]["ypix"] = np.concatenate([st[0]["ypix"], [-1, LY + 3]])
    st[0]["xpix"] = np.concatenate([st[0]["xpix"], [0, 0]])
    r = match_rois(st, labels)
    assert r["n_matched"] == 1 and r["match_iou"][0] < 1.0


# ------------------------------------------------------------------ registration error


@pytest.fixture
def shifts():
    rng = np.random.default_rng(0)
    return rng.integers(-3, 4, size=(200, 2)).astype(float)


def test_registration_error_zero_with_constant_offset(shifts):
    cy, cx = 2.0, -1.0
    yoff, xoff = shifts[:, 0] - cy, shifts[:, 1] - cx     # suite2p: yoff = dy - cy
    assert registration_error(yoff, xoff, shifts) == pytest.approx(0.0, abs=1e-12)
    assert reference_offset(yoff, xoff, shifts) == (cy, cx)


def test_registration_error_sign_convention(shifts):
    # offsets with the opposite sign are not a constant away from the truth
    err = registration_error(-shifts[:, 0], -shifts[:, 1], shifts)
    assert err > 2.0


def test_registration_error_value(shifts):
    yoff, xoff = shifts[:, 0] + 1.0, shifts[:, 1].copy()
    xoff[:20] += 1.0                  # 10 % of frames wrong by 1 px in x
    # the median offset ignores the few wrong frames: RMS = sqrt(0.1 * 1^2)
    assert registration_error(yoff, xoff, shifts) == pytest.approx(np.sqrt(0.1))
    yoff2 = yoff + np.where(np.arange(200) % 2 == 0, 0.25, -0.25)
    assert registration_error(yoff2, shifts[:, 1], shifts) == pytest.approx(0.25)


def test_registration_error_checks_lengths(shifts):
    with pytest.raises(ValueError):
        registration_error(shifts[:-1, 0], shifts[:-1, 1], shifts)


def test_suite2p_offsets_follow_the_documented_sign(tmp_path):
    """suite2p's own rigid registration gives yoff = dy - cy on simulated frames."""
    torch = pytest.importorskip("torch")
    register = pytest.importorskip("suite2p.registration.register")
    import tifffile

    from planeflow.synth.simulate import simulate_session

    res = simulate_session(tmp_path, nplanes=2, nframes=30, Ly=64, Lx=64, cells_per_plane=4,
                           diameter=8, max_shift=2, seed=2)
    gt = load_ground_truth(res["ground_truth"])
    frames = tifffile.imread(res["files"][0])[1::2].copy()
    ref = frames[5].astype(np.float32)
    out = register.register_frames(frames, ref, nonrigid=False, device=torch.device("cpu"),
                                   apply_shifts=False)
    yoff, xoff = np.asarray(out[3][0]), np.asarray(out[3][1])
    assert registration_error(yoff, xoff, gt["shifts"]) < 0.5
    assert reference_offset(yoff, xoff, gt["shifts"]) == tuple(gt["shifts"][5])
    assert registration_error(-yoff, -xoff, gt["shifts"]) > 1.0


def test_load_ground_truth_folder_or_file(tmp_path):
    from planeflow.synth.simulate import simulate_session

    simulate_session(tmp_path, nplanes=1, nframes=5, Ly=32, Lx=32, cells_per_plane=2,
                     diameter=6, max_shift=1)
    a = load_ground_truth(tmp_path)
    b = load_ground_truth(tmp_path / "ground_truth.npz")
    assert isinstance(a["nplanes"], int) and a["nplanes"] == 1 and isinstance(a["fs"], float)
    np.testing.assert_array_equal(a["labels"], b["labels"])
