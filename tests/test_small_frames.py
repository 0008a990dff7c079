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


@pytest.mark.parametrize("settings, nparts, expected", [
    ({"diameter": [10, 10]}, 2, 2),                       # 12 px boxes for 10-px cells
    ({"diameter": [12, 12]}, 4, 2),                       # suite2p's default diameter
    ({"diameter": [8, 8]}, 2, 1),                         # log2(8/3) = 1.4: 6 px
    ({"diameter": [25, 20]}, 2, 3),                       # mean 22.5 px: 24 px
    ({"diameter": [400, 400]}, 2, 4),                     # within suite2p's 1..4
    ({"diameter": [10, 10]}, 1, None),                    # a whole plane: suite2p's estimate
    ({"diameter": [10, 10], "spatial_scale": 3}, 2, None),  # the user's own scale is kept
    ({"diameter": [10, 10], "algorithm": "sourcery"}, 2, None),
])
def test_stripe_spatial_scale_from_the_diameter(settings, nparts, expected):
    from planeflow.steps.detection import stripe_spatial_scale

    s = {"diameter": settings["diameter"],
         "detection": {"algorithm": settings.get("algorithm", "sparsery"),
                       "sparsery_settings": {"spatial_scale": settings.get("spatial_scale", 0)}}}
    got = stripe_spatial_scale(s, nparts)
    if expected is None:
        assert got is None
    else:
        assert got["to"] == expected and got["pixels"] == 3 * 2 ** expected and got["from"] == 0
        assert "diameter" in got["reason"] and "spatial_scale" in got["reason"]


def test_one_stripe_detects_its_planted_cells_at_the_diameter_scale(tmp_path):
    """One 128 x 96 px mROI stripe with 9 planted 10-px cells (issue 19, narrow stripes).
    suite2p's own spatial-scale estimate fails in a field this small (here 48 px: most cells
    missed); as a part of a plane processed in stripes, planeflow's detection uses the
    diameter's 12 px and finds every cell."""
    import tifffile

    from planeflow.steps.detection import OUTPUT_NAMES, detection
    from planeflow.synth.groundtruth import load_ground_truth, match_rois
    from planeflow.synth.simulate import simulate_session

    sim = simulate_session(tmp_path / "raw", nplanes=1, nframes=400, Ly=128, Lx=96, cells_per_plane=9,
                           diameter=10, fs=15.0, tau=1.0, max_shift=0, nfiles=1, seed=1, name="stripe")
    tifffile.imread(sim["files"][0]).astype(np.int16).tofile(tmp_path / "data.bin")
    labels = load_ground_truth(sim["ground_truth"])["labels"][0]
    got = {}
    for nparts in (1, 2):  # binary_write's ops say how many parts the plane has
        np.save(tmp_path / "ops.npy", {"Ly": 128, "Lx": 96, "nframes": 400, "fs": 15.0, "nparts": nparts,
                                       "yrange": [0, 128], "xrange": [0, 96]})
        out = {n: str(tmp_path / f"{n}_{nparts}.npy") for n in OUTPUT_NAMES}
        ops = detection(str(tmp_path / "ops.npy"), str(tmp_path / "data.bin"), out,
                        {"torch_device": "cpu", "diameter": [10, 10], "tau": 1.0})
        got[nparts] = ops, match_rois(np.load(out["stat"], allow_pickle=True), labels)
    alone, m_alone = got[1]
    ops, m = got[2]
    # suite2p 1.1.0 alone on the stripe (measured: 48 px, recall 0.44)
    assert "spatial_scale_set" not in alone and alone["spatscale_pix"] != 12, m_alone
    assert ops["spatial_scale_set"]["to"] == 2 and ops["spatscale_pix"] == 12
    assert ops["detection"]["sparsery_settings"]["spatial_scale"] == 2
    entry = [h for h in ops["processing_history"] if h["step"] == "detection"][-1]
    assert entry["extra"]["spatial_scale_set"]["pixels"] == 12
    assert m["recall"] >= 0.9 and m["precision"] >= 0.9, m
    assert m["recall"] > m_alone["recall"], (m, m_alone)
