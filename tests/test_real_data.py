"""planeflow end to end on the small real recordings of ../shared/data/real (README there),
each as a one-plane session: the run completes, QC gives a verdict per session, and the
plane equals a direct suite2p.run_s2p on the same data and settings.

One Snakemake run holds all three sessions. suite2p's non-rigid registration is off for
all of them (thunder_mouse's 64 x 64 px frames are smaller than one non-rigid block).
"""
from __future__ import annotations

import json

import pytest

from conftest import SHARED, assert_plane_parity, make_config, run_s2p_direct, snakemake

pytestmark = pytest.mark.workflow

S2P = {"torch_device": "cpu", "tau": 1.0, "registration": {"nonrigid": False}}
#: session -> (file or folder under real/, fs, diameter, extra run_s2p db keys)
SESSIONS = {
    "neurofinder_crop": ("neurofinder_crop/movie.tif", 7.0, 12, {}),
    "thunder_mouse": ("thunder_mouse/movie.tif", 10.0, 4, {}),
    "allen_ophys": ("allen_ophys/movie_100x100x100.h5", 30.0, 10, {"input_format": "h5", "h5py_key": "data"}),
}


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    real = SHARED / "data" / "real"  # the module-scoped form of the shared_data fixture's check
    if not real.is_dir():
        pytest.skip("../shared/data/real is absent (only the project's own machines have it)")
    tmp = tmp_path_factory.mktemp("real")
    rows = [{"session_id": sid, "data_path": str(real / path), "nplanes": 1, "fs": fs, "diameter": d}
            for sid, (path, fs, d, _) in SESSIONS.items()]
    cfg = make_config(tmp, rows, suite2p=S2P)
    proc = snakemake(cfg)
    return {"tmp": tmp, "real": real, "proc": proc, "res": tmp / "results"}


def test_completes_without_traceback(real_run):
    proc = real_run["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    for sid in SESSIONS:
        for log in (real_run["res"] / sid / "logs").rglob("*.log"):
            assert "Traceback" not in log.read_text(), log


@pytest.mark.parametrize("sid", list(SESSIONS))
def test_qc_verdict(real_run, sid):
    qc = json.loads((real_run["res"] / sid / "qc" / "qc.json").read_text())
    (plane,) = qc["planes"]
    print(f"\n{sid}: {plane['verdict']} {plane['reasons']} n_accepted={plane['n_accepted']} "
          f"snr={plane['snr']:.2f} brightness={plane['mean_brightness']:.1f} max_shift={plane['max_shift_px']} "
          f"at_limit={plane['at_limit_fraction']} duplicates={plane['duplicate_fraction']} "
          f"ghosts={plane['ghost_fraction']} crosstalk_in={plane['crosstalk_in']}")
    assert plane["failure"] is None
    assert plane["saturated_fraction"] < 0.001
    assert plane["at_limit_fraction"] == 0.0
    if sid == "allen_ophys":
        # 100 frames at 30 Hz of a 100 x 100 px crop: per-frame SNR 0.22, between snr_fail (0.2)
        # and snr_warn (0.5). suite2p registers it but 5 of the 100 frames jump 3-8 px (phase
        # correlation peaks at half the median: noise), and it finds no cell. QC warns for both
        # reasons, without failing the plane (docs/qc.md)
        assert plane["verdict"] == "warn" and plane["n_rois"] == 0
        assert any("no ROIs" in r for r in plane["reasons"])
        assert any("image SNR" in r for r in plane["reasons"]) and 0.2 < plane["snr"] < 0.5
        assert plane["duplicate_fraction"] is None and plane["ghost_fraction"] is None  # no accepted ROI
    else:
        # neurofinder_crop (7 Hz, 192 x 256 px): SNR 0.68, shifts within 1 px; thunder_mouse
        # (spatially downsampled, so less noise per pixel): SNR 5.9, no motion
        assert plane["verdict"] == "ok" and plane["reasons"] == [], plane["reasons"]
        assert plane["n_accepted"] >= 10 and plane["snr"] > 0.5 and plane["max_shift_px"] <= 2
        # one plane: every ROI is its own cell (rule volume_stats), no duplicate, no ghost
        assert plane["duplicate_fraction"] == 0.0 and plane["ghost_fraction"] == 0.0
    assert plane["crosstalk_in"] is None  # one plane: crosstalk is not estimated
    assert plane["consensus_corr"] is None  # one plane: nothing to compare with


@pytest.mark.parametrize("sid", list(SESSIONS))
def test_parity_with_run_s2p(real_run, sid, tmp_path):
    """The same data through suite2p.run_s2p. suite2p 1.1.0's TIFF reader misreads these
    zlib-compressed TIFFs (values wrap to +-32767; planeflow reads them right), so run_s2p
    gets an uncompressed copy of the same frames, same dtype. On allen_ophys (100 frames)
    both find no ROI, where run_s2p stops with an error after registration: the registration
    is compared there."""
    import numpy as np
    import tifffile

    path, fs, d, db = SESSIONS[sid]
    src = real_run["real"] / path
    if src.suffix == ".tif":
        (tmp_path / "raw").mkdir()
        tifffile.imwrite(tmp_path / "raw" / src.name, tifffile.imread(src), photometric="minisblack", metadata=None)
        data = tmp_path / "raw"
    else:
        data = src.parent
    ours = real_run["res"] / sid / "suite2p" / "plane0"
    settings = {**S2P, "fs": fs, "diameter": [d, d]}
    if sid == "allen_ophys":
        with pytest.raises(ValueError, match="no ROIs were found"):
            run_s2p_direct(data, 1, settings, tmp_path / "s2p", **db)
        ref = np.load(tmp_path / "s2p" / "suite2p" / "plane0" / "reg_outputs.npy", allow_pickle=True).item()
        ops = np.load(ours / "ops.npy", allow_pickle=True).item()
        assert np.array_equal(ops["yoff"], ref["yoff"]) and np.array_equal(ops["xoff"], ref["xoff"])
        assert len(np.load(ours / "stat.npy", allow_pickle=True)) == 0
        return
    ref = run_s2p_direct(data, 1, settings, tmp_path / "s2p", **db)
    assert_plane_parity(ours, ref / "plane0")
