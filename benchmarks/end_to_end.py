"""End to end: planeflow (local workflow profile) against suite2p.run_s2p on one session.

Both run on the same synthetic session, with the same suite2p settings, pinned to the
same CPU cores, each in a fresh process (so both pay their imports), one after the
other in this run, in ``--rounds`` rounds (default 3) of planeflow, run_s2p, run_s2p,
planeflow (benchmarks/_timing.py), reporting medians and spreads, and whether the machine
was quiet enough to trust them. Three rounds are 6 runs of each side: about 40 minutes on
the default session on 2 cores, 20 with ``--short``. Prints both wall
times and their ratio against the target (<= 0.85 on the default 4 x 256 x 256 x 2000
session, <= 1.10 on the ``--short`` 4 x 192 x 192 x 800 one), where planeflow's time went
(sum of each step's job times from Snakemake's benchmark files, and the jobs' fixed cost
from their logs), and checks that both found the same cells.

    python benchmarks/end_to_end.py [--short] [--rounds 3] [--planes 4] [--frames 2000] [--size 256] [--cores all]
                                    [--shared-motion off|on] [--quick]

With ``--shared-motion on`` planeflow registers the (simulated, simultaneous) planes with
one consensus rigid motion; its extra cost, the rigid pass and the consensus, is printed
as the job time of rules rigid_shifts and shared_motion.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing  # noqa: E402
TARGET = 0.85        # 4 planes x 256 x 256 px x 2000 frames (issues 15, 22)
TARGET_SHORT = 1.10  # 4 planes x 192 x 192 px x 800 frames (--short; issue 22)
STEPS = ("binary_write", "rigid_shifts", "shared_motion", "registration", "detection", "postprocess",
         "merge", "volume_stats", "qc")

RUN_S2P = """
import json, sys, time
t0 = time.perf_counter()
import suite2p
t_import = time.perf_counter() - t0
sys.path.insert(0, sys.argv[3])
from planeflow.plan.config import suite2p_settings  # the same merge of overrides planeflow's jobs use
settings = suite2p_settings(json.loads(sys.argv[1]))
suite2p.run_s2p(db=json.loads(sys.argv[2]), settings=settings)
print("IMPORT_S", t_import)
"""


def _pin(cores):
    return lambda: os.sched_setaffinity(0, cores)


def _timed(cmd, cores, env=None, log=None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, preexec_fn=_pin(cores), capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    dt = time.perf_counter() - t0
    if log:
        Path(log).write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stderr[-4000:]}")
    return dt


def _step_seconds(bench_dir: Path) -> dict:
    """Sum of Snakemake's measured job times per step (s)."""
    out = {}
    for step in STEPS:
        total = 0.0
        for f in (bench_dir / step).glob("*.tsv"):
            with open(f) as fh:
                row = next(csv.DictReader(fh, delimiter="\t"))
            total += float(row["s"])
        out[step] = total
    return out


def _fixed_seconds(log_dir: Path) -> dict:
    """Sum over jobs of the time from process start to the job's first line of work
    (the 'work starts X s and Y MB after process start' line of each job log)."""
    out = {}
    for step in STEPS:
        total = 0.0
        for f in (log_dir / step).glob("*.log"):
            m = re.search(r"work starts ([\d.]+) s and \d+ MB after process start", f.read_text())
            total += float(m.group(1)) if m else 0.0
        out[step] = total
    return out


def _volume_seconds(log_dir: Path) -> float:
    """Seconds of volume_stats' volume half (plane offsets, crosstalk, one ID per cell), from the
    'volume: ... in X s' line of its log: the per-session work issue 11 added."""
    total = 0.0
    for f in (log_dir / "volume_stats").glob("*.log"):
        m = re.search(r"volume: \d+ planes, .* in ([\d.]+) s", f.read_text())
        total += float(m.group(1)) if m else 0.0
    return total


