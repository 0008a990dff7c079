"""A session shaped like a real one (issue 22, item 2): a 30-plane light-beads-like recording run
end to end with every core.

Simulates a volume (planeflow.synth.volume.simulate_volume: 30 planes of one population, with
plane offsets and crosstalk between neighbouring planes, as in light-beads microscopy), times a
dry run (cold: the first parse reads the raw files' metadata; then cached), runs the workflow
(local profile, every core) while polling the disk, times ``planeflow status`` on the finished
results, and prints

- wall time against the sum of the job times: how busy the cores were;
- each step's peak memory (the job process's VmHWM, from its log, and Snakemake's ``max_rss``)
  against its ``mem_mb`` request (``planeflow.plan.resources``): the target is every job
  between 0.5 and 1.0 of its request;
- the disk high-water mark (raw folder + results, polled every few seconds) against the raw size;
- the volume half's share: volume_stats (of which its volume part: offsets, crosstalk, one ID per
  cell, from its log), qc, and shared_motion, rigid_shifts, crosstalk and crosstalk_subtract
  where they run;
- the dry-run and ``planeflow status`` times.

Memory, disk and job counts do not depend on the machine's load; the times do, and are marked
UNRELIABLE (benchmarks/_timing.py's rules) when the machine was busy. Each figure is one run.

    python benchmarks/scale.py [--planes 30] [--size 256] [--frames 3000] [--out DIR] [--keep]
    python benchmarks/scale.py --tiny        # a smoke run: 2 planes x 64 px x 150 frames (seconds; CI)

Disk: the raw TIFF, the raw binaries and the registered binaries are three copies of the movie
(30 x 256 x 256 x 3000 frames: 11.8 GB of TIFF, about 36 GB at the high-water mark).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing  # noqa: E402

#: the steps of the volume half (per session, or added for the volume: shared motion, crosstalk)
VOLUME_STEPS = ("volume_stats", "qc", "rigid_shifts", "shared_motion", "crosstalk", "crosstalk_subtract")
FS, TAU, DIAM = 15.0, 1.0, 10
#: the target band of a job's peak memory against its request
BAND = (0.5, 1.0)


def simulate(raw: Path, planes: int, frames: int, size: int, cells: int) -> float:
    """The volume in TIFF files of about 1 GB; MB of TIFF."""
    from planeflow.synth.volume import simulate_volume

    nfiles = max(1, math.ceil(planes * frames * size * size * 2 / 1e9))
    return _timing.simulated(raw, lambda d: simulate_volume(
        d, nplanes=planes, nframes=frames, Ly=size, Lx=size, cells_per_plane=cells, diameter=DIAM, fs=FS, tau=TAU,
        crosstalk=0.05, crosstalk_k=1, nfiles=nfiles, seed=9, name="lbm"))


def timed(cmd: list[str], env: dict, ok=(0,)) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if proc.returncode not in ok:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return dt, proc


def volume_seconds(log_dir: Path) -> float:
    """volume_stats' volume part (offsets, crosstalk, one ID per cell): its log's 'volume: ... in X s'."""
    total = 0.0
    for f in (log_dir / "volume_stats").glob("*.log"):
        m = re.search(r"volume: \d+ planes, .* in ([\d.]+) s", f.read_text())
        total += float(m.group(1)) if m else 0.0
    return total


def run(a, out: Path, env: dict) -> dict:
    raw = out / f"raw_{a.planes}x{a.size}x{a.frames}"
    pf = out / "planeflow"
    t0 = time.perf_counter()
    raw_mb = simulate(raw, a.planes, a.frames, a.size, a.cells)
    sim_s = time.perf_counter() - t0
    shutil.rmtree(pf, ignore_errors=True)
    pf.mkdir(parents=True)
    (pf / "sessions.tsv").write_text("session_id\tdata_path\tnplanes\tfs\ttau\tdiameter\tdx\tdy\tdz\n"
                                     f"lbm\t{raw}\t{a.planes}\t{FS}\t{TAU}\t{DIAM}\t1.0\t1.0\t15.0\n")
    s2p = {"torch_device": "cpu", "tau": TAU, "diameter": [DIAM, DIAM]}
    if a.size < 256:  # suite2p's non-rigid registration needs more than one block per frame
        s2p["registration"] = {"block_size": [a.size // 2, a.size // 2]}
    cfg = {"sessions": str(pf / "sessions.tsv"), "results_dir": str(pf / "results"), "suite2p": s2p}
    (pf / "config.yaml").write_text(yaml.safe_dump(cfg))
    sm = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(pf), f"--configfile={pf / 'config.yaml'}",
          f"--cores={a.cores}"]

    if not a.tiny:  # the simulation's own load
        _timing.settle(progress=lambda m: print(m, file=sys.stderr, flush=True))
    before = _timing.machine_state()
    dry_cold, proc = timed([*sm, "-n"], env)
    njobs = len(re.findall(r"^\s*(?:local)?rule \w+:", proc.stdout + proc.stderr, re.M))
    dry_cached, _ = timed([*sm, "-n"], env)
    with _timing.DiskPoller(raw, pf / "results", every=a.poll) as disk, _timing.JobMemorySampler(pf) as mem:
        wall, proc = timed(sm, env, ok=(0, 1))
    (out / "planeflow.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        sys.exit(f"the workflow failed; see {out / 'planeflow.log'}\n{proc.stderr[-3000:]}")
    status_s, _ = timed([str(BIN / "planeflow"), "status", str(pf / "results"), "-c", str(pf / "config.yaml"),
                         "-d", str(pf)], env, ok=(0, 1, 2))
    after = _timing.machine_state()

    jobs = _timing.workflow_jobs(yaml.safe_load((pf / "config.yaml").read_text()))
    mem.annotate(jobs, pf / "results")
    results_mb = _timing.tree_bytes(pf / "results") / 1e6
    rec = {"planes": a.planes, "size": a.size, "frames": a.frames, "cells": a.cells, "cores": a.cores,
           "raw_mb": raw_mb, "simulate_s": sim_s, "wall_s": wall, "jobs_planned": njobs,
           "dry_cold_s": dry_cold, "dry_cached_s": dry_cached, "status_s": status_s,
           "disk_peak_mb": disk.peak / 1e6, "disk_samples": disk.samples, "results_mb": results_mb,
           "volume_s": volume_seconds(pf / "results" / "lbm" / "logs"),
           "provenance": _timing.provenance(before, after), "unreliable": _timing.quiet_reasons(before, after),
           "jobs": jobs}
    (out / "scale.json").write_text(json.dumps(rec, indent=1))
    if not a.keep:
        shutil.rmtree(raw, ignore_errors=True)
        shutil.rmtree(pf, ignore_errors=True)
    return rec


def report(r: dict, label: str = "") -> list[str]:
    tag = label or (_timing.UNRELIABLE if r["unreliable"] else "")

    def t(sec: float) -> str:
        return f"{sec:.1f} s" + (f" ({tag})" if tag else "")

    jobs = [j for j in r["jobs"] if j["s"] is not None]
    busy = sum(j["s"] for j in jobs)
    lines = [*r["provenance"],
             f"session: {r['planes']} planes x {r['size']}x{r['size']} px x {r['frames']} frames "
             f"({r['raw_mb']:,.0f} MB of TIFF), {r['cores']} cores; {len(r['jobs'])} jobs run "
             f"({r['jobs_planned']} planned by the dry run, 'all' included)"]
    if r["unreliable"]:
        lines.append(f"times: {_timing.UNRELIABLE}: {'; '.join(r['unreliable'])}")
    lines += [
        f"wall time {t(r['wall_s'])} against {busy:,.0f} s of job time summed: the cores were busy "
        f"{100 * busy / (r['wall_s'] * r['cores']):.0f} % of the run (job time / (wall x {r['cores']} cores))",
        f"dry run: {t(r['dry_cold_s'])} cold (reads the raw files' metadata), {t(r['dry_cached_s'])} "
        f"with the metadata cached;  planeflow status on the finished results: {t(r['status_s'])}",
        f"disk: high-water mark {r['disk_peak_mb']:,.0f} MB (raw folder + results, {r['disk_samples']} polls) "
        f"= {r['disk_peak_mb'] / r['raw_mb']:.2f}x the raw TIFF; the results {r['results_mb']:,.0f} MB at the end "
        f"= {r['results_mb'] / r['raw_mb']:.2f}x",
    ]
    vol = {s: sum(j["s"] for j in jobs if j["step"] == s) for s in VOLUME_STEPS}
    vol_total = sum(vol.values())
    lines.append(
        f"volume half: {vol_total:.1f} s of job time = {100 * vol_total / busy:.1f} % of all job time ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in vol.items() if v)
        + f"); volume_stats' volume part (offsets, crosstalk, one ID per cell) {r['volume_s']:.1f} s "
        f"= {100 * r['volume_s'] / r['wall_s']:.1f} % of the wall time")
    lines.append("")
    lines.append("memory per step against the mem_mb request (first attempt), target "
                 f"{BAND[0]}-{BAND[1]} of it: peak = the job process's VmHWM (its log; Snakemake's max_rss if "
                 "larger), counting the pages of memory-mapped binaries it touched (page cache); private = "
                 "its peak RssAnon, sampled every second (what it needs)")
    lines.append(f"{'step':18s} {'jobs':>4s} {'peak MB':>15s} {'private MB':>15s} {'request MB':>15s} "
                 f"{'peak/request':>13s} {'private/req':>13s} {'in band':>7s} {'below':>5s} {'above':>5s} "
                 f"{'time s (median)':>15s}")
    steps = []
    for j in r["jobs"]:
        if j["step"] not in steps:
            steps.append(j["step"])
    n_in = n_all = 0

    def rng(v, f="{:,.0f}"):
        return (f.format(min(v)) + "-" + f.format(max(v))) if v else "-"

    for s in steps:
        js = [j for j in r["jobs"] if j["step"] == s and _timing.job_peak(j) is not None]
        if not js:
            continue
        peaks = [_timing.job_peak(j) for j in js]
        anon = [j["anon_mb"] for j in js if j.get("anon_mb")]
        reqs = [j["request_mb"] for j in js]
        fr = [p / q for p, q in zip(peaks, reqs)]
        fa = [j["anon_mb"] / j["request_mb"] for j in js if j.get("anon_mb")]
        band = sum(BAND[0] <= f <= BAND[1] for f in fr)
        n_in, n_all = n_in + band, n_all + len(fr)
        secs = sorted(j["s"] for j in js if j["s"] is not None)
        lines.append(f"{s:18s} {len(js):4d} {rng(peaks):>15s} {rng(anon):>15s} {rng(reqs):>15s} "
                     f"{rng(fr, '{:.2f}'):>13s} {rng(fa, '{:.2f}'):>13s} {band:7d} {sum(f < BAND[0] for f in fr):5d} "
                     f"{sum(f > BAND[1] for f in fr):5d} {secs[len(secs) // 2] if secs else 0:15.1f}")
    lines.append(f"jobs whose peak is in the band {BAND[0]}-{BAND[1]} of their request: {n_in} of {n_all}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--planes", type=int, default=None, help="default 30")
    ap.add_argument("--size", type=int, default=None, help="Ly = Lx in px (default 256)")
    ap.add_argument("--frames", type=int, default=None, help="frames per plane (default 3000)")
    ap.add_argument("--cells", type=int, default=None, help="cells per plane's depth (default 40)")
    ap.add_argument("--cores", default="all", help="cores of the workflow run (default: all)")
    ap.add_argument("--poll", type=float, default=5.0, help="seconds between disk polls (default 5)")
    ap.add_argument("--out", default="/tmp/planeflow-scale")
    ap.add_argument("--keep", action="store_true", help="keep the raw data and the results")
    ap.add_argument("--report", action="store_true", help="only print the report of the run in --out")
    ap.add_argument("--samples", help="a JSON of job memory samples taken by a separate sampler "
                    "(_timing.JobMemorySampler.jobs), for a run made without one")
    ap.add_argument("--tiny", action="store_true",
                    help="a smoke run: 2 planes x 64 x 64 px x 150 frames (its figures mean nothing)")
    a = ap.parse_args()
    if a.tiny:
        a.planes, a.size, a.frames, a.cells = a.planes or 2, a.size or 64, a.frames or 150, a.cells or 5
        a.poll = min(a.poll, 0.5)
    a.planes, a.size, a.frames, a.cells = a.planes or 30, a.size or 256, a.frames or 3000, a.cells or 40
    a.cores = len(os.sched_getaffinity(0)) if a.cores == "all" else int(a.cores)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.report:
        r = json.loads((out / "scale.json").read_text())
        if a.samples:
            _timing.merge_samples(r["jobs"], a.samples, out / "planeflow" / "results")
    else:
        env = _timing.slurm_tools_hidden(out) or dict(os.environ)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        r = run(a, out, env)
    label = "NOT A MEASUREMENT" if a.tiny else ""
    if a.tiny:
        print("--tiny: a smoke run, NOT A MEASUREMENT")
    print(f"command: {_timing.command_line()}")
    print("\n".join(report(r, label)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
