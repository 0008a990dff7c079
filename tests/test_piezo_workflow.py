"""End to end on a ScanImage piezo (fast-z) stack with flyback frames and two frames per
slice: planes, frames per slice and flyback frames come from the header only, the
workflow skips the flyback pages and averages each slice's frames, and every plane's
cells are found. A slow stack whose header names flyback frames saves none: its pages
per volume must not count them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_config, snakemake

NPLANES, NFRAMES, FPS, FLYBACK = 2, 400, 2, 2
S2P = {"torch_device": "cpu", "diameter": [10, 10], "registration": {"block_size": [64, 64]},
       "detection": {"sparsery_settings": {"spatial_scale": 2}}}  # see test_workflow.py


def test_slow_stack_pages_per_volume_leave_out_the_flyback_frames(tmp_path):
    from planeflow.io.scanimage import acquisition_info, read_header
    from planeflow.plan.session import session_metadata
    from planeflow.synth.scanimage_session import simulate_piezo_session

    for fast, ppv in ((True, NPLANES * FPS + FLYBACK), (False, NPLANES * FPS)):
        raw = tmp_path / f"raw_{fast}"
        sim = simulate_piezo_session(raw, nplanes=NPLANES, nframes=60, Ly=32, Lx=32, cells_per_plane=2,
                                     diameter=6, frames_per_slice=FPS, flyback=FLYBACK, fast=fast)
        info = acquisition_info(read_header(sim["files"][0]))
        meta = session_metadata({"session_id": "p", "data_path": str(raw)}, str(tmp_path / f"res_{fast}"))
        # the header interpreter and the session's reading layout agree
        assert info["pages_per_volume"] == meta["layout"]["pages_per_volume"] == ppv == sim["pages_per_volume"]
        assert info["flyback_frames"] == FLYBACK
        assert meta["nframes"] == 60 and meta["stack_type"] == "piezo" and meta["nplanes"] == NPLANES


@pytest.mark.workflow
def test_piezo_stack_with_flyback_runs_end_to_end(tmp_path):
    from planeflow.synth.groundtruth import load_ground_truth, match_rois
    from planeflow.synth.scanimage_session import simulate_piezo_session

    sim = simulate_piezo_session(tmp_path / "raw", nplanes=NPLANES, nframes=NFRAMES, Ly=128, Lx=128,
                                 frames_per_slice=FPS, flyback=FLYBACK, fast=True, cells_per_plane=18,
                                 seed=5)
    cfg = make_config(tmp_path, [{"session_id": "pz", "data_path": str(tmp_path / "raw")}], suite2p=S2P)
    snakemake(cfg, check=True)
    res = tmp_path / "results" / "pz"
    meta = json.loads((res / "metadata.json").read_text())
    assert meta["stack_type"] == "piezo" and meta["nframes"] == NFRAMES and meta["dz"] == sim["dz"]
    gt = load_ground_truth(sim["ground_truth"])
    for p in range(NPLANES):
        stat = np.load(res / "suite2p" / f"plane{p}" / "stat.npy", allow_pickle=True)
        m = match_rois(stat, gt["labels"][p])
        print(f"plane {p}: recall {m['recall']:.2f}, precision {m['precision']:.2f}")
        assert m["recall"] >= 0.9 and m["precision"] >= 0.9, (p, m)