def breakdown(jobs: list[dict], wall: float, cores: int) -> list[str]:
    """Where one planeflow run's wall time went (issue 22, item 5), from its jobs' benchmark
    files and logs (``_timing.workflow_jobs``): Snakemake before the first job and after the last,
    the cores' idle time while jobs ran (the per-session steps wait for every plane), and each
    step's job time split into start (process start to the first line of work: Python, imports),
    work, and exit (its last line to the end of the process)."""
    done = [j for j in jobs if j["s"] is not None and j["start"] is not None]
    if not done:
        return []
    first, last = min(j["start"] for j in done), max(j["end"] for j in done)
    phase = last - first
    busy = sum(j["s"] for j in done)
    per_plane_end = max((j["end"] for j in done if j["plane"] is not None), default=last)
    lines = [f"where planeflow's {wall:.1f} s went (its last run; core-seconds / {cores} cores = wall seconds):",
             f"  Snakemake before the first job and after the last: {wall - phase:.1f} s (start, parse, DAG; "
             "finish, exit)",
             f"  jobs running: {phase:.1f} s = {phase * cores:.1f} core-s: job time {busy:.1f}, idle cores "
             f"{phase * cores - busy:.1f} (of which the per-session steps after the last plane job: "
             f"{last - per_plane_end:.1f} s with {cores - 1} of {cores} cores idle)"]
    for step in STEPS:
        js = [j for j in done if j["step"] == step]
        if not js:
            continue
        start = sum(j["fixed_s"] or 0 for j in js)
        end = sum(j["exit_s"] or 0 for j in js)
        tot = sum(j["s"] for j in js)
        lines.append(f"  {step:13s} {len(js)} job{'s' * (len(js) != 1)}: {tot:6.1f} core-s = start {start:5.1f} "
                     f"+ work {tot - start - end:6.1f} + exit {end:4.1f}")
    return lines


