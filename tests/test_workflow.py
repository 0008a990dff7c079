"""End-to-end: the Snakemake workflow on a synthetic session with planted ground truth.

One module-scoped run serves all tests. It also exercises the single-plane rerun:
binary_write runs first, plane 1's binary is then corrupted, the full run (with
--keep-going from the workflow profile) must finish every other plane, and after the
repair a dry run must schedule only plane 1's jobs.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_plane_parity, dry_run_jobs, make_config, run_s2p_direct, snakemake

pytestmark = pytest.mark.workflow

NPLANES, NFRAMES, LY, LX, DIAM, FS, TAU = 3, 600, 128, 128, 10, 15.0, 1.0
S2P = {"torch_device": "cpu", "diameter": [DIAM, DIAM], "tau": TAU,
       # 128-px frames need smaller non-rigid blocks than suite2p's default 128 px
       "registration": {"block_size": [64, 64]},
       # with ~20 cells in 128x128 px, sparsery's automatic cell-size estimate can lock on
       # a flat corner and pick 48 px; fix it at 12 px (measured over 30 synthetic planes)
       "detection": {"sparsery_settings": {"spatial_scale": 2}}}
STEPS = ("binary_write", "registration", "detection", "postprocess", "merge")
FINAL = ("ops", "stat", "iscell", "F", "Fneu", "spks", "dff",
         "db", "settings", "reg_outputs", "detect_outputs")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from planeflow.synth.simulate import simulate_session

    tmp = tmp_path_factory.mktemp("wf")
    sim = simulate_session(tmp / "raw", nplanes=NPLANES, nframes=NFRAMES, Ly=LY, Lx=LX,
                           diameter=DIAM, fs=FS, tau=TAU, nfiles=2, seed=3, name="syn")
    cfg = make_config(tmp, [{"session_id": "syn", "data_path": str(tmp / "raw"), "nplanes": NPLANES,
                             "fs": FS, "dx": 1.5, "dy": 1.5, "dz": 15.0}], suite2p=S2P)
    res = tmp / "results" / "syn"
    out = {"tmp": tmp, "cfg": cfg, "res": res, "sim": sim}
    # a fresh session: the dry run already lists every per-plane job
    out["fresh_jobs"] = dry_run_jobs(cfg)
    out["one_plane_jobs"] = dry_run_jobs(cfg, res / "suite2p" / "plane2")
    snakemake(cfg, "--until", "binary_write", check=True)
    bad = res / "binary_write" / "plane1" / "part0" / "data_raw.bin"
    with open(bad, "r+b") as fh:
        fh.truncate(bad.stat().st_size // 2)
    out["failed"] = snakemake(cfg)
    out["after_failure"] = {p: (res / "suite2p" / f"plane{p}" / "stat.npy").exists() for p in range(NPLANES)}
    out["reg_log"] = (res / "logs" / "registration" / "plane1_part0.log").read_text()
    out["status"], out["status_text"], out["status_rerun_jobs"] = status_after_failure(cfg, tmp)
    bad.unlink()  # the repair: remove the damaged file
    out["rerun_jobs"] = dry_run_jobs(cfg)
    out["final"] = snakemake(cfg, check=True)
    return out


def status_after_failure(cfg, tmp):
    """`planeflow status` on the failed run, and a dry run of the rerun command it prints."""
    import contextlib
    import io
    import shlex

    from planeflow.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(["status", str(tmp / "results"), "--json", "-d", str(tmp)])
    status = json.loads(buf.getvalue())
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main(["status", str(tmp / "results"), "-d", str(tmp)])
    jobs = None
    if len(status["problems"]) == 1:
        cmd = shlex.split(status["problems"][0]["rerun"]["local"])
        assert cmd[0] == "snakemake"
        jobs = dry_run_jobs(cfg, *cmd[1:])
    return status, buf.getvalue(), jobs


def test_status_shows_exactly_the_failed_plane(run):
    st = run["status"]
    (prob,) = st["problems"]
    assert (prob["state"], prob["session"], prob["plane"], prob["step"]) == ("failed", "syn", 1, "registration")
    assert prob["log"].endswith("syn/logs/registration/plane1_part0.log")
    assert "truncated or corrupt" in prob["error"] and "\n" not in prob["error"]
    planes = st["sessions"][0]["planes"]
    assert planes["0"] == planes["2"] == dict.fromkeys(STEPS, "done")
    assert planes["1"] == {"binary_write": "done", "registration": "failed", "detection": "pending",
                           "postprocess": "pending", "merge": "pending"}
    assert st["sessions"][0]["session_steps"] == {"volume_stats": "pending", "qc": "pending"}
    assert st["locks"] == []  # the failed run let go of its lock
    text = run["status_text"]
    assert "FAILED: syn plane 1, step registration" in text
    assert f"snakemake {run['res']}/suite2p/plane1" in text
    assert f"snakemake --profile slurm {run['res']}/suite2p/plane1" in text


def test_status_rerun_command_reruns_only_that_plane(run):
    jobs = run["status_rerun_jobs"]
    assert jobs and {w["plane"] for _, w in jobs if "plane" in w} == {"1"}
    assert {r for r, _ in jobs} == {"registration", "detection", "postprocess", "merge"}


def test_fresh_dry_run_lists_every_plane_and_step(run):
    jobs = run["fresh_jobs"]
    for step in STEPS:
        planes = sorted(int(w["plane"]) for r, w in jobs if r == step)
        assert planes == list(range(NPLANES)), (step, planes)
    assert [r for r, _ in jobs].count("volume_stats") == 1


def test_jobs_request_the_memory_of_planeflow_plan_resources(run):
    """What a job asks for (here registration's mem_mb) is resources.estimate's: the step's own
    estimate plus the Snakemake process that runs it on its node (RUNNER_MB)."""
    import re

    from planeflow.plan import resources

    proc = snakemake(run["cfg"], "-n", "--forcerun", "registration", "--until", "registration",
                     workdir=run["tmp"], check=True)
    # the removed raw binaries (cleanup.raw_binary) bring binary_write along: registration's own jobs
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout + proc.stderr)
    asked = {int(m) for b in blocks if b.startswith("rule registration:")
             for m in re.findall(r"mem_mb=(\d+)", b)}
    meta = json.loads((run["res"] / "metadata.json").read_text())
    own = resources.mem_mb("registration", meta, {}, part=0)
    assert asked == {resources.estimate("registration", meta, {}, 1, part=0)["mem_mb"]}
    assert asked == {int(own + resources.RUNNER_MB)}


def test_single_plane_target(run):
    jobs = run["one_plane_jobs"]
    assert {r for r, _ in jobs} == set(STEPS)
    assert {w["plane"] for _, w in jobs} == {"2"}


def test_failed_plane_does_not_stop_the_others(run):
    assert run["failed"].returncode != 0
    assert run["after_failure"] == {0: True, 1: False, 2: True}
    assert "truncated or corrupt" in run["reg_log"]
    assert "Traceback" not in run["reg_log"], "bad input must give one clear error, not a traceback"


def test_rerun_schedules_only_the_repaired_plane(run):
    jobs = run["rerun_jobs"]
    per_plane = [(r, w["plane"]) for r, w in jobs if "plane" in w]
    assert per_plane and {p for _, p in per_plane} == {"1"}
    assert {r for r, _ in per_plane} == set(STEPS)
    assert {r for r, w in jobs if "plane" not in w} <= {"volume_stats", "qc", "all"}


def test_final_layout_logs_and_benchmarks(run):
    res = run["res"]
    for p in range(NPLANES):
        for name in FINAL:
            assert (res / "suite2p" / f"plane{p}" / f"{name}.npy").is_file(), (p, name)
        for step in ("binary_write", "registration", "detection", "postprocess"):
            assert (res / "logs" / step / f"plane{p}_part0.log").stat().st_size > 0
            assert (res / "benchmarks" / step / f"plane{p}_part0.tsv").is_file()
        for fig in ("mean_rois", "registration_shifts", "traces"):
            png = res / "postprocess" / f"plane{p}" / "part0" / "figures" / f"{fig}.png"
            assert png.read_bytes()[:4] == b"\x89PNG"
    # the large binaries exist once, outside the final folders; the raw copies are removed once
    # registration has read them (cleanup.raw_binary), their ops stay
    assert not list((res / "suite2p").rglob("*.bin"))
    assert not list((res / "binary_write").rglob("*.bin"))
    assert len(list((res / "binary_write").rglob("ops.npy"))) == NPLANES
    assert len(list((res / "registration").rglob("data.bin"))) == NPLANES
    ops = np.load(res / "suite2p" / "plane0" / "ops.npy", allow_pickle=True).item()
    assert ops["reg_file"].endswith("registration/plane0/part0/data.bin")


def load_plane(res, p):
    d = res / "suite2p" / f"plane{p}"
    return {k: np.load(d / f"{k}.npy", allow_pickle=True) for k in ("stat", "iscell", "F", "spks", "dff")} | {
        "ops": np.load(d / "ops.npy", allow_pickle=True).item()}


def test_detection_matches_planted_cells(run):
    from planeflow.synth.groundtruth import load_ground_truth, match_rois

    gt = load_ground_truth(run["sim"]["ground_truth"])
    for p in range(NPLANES):
        plane = load_plane(run["res"], p)
        m = match_rois(plane["stat"], gt["labels"][p])
        assert m["recall"] >= 0.9, (p, m)
        assert m["precision"] >= 0.9, (p, m)


def test_registration_recovers_planted_motion(run):
    from planeflow.synth.groundtruth import load_ground_truth, registration_error

    gt = load_ground_truth(run["sim"]["ground_truth"])
    for p in range(NPLANES):
        ops = load_plane(run["res"], p)["ops"]
        assert registration_error(ops["yoff"], ops["xoff"], gt["shifts"]) < 0.5


def test_traces_and_processing_history(run):
    for p in range(NPLANES):
        d = load_plane(run["res"], p)
        n = len(d["stat"])
        assert d["F"].shape == d["dff"].shape == d["spks"].shape == (n, NFRAMES)
        assert d["iscell"].shape == (n, 2)
        assert np.isfinite(d["dff"]).all()
        hist = d["ops"]["processing_history"]
        assert [h["step"] for h in hist] == list(STEPS)
        for h in hist:
            assert {"timestamp", "planeflow_version", "suite2p_version", "inputs", "duration", "extra"} <= set(h)
            assert h["suite2p_version"] == "1.1.0"
        assert d["ops"]["iplane"] == p and d["ops"]["fs"] == FS and d["ops"]["dx"] == 1.5


def test_suite2p_reads_the_results(run):
    from suite2p.io import combined

    stat, db, settings, F, *_ = combined(str(run["res"] / "suite2p"), save=False)
    n = sum(len(load_plane(run["res"], p)["stat"]) for p in range(NPLANES))
    assert len(stat) == n and F.shape == (n, NFRAMES)
    assert settings["diameter"][0] == DIAM


def test_volume_stats(run):
    import zarr

    vs = run["res"] / "volume_stats"
    summary = json.loads((vs / "volume.json").read_text())
    counts = [len(load_plane(run["res"], p)["stat"]) for p in range(NPLANES)]
    assert summary["n_rois_per_plane"] == counts
    assert summary["voxel_size"] == [1.5, 1.5, 15.0]
    assert summary["volume_shape"] == [NPLANES, LY, LX]
    root = zarr.open_group(str(vs / "volume.zarr"), mode="r")
    assert root["0"].shape == (NPLANES, LY, LX)
    labels = root["labels/cells/0"][:]
    cells = (vs / "cells.tsv").read_text().strip().splitlines()[1:]
    assert set(np.unique(labels)) - {0} <= {int(c.split("\t")[0]) for c in cells}
    assert root.attrs["planeflow"]["voxel_size"] == [1.5, 1.5, 15.0]
    scale = root.attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [15.0, 1.5, 1.5]
    rows = (vs / "planes.tsv").read_text().strip().splitlines()
    assert len(rows) == NPLANES + 1 and rows[0].startswith("plane\tn_rois")


def test_parity_with_suite2p_run_s2p(run, tmp_path):
    """The per-plane DAG gives what suite2p's own pipeline gives on the same data."""
    ref = run_s2p_direct(run["tmp"] / "raw", NPLANES, {**S2P, "fs": FS}, tmp_path)
    for p in range(NPLANES):
        assert_plane_parity(run["res"] / "suite2p" / f"plane{p}", ref / f"plane{p}")


@pytest.mark.parametrize("registration, says", [
    ({"nonrigd": False}, "nonrigd"),
    # fails inside suite2p 1.1.0's rigid registration (a numpy array into torch.argmax)
    ({"smooth_sigma_time": 1.0}, "suite2p.registration.smooth_sigma_time = 1.0 does not work"),
])
def test_bad_config_stops_before_any_job(run, tmp_path, registration, says):
    cfg = make_config(tmp_path, [{"session_id": "syn", "data_path": str(run["tmp"] / "raw"),
                                  "nplanes": NPLANES, "fs": FS}],
                      suite2p={"registration": registration})
    proc = snakemake(cfg, "-n")
    assert proc.returncode == 1
    err = proc.stderr
    assert "planeflow: error:" in err and says in err
    assert not (tmp_path / "results").exists()


def _with(cfg_path, tmp_path, **changes):
    import yaml

    cfg = yaml.safe_load(cfg_path.read_text())
    for dotted, value in changes.items():
        node = cfg
        *head, last = dotted.split("__")
        for k in head:
            node = node.setdefault(k, {})
        node[last] = value
    out = tmp_path / "changed.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def test_changing_a_setting_reruns_only_what_depends_on_it(run, tmp_path):
    assert [r for r, _ in dry_run_jobs(run["cfg"], workdir=run["tmp"])] == []  # all up to date
    det = _with(run["cfg"], tmp_path, suite2p__detection__threshold_scaling=1.3)
    rules = [r for r, _ in dry_run_jobs(det, workdir=run["tmp"])]
    assert sorted(set(rules)) == ["all", "detection", "merge", "postprocess", "qc", "volume_stats"]
    assert rules.count("detection") == NPLANES
    # a registration setting: the removed raw binaries are written again first
    reg = _with(run["cfg"], tmp_path, suite2p__registration__maxregshift=0.2)
    rules = [r for r, _ in dry_run_jobs(reg, workdir=run["tmp"])]
    assert rules.count("binary_write") == rules.count("registration") == NPLANES
    post = _with(run["cfg"], tmp_path, postprocess__dff__percentile=10)
    rules = [r for r, _ in dry_run_jobs(post, workdir=run["tmp"])]
    assert sorted(set(rules)) == ["all", "merge", "postprocess", "qc", "volume_stats"]
    # tau in the sessions sheet reaches detection as a parameter: the cached session metadata
    # stays valid, so binary_write and registration are not rerun
    import csv

    import yaml

    sheet = yaml.safe_load(run["cfg"].read_text())["sessions"]
    with open(sheet) as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    rows[0]["tau"] = "1.7"
    edited = tmp_path / "sessions_tau.tsv"
    with open(edited, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
        w.writeheader()
        w.writerows(rows)
    meta_before = (run["res"] / "metadata.json").read_bytes()
    rules = [r for r, _ in dry_run_jobs(_with(run["cfg"], tmp_path, sessions=str(edited)), workdir=run["tmp"])]
    assert sorted(set(rules)) == ["all", "detection", "merge", "postprocess", "qc", "volume_stats"]
    assert (run["res"] / "metadata.json").read_bytes() == meta_before
    # the device is an execution choice, not a result: switching it reruns nothing
    dev = _with(run["cfg"], tmp_path, suite2p__torch_device="cuda")
    assert [r for r, _ in dry_run_jobs(dev, workdir=run["tmp"])] == []
