"""End-to-end on ScanImage-format LBM data: planes saved as channels, two mROI stripes
with fly-to lines, a planted bidirectional scan-phase offset, split over two files.
Metadata (planes, fs, ROIs, pixel size) come from the headers only: the sheet gives
just the session id and the files."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import dry_run_jobs, make_config, snakemake

pytestmark = pytest.mark.workflow

NPLANES, NFRAMES, H, WIDTHS, BIDI = 2, 500, 128, (96, 96), 2
S2P = {"torch_device": "cpu", "diameter": [10, 10], "registration": {"block_size": [64, 64]},
       "detection": {"sparsery_settings": {"spatial_scale": 2}}}  # see test_workflow.py


def simulate(dest, bidiphase, seed=11):
    from planeflow.synth.scanimage_session import simulate_scanimage_session

    return simulate_scanimage_session(dest, nplanes=NPLANES, nframes=NFRAMES, roi_widths=WIDTHS,
                                      height=H, fly_to_lines=6, bidiphase=bidiphase, nfiles=2,
                                      seed=seed, cells_per_plane=18)


def run(tmp, name, raw, roi_mode):
    cfg = make_config(tmp / name, [{"session_id": name, "data_path": str(raw / "lbm_*.tif")}],
                      suite2p=S2P, acquisition={"roi_mode": roi_mode, "channels_are_planes": True})
    jobs = dry_run_jobs(cfg)
    snakemake(cfg, check=True)
    return tmp / name / "results" / name, jobs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("si")
    sim = simulate(tmp / "raw_offset", BIDI)
    simulate(tmp / "raw_clean", 0)
    out = {"sim": sim}
    out["stitch"], out["stitch_jobs"] = run(tmp, "stitch", tmp / "raw_offset", "stitch")
    out["clean"], _ = run(tmp, "clean", tmp / "raw_clean", "stitch")
    out["separate"], out["separate_jobs"] = run(tmp, "separate", tmp / "raw_offset", "separate")
    return out


def recall_precision(res, plane, gt):
    from planeflow.synth.groundtruth import match_rois

    stat = np.load(res / "suite2p" / f"plane{plane}" / "stat.npy", allow_pickle=True)
    return match_rois(stat, gt["labels"][plane])


def test_header_metadata_drives_the_dag(runs):
    import json

    meta = json.loads((runs["stitch"] / "metadata.json").read_text())
    assert meta["stack_type"] == "lbm" and meta["nplanes"] == NPLANES and meta["fs"] == 15.0
    assert meta["nframes"] == NFRAMES and meta["nrois"] == 2
    assert meta["plane_shape"] == [H, sum(WIDTHS)] and meta["dx"] > 0
    assert meta["scanimage"]["fly_to_lines"] == 6
    assert len(meta["files"]) == 2
    assert sorted(int(w["plane"]) for r, w in runs["stitch_jobs"] if r == "registration") == [0, 1]


def test_scan_phase_estimated_and_corrected(runs):
    from planeflow.synth.groundtruth import load_ground_truth

    gt = load_ground_truth(runs["sim"]["ground_truth"])
    for p in range(NPLANES):
        ops = np.load(runs["stitch"] / "suite2p" / f"plane{p}" / "ops.npy", allow_pickle=True).item()
        assert abs(ops["bidiphase_offset"] - BIDI) <= 0.25
        clean = np.load(runs["clean"] / "suite2p" / f"plane{p}" / "ops.npy", allow_pickle=True).item()
        assert abs(clean["bidiphase_offset"]) <= 0.25
        with_offset = recall_precision(runs["stitch"], p, gt)
        without = recall_precision(runs["clean"], p, gt)
        assert with_offset["recall"] >= without["recall"], (with_offset, without)
        assert with_offset["recall"] >= 0.9 and with_offset["precision"] >= 0.9


def test_stitched_plane_image(runs):
    ops = np.load(runs["stitch"] / "suite2p" / "plane0" / "ops.npy", allow_pickle=True).item()
    assert (ops["Ly"], ops["Lx"]) == (H, sum(WIDTHS))
    assert ops["meanImg"].shape == (H, sum(WIDTHS))


def test_separate_rois_are_processed_apart_and_merged(runs):
    from planeflow.synth.groundtruth import load_ground_truth

    jobs = runs["separate_jobs"]
    for step in ("binary_write", "registration", "detection", "postprocess"):
        got = sorted((int(w["plane"]), int(w["part"])) for r, w in jobs if r == step)
        assert got == [(p, k) for p in range(NPLANES) for k in range(2)], step
    assert sorted(int(w["plane"]) for r, w in jobs if r == "merge") == [0, 1]
    gt = load_ground_truth(runs["sim"]["ground_truth"])
    for p in range(NPLANES):
        d = runs["separate"] / "suite2p" / f"plane{p}"
        ops = np.load(d / "ops.npy", allow_pickle=True).item()
        stat = np.load(d / "stat.npy", allow_pickle=True)
        F = np.load(d / "F.npy")
        assert ops["nparts"] == 2 and (ops["Ly"], ops["Lx"]) == (H, sum(WIDTHS))
        n0, n1 = (part["n_rois"] for part in ops["parts"])
        assert len(stat) == F.shape[0] == n0 + n1
        # the second ROI's cells were shifted by the first ROI's width
        assert all(s["xpix"].min() >= WIDTHS[0] for s in stat[n0:])
        assert all(s["xpix"].max() < WIDTHS[0] for s in stat[:n0])
        m = recall_precision(runs["separate"], p, gt)
        # a cell cut by the stripe boundary is seen as two halves, one per ROI, and the
        # narrow stripes' edges give a few extra ROIs that suite2p's classifier rejects;
        # the rest must be found, and the accepted ROIs must lie on planted cells
        assert m["recall"] >= 0.8, m
        iscell = np.load(d / "iscell.npy")[:, 0].astype(bool)
        on_cell = [np.mean(gt["labels"][p][s["ypix"], s["xpix"]] > 0) >= 0.4 for s in stat[iscell]]
        assert np.mean(on_cell) >= 0.9, (np.mean(on_cell), m)