def _slurm_tools_shadow(out: Path) -> dict:
    """SLURM's client tools hidden from planeflow's run when they are installed but no
    controller answers (``_timing.slurm_tools_hidden``: the SLURM executor plugin's
    ``scontrol show config`` would wait ~9 s in every Snakemake call; a laptop without SLURM
    and a cluster whose controller answers do not pay it)."""
    env = _timing.slurm_tools_hidden(out)
    if env is None:
        return {}
    shadow = env["PATH"].split(os.pathsep)[0]
    print(f"SLURM tools installed but no controller answers: hidden from planeflow's run ({shadow})")
    return {"PATH_PREFIX": shadow}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true",
                    help="the short session: 4 planes x 192 x 192 px x 800 frames (target <= 1.10)")
    _timing.add_arguments(ap)
    ap.add_argument("--planes", type=int, default=4)
    ap.add_argument("--frames", type=int, default=None, help="default 2000 (800 with --short)")
    ap.add_argument("--size", type=int, default=None, help="Ly = Lx in pixels; default 256 (192 with --short)")
    ap.add_argument("--cells", type=int, default=40)
    ap.add_argument("--cores", default="all", help="number of cores both runs get (default: all)")
    ap.add_argument("--shared-motion", choices=("off", "on"), default="off",
                    help="planeflow's registration.shared_motion (the simulated planes are simultaneous)")
    ap.add_argument("--out", default="/tmp/planeflow-bench-e2e")
    ap.add_argument("--skip-run-s2p", type=float, metavar="SECONDS",
                    help="do not run suite2p; use this earlier run_s2p time instead")
    ap.add_argument("snakemake_args", nargs="*",
                    help="extra Snakemake options for the planeflow run (after --), e.g. --set-threads registration=1")
    a = ap.parse_args()
    _timing.check_arguments(ap, a)
    a.frames = a.frames or (800 if a.short else 2000)
    a.size = a.size or (192 if a.short else 256)
    target = TARGET_SHORT if (a.planes, a.size, a.frames) == (4, 192, 800) else TARGET
    avail = sorted(os.sched_getaffinity(0))
    cores = set(avail if a.cores == "all" else avail[:int(a.cores)])
    out = Path(a.out)
    raw = out / f"raw_{a.planes}x{a.size}x{a.frames}"
    fs, tau, diam = 15.0, 1.0, 10
    from planeflow.synth.simulate import simulate_session

    raw_mb = _timing.simulated(raw, lambda d: simulate_session(
        d, nplanes=a.planes, nframes=a.frames, Ly=a.size, Lx=a.size, cells_per_plane=a.cells, diameter=diam,
        fs=fs, tau=tau, seed=7, name="bench"))
    s2p = {"torch_device": "cpu", "fs": fs, "tau": tau, "diameter": [diam, diam]}
    if a.size < 256:  # suite2p's non-rigid registration needs more than one block per frame
        s2p["registration"] = {"block_size": [a.size // 2, a.size // 2]}

    # --- suite2p's own pipeline: all planes one after the other in one process
    s2p_dir = out / "run_s2p"
    db = {"data_path": [str(raw)], "nplanes": a.planes, "save_path0": str(s2p_dir)}

    def run_s2p() -> float:
        shutil.rmtree(s2p_dir, ignore_errors=True)
        s2p_dir.mkdir(parents=True)
        return _timed([sys.executable, "-c", RUN_S2P, json.dumps(s2p), json.dumps(db), str(REPO / "src")],
                      cores, log=out / "run_s2p.log")

    # --- planeflow with the workflow profile (profiles/default), local execution
    pf = out / "planeflow"
    shadow = _slurm_tools_shadow(out)

    def run_planeflow() -> float:
        shutil.rmtree(pf, ignore_errors=True)
        pf.mkdir(parents=True)
        (pf / "sessions.tsv").write_text("session_id\tdata_path\tnplanes\tfs\ttau\tdiameter\n"
                                         f"bench\t{raw}\t{a.planes}\t{fs}\t{tau}\t{diam}\n")
        cfg = {"sessions": str(pf / "sessions.tsv"), "results_dir": str(pf / "results"),
               "suite2p": {k: v for k, v in s2p.items() if k not in ("fs",)},
               "registration": {"shared_motion": a.shared_motion}}
        (pf / "config.yaml").write_text(yaml.safe_dump(cfg))
        cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(pf),
               f"--configfile={pf / 'config.yaml'}", f"--cores={len(cores)}", *a.snakemake_args]
        prefix = f"{shadow['PATH_PREFIX']}{os.pathsep}" if shadow else ""
        env = {"PATH": f"{prefix}{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        return _timed(cmd, cores, env=env, log=out / "planeflow.log")

    # rounds of planeflow, run_s2p, run_s2p, planeflow, so drift hits both alike
    sides = {"planeflow": run_planeflow,
             "run_s2p": (lambda: a.skip_run_s2p) if a.skip_run_s2p else run_s2p}
    tm = _timing.from_args(sides, a, progress=lambda m: print(m, file=sys.stderr, flush=True))
    if a.skip_run_s2p:
        tm.notes.append(f"run_s2p not run: its time ({a.skip_run_s2p} s, --skip-run-s2p) is from another run")

    # --- same cells found? (the last run of each)
    res = pf / "results" / "bench"
    n_pf = [len(np.load(res / "suite2p" / f"plane{p}" / "stat.npy", allow_pickle=True))
            for p in range(a.planes)]
    n_s2p = ([len(np.load(s2p_dir / "suite2p" / f"plane{p}" / "stat.npy", allow_pickle=True))
              for p in range(a.planes)] if not a.skip_run_s2p else "not run")
    steps = _step_seconds(res / "benchmarks")
    fixed = _fixed_seconds(res / "logs")
    volume_s = _volume_seconds(res / "logs")
    m_pf = tm.median("planeflow")
    ratio, _, _ = tm.ratio("planeflow", "run_s2p")
    print("\n".join(tm.header()))
    print(f"session: {a.planes} planes x {a.size}x{a.size} px x {a.frames} frames ({raw_mb:.0f} MB of TIFF), "
          f"{len(cores)} cores")
    print(tm.side_line("run_s2p", "suite2p.run_s2p", width=27))
    print(tm.side_line("planeflow", "planeflow (local profile)", width=27) + f"   shared motion {a.shared_motion}")
    print("planeflow job time per step (s, summed over planes): "
          + ", ".join(f"{k} {v:.1f}" for k, v in steps.items() if v))
    if a.shared_motion == "on":
        extra = steps["rigid_shifts"] + steps["shared_motion"]
        print(f"shared motion's extra cost: {extra:.1f} s of job time (rigid pass + consensus), "
              f"{100 * extra / max(steps['registration'], 1e-9):.0f}% of registration's")
    print(f"volume_stats' volume half (offsets, crosstalk, one ID per cell): {volume_s:.1f} s = "
          f"{100 * volume_s / m_pf:.1f} % of the planeflow run (target < 10 %); the whole volume_stats "
          f"job {steps['volume_stats']:.1f} s")
    print("of which fixed cost, process start to first line of work (s, summed): "
          + ", ".join(f"{k} {v:.1f}" for k, v in fixed.items()))
    print(f"ROIs per plane: planeflow {n_pf}, run_s2p {n_s2p}")
    cfg = yaml.safe_load((pf / "config.yaml").read_text())
    print("\n".join(breakdown(_timing.workflow_jobs(cfg), tm.samples["planeflow"][-1], len(cores))))
    print(tm.ratio_line("planeflow", "run_s2p", "ratio planeflow / run_s2p") + f"   target <= {target:.2f}   "
          f"({tm.target(ratio <= target)})")
    print(tm.verdict_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
