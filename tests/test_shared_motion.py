"""Shared rigid motion, per-plane QC and failed planes, end to end on one simulated session.

Five simultaneous planes (one motion trace) of 96 x 96 px x 400 frames: three bright
(about 9 photons per pixel per frame), plane 2 dim (about 0.24: suite2p alone registers it
wrongly) and plane 4 dimmer (about 0.11: suite2p marks every frame bad and its detection
cannot run). The same raw files run twice, with registration.shared_motion off and on.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SMALL_S2P, dry_run_jobs, make_config, snakemake

pytestmark = pytest.mark.workflow

NPLANES, NFRAMES, LY = 5, 400, 96
BRIGHTNESS = [1.0, 1.0, 0.025, 1.0, 0.012]
DIM, DIMMER, BRIGHT = 2, 4, (0, 1, 3)
S2P = {**SMALL_S2P, "registration": {"block_size": [48, 48]}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from planeflow.synth.simulate import simulate_session

    tmp = tmp_path_factory.mktemp("shared")
    sim = simulate_session(tmp / "raw", nplanes=NPLANES, nframes=NFRAMES, Ly=LY, Lx=LY, cells_per_plane=12,
                           diameter=10, fs=15.0, tau=1.0, max_shift=4, seed=5, name="sm",
                           brightness=BRIGHTNESS)
    row = [{"session_id": "sm", "data_path": str(tmp / "raw"), "nplanes": NPLANES, "fs": 15.0}]
    out = {"sim": sim, "tmp": tmp}
    out["jobs_auto"] = dry_run_jobs(make_config(tmp / "auto", row, suite2p=S2P))
    for mode in ("off", "on"):
        cfg = make_config(tmp / mode, row, suite2p=S2P, registration={"shared_motion": mode})
        out[f"jobs_{mode}"] = dry_run_jobs(cfg)
        snakemake(cfg, check=True)
        out[mode] = tmp / mode / "results" / "sm"
        out[f"cfg_{mode}"] = cfg
    return out


def plane(res, p, name="ops"):
    f = res / "suite2p" / f"plane{p}" / f"{name}.npy"
    return np.load(f, allow_pickle=True).item() if name == "ops" else np.load(f, allow_pickle=True)


def test_static_dag_and_off_is_todays(runs):
    count = lambda jobs, rule: sum(r == rule for r, _ in jobs)  # noqa: E731
    assert count(runs["jobs_on"], "rigid_shifts") == NPLANES
    assert count(runs["jobs_on"], "shared_motion") == 1
    assert count(runs["jobs_on"], "registration") == NPLANES
    for mode in ("off", "auto"):  # auto: plain TIFFs carry no timing, so shared motion stays off
        rules = {r for r, _ in runs[f"jobs_{mode}"]}
        assert not rules & {"rigid_shifts", "shared_motion"}, mode
        assert rules == {"binary_write", "registration", "detection", "postprocess", "merge",
                         "volume_stats", "qc", "all"}


def test_dim_plane_registered_with_the_shared_motion(runs):
    from planeflow.synth.groundtruth import load_ground_truth, match_rois, reference_offset, registration_error

    gt = load_ground_truth(runs["sim"]["ground_truth"])
    print(f"\nmean photons per pixel per frame: {np.round(gt['mean_photons'], 2).tolist()}")
    err, recall = {}, {}
    for mode in ("off", "on"):
        ops = plane(runs[mode], DIM)
        err[mode] = registration_error(ops["yoff"], ops["xoff"], gt["shifts"])
        off = reference_offset(ops["yoff"], ops["xoff"], gt["shifts"])
        recall[mode] = match_rois(plane(runs[mode], DIM, "stat"), gt["labels"][DIM], offset=off)["recall"]
        print(f"dim plane {DIM}, shared motion {mode}: shift error {err[mode]:.2f} px, "
              f"detection recall {recall[mode]:.2f}")
    assert err["off"] > 2.0
    assert err["on"] <= 0.5
    assert recall["on"] >= recall["off"]


def test_bright_planes_unchanged(runs):
    from planeflow.synth.groundtruth import load_ground_truth, registration_error

    gt = load_ground_truth(runs["sim"]["ground_truth"])
    for p in BRIGHT:
        on, off = plane(runs["on"], p), plane(runs["off"], p)
        assert registration_error(off["yoff"], off["xoff"], gt["shifts"]) < 0.5
        # the same shifts up to a constant (each plane keeps its own reference position)
        diff = registration_error(on["yoff"], on["xoff"], np.stack([off["yoff"], off["xoff"]], axis=1))
        assert diff <= 0.1, (p, diff)
        assert on["shared_motion"]["agrees"]


def test_failed_plane_is_empty_with_its_reason(runs):
    res = runs["off"]
    ops = plane(res, DIMMER)
    assert ops["plane_failure"]["step"] == "detection"
    assert "too dim" in ops["plane_failure"]["reason"]
    assert len(plane(res, DIMMER, "stat")) == 0
    assert plane(res, DIMMER, "F").shape == (0, NFRAMES)
    hist = ops["processing_history"]
    assert [h["extra"].get("failure") for h in hist if h["step"] == "detection"] == [ops["plane_failure"]["reason"]]
    log = (res / "logs" / "detection" / f"plane{DIMMER}_part0.log").read_text()
    assert "Traceback" not in log
    # the session's per-session steps ran
    summary = json.loads((res / "volume_stats" / "volume.json").read_text())
    assert summary["n_rois_per_plane"][DIMMER] == 0


def test_qc_verdicts(runs):
    for mode in ("off", "on"):
        qc = json.loads((runs[mode] / "qc" / "qc.json").read_text())
        verdict = {p["plane"]: p for p in qc["planes"]}
        print(f"\nQC shared motion {mode}: " + ", ".join(f"plane {p}: {v['verdict']}" for p, v in verdict.items()))
        for p in BRIGHT:
            assert verdict[p]["verdict"] != "fail", (mode, verdict[p])
        assert verdict[DIMMER]["verdict"] == "fail"
        assert verdict[DIM]["verdict"] == "fail"  # too dim to trust, whatever the registration
        assert any("SNR" in r for r in verdict[DIM]["reasons"])
        assert qc["shared_motion"] == (mode == "on")
        rows = (runs[mode] / "qc" / "qc.tsv").read_text().splitlines()
        assert len(rows) == NPLANES + 1 and rows[0].startswith("plane\tverdict\treasons")
        for fig in ("shifts.png", "qc_table.png"):
            assert (runs[mode] / "qc" / fig).read_bytes()[:4] == b"\x89PNG"
    on = {p["plane"]: p for p in json.loads((runs["on"] / "qc" / "qc.json").read_text())["planes"]}
    # the failed plane's own rigid pass does not follow the others
    assert on[DIMMER]["consensus_corr"] < 0.3
    assert all(on[p]["consensus_corr"] > 0.9 for p in BRIGHT)
    # with shared motion the plane's own rigid pass was replaced: QC judges the applied motion
    assert any("registration limit" in r or "rigid shifts correlate" in r for r in off_reasons(runs, DIMMER))
    assert not any("registration limit" in r or "rigid shifts correlate" in r for r in on[DIMMER]["reasons"])
    assert on[DIM]["residual_shift_px"] is not None


def off_reasons(runs, p):
    return {q["plane"]: q for q in json.loads((runs["off"] / "qc" / "qc.json").read_text())["planes"]}[p]["reasons"]


def test_qc_fail_on_stops_with_the_planes_named(runs, tmp_path):
    res = runs["off"]
    import yaml

    cfg = yaml.safe_load(runs["cfg_off"].read_text())
    cfg["qc"] = {"fail_on": "fail"}
    full = tmp_path / "fail_on.yaml"  # the last --configfile wins: a complete config
    full.write_text(yaml.safe_dump(cfg))
    proc = snakemake(runs["cfg_off"], f"--configfile={full}", workdir=runs["cfg_off"].parent)
    assert proc.returncode != 0
    log = (res / "logs" / "qc" / "session.log").read_text()
    assert "QC verdict fail for plane(s) [2, 4]" in log and "Traceback" not in log
    assert not (res / "qc" / "qc.json").exists()  # nothing half-written
    snakemake(runs["cfg_off"], check=True)  # back to the normal config: qc reruns and passes
    assert (res / "qc" / "qc.json").exists()


def test_auto_is_on_for_lbm_and_off_when_asked(tmp_path):
    """auto: on for an LBM recording (ScanImage channels as planes), from the cached metadata."""
    from planeflow.synth.scanimage_session import simulate_scanimage_session

    simulate_scanimage_session(tmp_path / "raw", nplanes=3, nframes=60, roi_widths=(32, 32), height=32,
                               nfiles=1, cells_per_plane=2, seed=1, name="lbm")
    row = [{"session_id": "lbm", "data_path": str(tmp_path / "raw"), "nplanes": None, "fs": None}]
    for mode, expect in (("auto", 3), ("off", 0), ("on", 3)):
        cfg = make_config(tmp_path / mode, row, suite2p=S2P, registration={"shared_motion": mode})
        jobs = dry_run_jobs(cfg)
        assert sum(r == "rigid_shifts" for r, _ in jobs) == expect, mode
        assert sum(r == "shared_motion" for r, _ in jobs) == (expect > 0), mode


def test_a_nonrigid_pass_locked_at_its_limit_is_recognised():
    from planeflow.steps.registration import locked_at_limit

    rng = np.random.default_rng(0)
    follows = rng.normal(0, 0.3, (50, 16))                  # block shifts of a plane with structure
    assert not locked_at_limit(follows, -follows, 5)
    locked = np.full((50, 16), 8.0)                         # every block at the limit (+ subpixel step)
    assert locked_at_limit(locked, locked, 5)
    assert locked_at_limit(follows, np.where(np.arange(16) < 12, -5.0, 0.0) + 0 * follows, 5)
    assert not locked_at_limit(np.zeros((0, 16)), np.zeros((0, 16)), 5)
