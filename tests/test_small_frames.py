"""Frames smaller than suite2p's non-rigid blocks: planeflow adapts ``block_size`` per part
(or turns non-rigid off) instead of crashing inside torch (issue 13, item 2)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import make_config, snakemake
from planeflow.plan.layout import Layout
from planeflow.steps.registration import MIN_BLOCK, fit_blocks


@pytest.mark.parametrize("frame, block, expected", [
    ((512, 512), (128, 128), None),            # fits: suite2p's defaults are kept
    ((128, 96), (128, 128), [64, 32]),         # a 96-px mROI stripe: both sides adapt
    ((512, 96), (128, 128), [128, 32]),        # only the side that breaks the rule changes
    ((129, 129), (128, 128), None),            # two blocks per side already fit
    ((64, 64), (128, 128), [32, 32]),          # the smallest frame that keeps non-rigid
    ((128, 128), (64, 64), None),
])
def test_fit_blocks_adapts_only_what_does_not_fit(frame, block, expected):
    got = fit_blocks(*frame, block, True)
    if expected is None:
        assert got is None
    else:
        assert got["to"] == expected and got["from"] == list(block) and got["nonrigid"]
        assert got["frame"] == list(frame) and "block_size" in got["reason"]
        # suite2p's own block maker now gives >= 2 blocks per side
        from suite2p.registration.nonrigid import make_blocks

        nblocks = make_blocks(*frame, expected)[2]
        assert min(nblocks) >= 2, nblocks


def test_fit_blocks_turns_nonrigid_off_without_a_sensible_block():
    got = fit_blocks(48, 200, (128, 128), True)
    assert got["nonrigid"] is False and got["to"] is None
    assert "turned off" in got["reason"] and str(2 * MIN_BLOCK) in got["reason"]
    assert fit_blocks(48, 48, (128, 128), False) is None  # non-rigid already off: nothing to do


def _registration_ops(res, session, plane, part):
    lay = Layout(res)
    return np.load(lay.part_file("registration", "ops", session, plane, part), allow_pickle=True).item()


@pytest.mark.workflow
def test_separate_96px_stripes_with_default_blocks(tmp_path):
    """Two 96-px mROI stripes processed apart with suite2p's default 128-px blocks: the run
    finishes, each part records the adapted blocks in ops and processing_history."""
    from planeflow.synth.scanimage_session import simulate_scanimage_session

    simulate_scanimage_session(tmp_path / "raw", nplanes=1, nframes=300, roi_widths=(96, 96),
                               height=128, fly_to_lines=6, bidiphase=0, nfiles=1, seed=5,
                               cells_per_plane=14)
    cfg = make_config(tmp_path, [{"session_id": "stripes", "data_path": str(tmp_path / "raw" / "lbm_*.tif")}],
                      suite2p={"torch_device": "cpu", "diameter": [10, 10],
                               "detection": {"sparsery_settings": {"spatial_scale": 2}}},
                      acquisition={"roi_mode": "separate", "channels_are_planes": True})
    snakemake(cfg, check=True)
    res = tmp_path / "results"
    lay = Layout(res)
    for part in (0, 1):
        ops = _registration_ops(res, "stripes", 0, part)
        assert (ops["Ly"], ops["Lx"]) == (128, 96)
        assert ops["block_size_adapted"]["from"] == [128, 128]
        assert ops["block_size_adapted"]["to"] == [64, 32]
        assert list(ops["registration"]["block_size"]) == [64, 32] and ops["registration"]["nonrigid"]
        assert np.asarray(ops["yoff1"]).shape[1] == 3 * 5  # suite2p's non-rigid blocks: 3 x 5
        entry = [h for h in ops["processing_history"] if h["step"] == "registration"][-1]
        assert entry["extra"]["block_size"] == [64, 32]
        assert entry["extra"]["block_size_adapted"]["to"] == [64, 32]
        log = open(lay.log("registration", "stripes", 0, part)).read()
        assert "using [64, 32]" in log and "Traceback" not in log
    final = np.load(lay.plane_file("stripes", 0, "ops"), allow_pickle=True).item()
    assert final["nparts"] == 2 and (final["Ly"], final["Lx"]) == (128, 192)
    assert len(np.load(lay.plane_file("stripes", 0, "stat"), allow_pickle=True)) > 0


@pytest.mark.workflow
def test_real_64px_recording_runs_end_to_end(tmp_path, shared_data):
    """The real 64 x 64 px recording (thunder_mouse) with suite2p's default settings ends
    with results or one clear planeflow error, never a traceback."""
    movie = shared_data / "real" / "thunder_mouse" / "movie.tif"
    if not movie.is_file():
        pytest.skip(f"{movie} is absent")
    cfg = make_config(tmp_path, [{"session_id": "thunder", "data_path": str(movie), "nplanes": 1,
                                  "fs": 10.0}], suite2p={"torch_device": "cpu"})
    proc = snakemake(cfg)
    res = tmp_path / "results"
    logs = {p: p.read_text() for p in (res / "thunder" / "logs").rglob("*.log")}
    assert logs, proc.stderr[-3000:]
    assert not [p for p, t in logs.items() if "Traceback" in t], proc.stderr[-3000:]
    ops = _registration_ops(res, "thunder", 0, 0)
    assert ops["block_size_adapted"]["to"] == [32, 32]
    if proc.returncode == 0:
        assert len(np.load(Layout(res).plane_file("thunder", 0, "stat"), allow_pickle=True)) > 0
    else:
        errors = [ln for t in logs.values() for ln in t.splitlines() if "[ERROR] planeflow:" in ln]
        assert len(errors) == 1, (errors, proc.stderr[-3000:])
