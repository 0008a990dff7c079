"""The workflow on a live single-node SLURM (tests/slurm/local_cluster.sh).

Marked ``slurm``. They run whenever a cluster is up or can be started here; with
CI=true they must run, so a cluster that cannot be started is a failure, not a skip.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, dry_run_jobs, make_config, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

CLUSTER = REPO / "tests" / "slurm" / "local_cluster.sh"
STEPS = ("binary_write", "registration", "detection", "postprocess", "merge")
NPLANES, NFRAMES = 2, 300
S2P = {"torch_device": "cpu", "diameter": [10, 10], "registration": {"block_size": [64, 64]}}
# fast polling for tests; everything else comes from profiles/slurm + profiles/default
FAST = ["--profile", str(REPO / "profiles" / "slurm"), "--slurm-init-seconds-before-status-checks", "2",
        "--latency-wait", "5", "--slurm-keep-successful-logs"]
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: (.*?)\)")


@pytest.fixture(scope="module")
def cluster():
    up = subprocess.run(["bash", str(CLUSTER), "status"], capture_output=True, text=True)
    started = False
    if up.returncode != 0:
        start = subprocess.run(["bash", str(CLUSTER), "start"], capture_output=True, text=True, timeout=900)
        if start.returncode != 0:
            msg = f"local SLURM could not be started ({start.returncode}): {start.stdout[-1500:]}{start.stderr[-1500:]}"
            if os.environ.get("CI") == "true":
                pytest.fail(msg)
            pytest.skip(msg)
        started = True
    yield
    if started:
        subprocess.run(["bash", str(CLUSTER), "stop"], capture_output=True, timeout=300)


def submissions(output: str) -> list[tuple[str, list[str], int]]:
    """(rule, wildcard values, SLURM job id) of every job Snakemake submitted."""
    out = []
    for jobid, log in SUBMITTED.findall(output):
        parts = Path(log).parts
        rule = parts[-3].removeprefix("rule_").removeprefix("group_")
        out.append((rule, parts[-2].split("_"), int(jobid)))
    return out


def session(tmp: Path, name="syn", seed=5):
    from planeflow.synth.simulate import simulate_session

    simulate_session(tmp / "raw", nplanes=NPLANES, nframes=NFRAMES, Ly=128, Lx=128, cells_per_plane=15,
                     diameter=10, fs=15.0, tau=1.0, seed=seed, name=name)
    return make_config(tmp, [{"session_id": name, "data_path": str(tmp / "raw"), "nplanes": NPLANES,
                              "fs": 15.0}], suite2p=S2P)


def test_every_plane_step_is_its_own_slurm_job_and_results_equal_local(cluster, tmp_path):
    cfg = session(tmp_path / "slurm")
    proc = snakemake(cfg, *FAST, check=True)
    subs = submissions(proc.stdout + proc.stderr)
    for step in STEPS:
        planes = sorted(int(w[1]) for r, w, _ in subs if r == step)
        assert planes == list(range(NPLANES)), (step, subs)
    ids = [j for _, _, j in subs]
    assert len(ids) == len(set(ids)) == len(STEPS) * NPLANES + 2  # + volume_stats, qc
    # each job's SLURM log exists and the job ran under SLURM
    for _, _, j in subs:
        logs = list((tmp_path / "slurm" / ".snakemake" / "slurm_logs").rglob(f"{j}.log"))
        assert logs, j
    # the same session on this machine gives the same results
    local = tmp_path / "local"
    shutil.copytree(tmp_path / "slurm" / "raw", local / "raw")
    cfg_local = make_config(local, [{"session_id": "syn", "data_path": str(local / "raw"),
                                     "nplanes": NPLANES, "fs": 15.0}], suite2p=S2P)
    snakemake(cfg_local, "--cores", "2", check=True)
    for p in range(NPLANES):
        a = tmp_path / "slurm" / "results" / "syn" / "suite2p" / f"plane{p}"
        b = local / "results" / "syn" / "suite2p" / f"plane{p}"
        assert len(np.load(a / "stat.npy", allow_pickle=True)) == len(np.load(b / "stat.npy", allow_pickle=True))
        assert np.allclose(np.load(a / "F.npy"), np.load(b / "F.npy"), rtol=1e-4, atol=1e-3)
        assert np.array_equal(np.load(a / "iscell.npy")[:, 0], np.load(b / "iscell.npy")[:, 0])


def _squeue():
    out = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], capture_output=True, text=True).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


def test_cancelled_plane_is_the_only_one_rerun(cluster, tmp_path):
    cfg = session(tmp_path, seed=6)
    cmd_log = open(tmp_path / "run1.log", "w")
    run = subprocess.Popen(
        [str(Path(os.sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
         f"--configfile={cfg}", *FAST, "--retries", "0"], stdout=cmd_log, stderr=subprocess.STDOUT)
    cancelled = None
    deadline = time.time() + 600
    while time.time() < deadline and run.poll() is None and cancelled is None:
        for jobid, comment, state in _squeue():
            # comment: rule_registration_wildcards_syn_1_0
            if comment.startswith("rule_registration_wildcards_syn_1_") and state in ("PENDING", "RUNNING"):
                subprocess.run(["scancel", jobid], check=True)
                cancelled = jobid
                break
        time.sleep(0.5)
    run.wait(timeout=900)
    cmd_log.close()
    out = (tmp_path / "run1.log").read_text()
    assert cancelled, "never saw plane 1's registration job in squeue:\n" + out[-3000:]
    assert run.returncode != 0
    res = tmp_path / "results" / "syn" / "suite2p"
    assert (res / "plane0" / "stat.npy").is_file(), out[-3000:]
    assert not (res / "plane1" / "stat.npy").exists()
    # the rerun submits plane 1's jobs only
    jobs = dry_run_jobs(cfg)
    assert {w.get("plane") for r, w in jobs if "plane" in w} == {"1"}
    proc = snakemake(cfg, *FAST, check=True)
    subs = submissions(proc.stdout + proc.stderr)
    per_plane = [w[1] for r, w, _ in subs if r in STEPS]
    assert per_plane and set(per_plane) == {"1"}
    assert {r for r, _, _ in subs} - set(STEPS) <= {"volume_stats", "qc"}
    assert (res / "plane1" / "stat.npy").is_file()


def test_memory_grows_on_retry_after_a_real_oom_kill(cluster, tmp_path):
    """SLURM kills the first attempt for exceeding --mem; the retry asks for more and passes.
    The first attempt's 600 MB are below what the job holds for seconds before its work starts
    (torch and suite2p's modules, ~600 MB, plus the Snakemake process that runs it), so SLURM's
    once-a-second memory sampling cannot miss it; 900 MB was only exceeded at the job's brief peak."""
    cfg = session(tmp_path, seed=7)
    snakemake(cfg, "--cores", "2", "--until", "binary_write", check=True)
    target = tmp_path / "results" / "syn" / "registration" / "plane0" / "part0" / "ops.npy"
    proc = snakemake(cfg, target, *FAST, "--retries", "1",
                     "--set-resources=registration:mem_mb=1200*attempt-600", check=True)
    out = proc.stdout + proc.stderr
    subs = [s for s in submissions(out) if s[0] == "registration"]
    assert len(subs) == 2, out[-3000:]  # attempt 1 killed, attempt 2 succeeded
    first_log = next((tmp_path / ".snakemake" / "slurm_logs").rglob(f"{subs[0][2]}.log")).read_text()
    assert "memory" in first_log.lower(), first_log[-2000:]
    mem_lines = re.findall(r"mem_mb=(\d+)", out)
    assert "600" in mem_lines and "1800" in mem_lines, mem_lines
    assert target.is_file()
