"""Long planes (issue 22, item 3): one plane of 512 x 512 px for 5,000, 10,000 and 20,000 frames
through the whole workflow; each step's peak memory and time against the number of frames.

For each frame count: simulate one plane (planeflow.synth.simulate.simulate_session, split over
TIFF files of about 1 GB), run the workflow on it (local profile, every core), then read every
job's

- peak memory: the job process's own VmHWM (the "peak RSS" line of its log; exact) and
  Snakemake's benchmark ``max_rss`` (sampled every 0.5 s for 15 s, then every 30 s: it misses
  short peaks of long jobs), against the step's memory model and the ``mem_mb`` its rule asks
  for (``planeflow.plan.resources``, from the session's metadata, as the rules compute it);
- wall time (Snakemake's benchmark ``s``) and time per frame.

``--traces ROISxFRAMES ...``: postprocess and merge, the steps that hold a plane's traces, each in
a fresh process on the first run's detection outputs scaled to that many ROIs and frames (rows and
frames repeated; their memory depends on the sizes, not on what the traces show), against their
memory model at that many ROIs.

Then each run's data is deleted (``--keep`` keeps it) and its figures are kept in
``OUT/long_plane_<frames>.json``, so frame counts can be run one at a time and reported together
(``--report``). Memory, disk and job counts do not depend on the machine's load; wall times do,
and are marked UNRELIABLE (benchmarks/_timing.py's rules) when the machine was busy.

    python benchmarks/long_plane.py [--frames 5000 10000 20000] [--size 512] [--out DIR] [--keep]
                                    [--detection-frames 10000 20000] [--traces 2000x10000 5000x20000]
    python benchmarks/long_plane.py --report [--frames ...]        # the table of runs already made
    python benchmarks/long_plane.py --tiny                         # a smoke run (seconds; CI)

Disk: raw TIFF, the raw binary and the registered binary are 3 copies of the movie: 3 x 2 B x
512 x 512 x frames (16 GB at 10,000 frames, 31 GB at 20,000). Registration needs about 9 GB of
memory from 5,000 frames on at 512 px (suite2p's registration metrics).
"""
from __future__ import annotations

import argparse
import json
import math
import os
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

#: the steps that planeflow itself runs (no suite2p inside): bounded whatever the length
OWN_STEPS = ("binary_write", "postprocess", "merge", "volume_stats", "qc")
FS, TAU, DIAM = 15.0, 1.0, 10


def simulate(raw: Path, frames: int, size: int, cells: int) -> float:
    """One plane of ``frames`` frames in TIFF files of about 1 GB; its MB."""
    from planeflow.synth.simulate import simulate_session

    nfiles = max(1, math.ceil(frames * size * size * 2 / 1e9))
    return _timing.simulated(raw, lambda d: simulate_session(
        d, nplanes=1, nframes=frames, Ly=size, Lx=size, cells_per_plane=cells, diameter=DIAM, fs=FS, tau=TAU,
        nfiles=nfiles, seed=5, name="long"))


def suite2p_settings(size: int) -> dict:
    s2p = {"torch_device": "cpu", "tau": TAU, "diameter": [DIAM, DIAM]}
    if size < 256:  # suite2p's non-rigid registration needs more than one block per frame
        s2p["registration"] = {"block_size": [size // 2, size // 2]}
    return s2p


def binned_frames(frames: int, nbins: int = 5000) -> int:
    """Frames of suite2p's binned movie (detection.detect: bin_size = max(1, n // nbins, round(tau fs)))."""
    bin_size = int(max(1, frames // nbins, round(TAU * FS)))
    return min(nbins, frames // bin_size)


def run_one(out: Path, frames: int, size: int, cells: int, cores: int, env: dict, keep: bool,
            detection_frames: list[int] | None = None, traces: list[tuple[int, int]] | None = None,
            settle: bool = True) -> dict:
    raw = out / f"raw_{size}x{frames}"
    pf = out / f"planeflow_{size}x{frames}"
    t0 = time.perf_counter()
    raw_mb = simulate(raw, frames, size, cells)
    sim_s = time.perf_counter() - t0
    shutil.rmtree(pf, ignore_errors=True)
    pf.mkdir(parents=True)
    (pf / "sessions.tsv").write_text("session_id\tdata_path\tnplanes\tfs\ttau\tdiameter\n"
                                     f"long\t{raw}\t1\t{FS}\t{TAU}\t{DIAM}\n")
    cfg = {"sessions": str(pf / "sessions.tsv"), "results_dir": str(pf / "results"),
           "suite2p": suite2p_settings(size)}
    (pf / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(pf),
           f"--configfile={pf / 'config.yaml'}", f"--cores={cores}"]
    if settle:  # the simulation's own load
        _timing.settle(progress=lambda m: print(m, file=sys.stderr, flush=True))
    before = _timing.machine_state()
    with _timing.DiskPoller(pf / "results", every=5.0) as disk, _timing.JobMemorySampler(pf) as mem:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
    after = _timing.machine_state()
    (out / f"planeflow_{size}x{frames}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        sys.exit(f"the workflow failed ({proc.returncode}) on {frames} frames; see "
                 f"{out / f'planeflow_{size}x{frames}.log'}\n{proc.stderr[-3000:]}")
    jobs = _timing.workflow_jobs(yaml.safe_load((pf / "config.yaml").read_text()))
    mem.annotate(jobs, pf / "results")
    rec = {"frames": frames, "size": size, "cells": cells, "cores": cores, "raw_mb": raw_mb,
           "simulate_s": sim_s, "wall_s": wall, "results_peak_mb": disk.peak / 1e6,
           "provenance": _timing.provenance(before, after),
           "unreliable": _timing.quiet_reasons(before, after),
           "load_before": before.load, "load_after": after.load,
           "binned_frames": binned_frames(frames), "jobs": jobs}
    if detection_frames:
        rec["detection_alone"] = detection_alone(pf, size, detection_frames, env)
    if traces:
        rec["traces"] = trace_steps(pf, traces, env)
    (out / f"long_plane_{size}x{frames}.json").write_text(json.dumps(rec, indent=1))
    if not keep:
        shutil.rmtree(raw, ignore_errors=True)
        shutil.rmtree(pf, ignore_errors=True)
    return rec


#: the first lines of each child script below: a thread that keeps the process' peak private
#: memory (RssAnon) and peak pages of mapped files (RssFile), in MB, sampled every 50 ms
PEAK_SAMPLER = r"""
import threading, time
peak = {"anon": 0.0, "file": 0.0}
def _sample():
    while True:
        with open("/proc/self/status") as fh:
            f = {l.split(":")[0]: int(l.split()[1]) / 1024 for l in fh if l.startswith(("RssAnon", "RssFile"))}
        peak["anon"], peak["file"] = max(peak["anon"], f["RssAnon"]), max(peak["file"], f["RssFile"])
        time.sleep(0.05)
threading.Thread(target=_sample, daemon=True).start()
"""

#: detection alone in a fresh process on the inputs detection_alone wrote; writes result.json
DETECTION_ALONE = PEAK_SAMPLER + r"""
import json, os, sys
out = sys.argv[1]
from planeflow.steps._job import limit_threads, peak_rss_mb, setup_logging
limit_threads(1)
setup_logging(os.path.join(out, "detection.log"))
from planeflow.steps.detection import OUTPUT_NAMES, detection
t0 = time.time()
detection(os.path.join(out, "ops.npy"), os.path.join(out, "data.bin"),
          {o: os.path.join(out, f"{o}.npy") for o in OUTPUT_NAMES}, json.loads(sys.argv[2]), "cpu", 1)
with open(os.path.join(out, "result.json"), "w") as fh:  # fds 1 and 2 point at the log
    json.dump({"s": time.time() - t0, "peak_mb": peak_rss_mb(), "anon_mb": peak["anon"],
               "file_mb": peak["file"]}, fh)
"""


def _ops_of_length(ops: dict, frames: int) -> dict:
    """``ops`` of a movie repeated to ``frames`` frames: its per-frame arrays repeated (or cut)."""
    import numpy as np

    n0, ops = ops["nframes"], dict(ops)
    for key, v in list(ops.items()):
        if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n0:
            ops[key] = np.resize(v, (frames, *v.shape[1:]))
    ops["nframes"] = frames
    return ops


def detection_alone(pf: Path, size: int, frames: list[int], env: dict) -> list[dict]:
    """Detection's memory at longer lengths without registering them: the registered movie of the
    run in ``pf`` repeated to each of ``frames`` (multiples of its length), one fresh process each."""
    from planeflow.plan import registry

    reg = pf / "results" / "long" / "registration" / "plane0" / "part0"
    import numpy as np

    ops = np.load(reg / "ops.npy", allow_pickle=True).item()
    out = []
    for n in frames:
        if n % ops["nframes"]:
            sys.exit(f"--detection-frames {n}: not a multiple of {ops['nframes']}")
        d = pf / f"detection_{n}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        with open(d / "data.bin", "wb") as fh:  # the registered movie, n / nframes times
            for _ in range(n // ops["nframes"]):
                with open(reg / "data.bin", "rb") as src:
                    shutil.copyfileobj(src, fh, 64 << 20)
        np.save(d / "ops.npy", _ops_of_length(ops, n), allow_pickle=True)
        over = {"torch_device": "cpu", "fs": FS, "tau": TAU, "diameter": [float(DIAM)] * 2,
                **({"registration": suite2p_settings(size)["registration"]} if size < 256 else {})}
        proc = subprocess.run([sys.executable, "-c", DETECTION_ALONE, str(d), json.dumps(over)],
                              capture_output=True, text=True, env={**env, "PYTHONPATH": str(REPO / "src")})
        if proc.returncode or not (d / "result.json").exists():
            log = (d / "detection.log").read_text()[-3000:] if (d / "detection.log").exists() else ""
            sys.exit(f"detection alone on {n} frames failed:\n{proc.stderr[-3000:]}\n{log}")
        rec = {"frames": n, **json.loads((d / "result.json").read_text())}
        shutil.rmtree(d, ignore_errors=True)
        meta = {"plane_shape": [size, size], "nframes": n, "planes": [0], "fs": FS}
        rec.update(binned_frames=binned_frames(n), model_mb=registry.STEPS["detection"].memory(meta, {}, None),
                   request_mb=registry.STEPS["detection"].estimate(meta, {}, 1)["mem_mb"])
        out.append(rec)
    return out


#: postprocess or merge on given inputs in a fresh process: peak VmHWM and peak RssAnon; prints a
#: JSON line
TRACE_STEP = PEAK_SAMPLER + r"""
import json, sys
step, args = sys.argv[1], json.loads(sys.argv[2])
import matplotlib
matplotlib.use("Agg")
from planeflow.steps._job import peak_rss_mb
from planeflow.steps.merge import merge
from planeflow.steps.postprocess import postprocess
t0 = time.time()
(postprocess if step == "postprocess" else merge)(**args)
print("RESULT " + json.dumps({"s": time.time() - t0, "peak_mb": peak_rss_mb(), "anon_mb": peak["anon"]}))
"""


def _scaled_detection(det: Path, d: Path, rois: int, frames: int) -> None:
    """``det``'s detection outputs with ``rois`` ROIs (its ROIs repeated) and ``frames`` frames (its
    traces repeated, with 5 % noise so that no two rows are equal) in ``d``."""
    import numpy as np

    rng = np.random.default_rng(0)
    ops = np.load(det / "ops.npy", allow_pickle=True).item()
    np.save(d / "ops.npy", _ops_of_length(ops, frames), allow_pickle=True)
    stat = np.load(det / "stat.npy", allow_pickle=True)
    rows = np.arange(rois) % len(stat)
    np.save(d / "stat.npy", stat[rows], allow_pickle=True)
    np.save(d / "iscell.npy", np.load(det / "iscell.npy")[rows])
    for name in ("F", "Fneu", "spks"):
        a = np.load(det / f"{name}.npy")[rows]
        a = np.tile(a, (1, -(-frames // a.shape[1])))[:, :frames]
        np.save(d / f"{name}.npy", (a * (1 + 0.05 * rng.standard_normal(a.shape, np.float32))).astype(a.dtype))


def trace_steps(pf: Path, sizes: list[tuple[int, int]], env: dict) -> list[dict]:
    """postprocess and merge, each in a fresh process, on the run's detection outputs scaled to each
    (ROIs, frames) of ``sizes``, against their memory model at that many ROIs."""
    from planeflow.plan import registry
    from planeflow.plan.config import with_defaults
    from planeflow.plan.layout import plane_folder_files
    from planeflow.steps.postprocess import OUTPUT_NAMES

    results = pf / "results" / "long"
    meta = json.loads((results / "metadata.json").read_text())
    out = []
    for rois, frames in sizes:
        d = pf / f"traces_{rois}x{frames}"
        shutil.rmtree(d, ignore_errors=True)
        (d / "detection").mkdir(parents=True)
        (d / "postprocess").mkdir()
        _scaled_detection(results / "detection" / "plane0" / "part0", d / "detection", rois, frames)
        det = {k: str(d / "detection" / f"{k}.npy") for k in ("ops", "stat", "iscell", "F", "Fneu", "spks")}
        pp = {k: str(d / "postprocess" / (f"{k}.tsv" if k == "roi_stats" else f"{k}.png" if k.startswith("fig")
                                          else f"{k}.npy")) for k in OUTPUT_NAMES}
        final = plane_folder_files(str(d / "plane0"))
        os.makedirs(d / "plane0")
        calls = {
            "postprocess": {"inputs": {k: det[k] for k in ("ops", "stat", "iscell", "F", "Fneu")}, "out": pp,
                            "options": with_defaults("postprocess", None)},
            "merge": {"parts": [{"ops": pp["ops"], "stat": pp["stat"], "iscell": pp["iscell"], "F": det["F"],
                                 "Fneu": det["Fneu"], "spks": det["spks"], "dff": pp["dff"],
                                 "reg_ops": str(results / "registration" / "plane0" / "part0" / "ops.npy")}],
                      "out": final, "plane_shape": meta["plane_shape"], "offsets": [[0, 0]]},
        }
        m = {**meta, "nframes": frames}
        cfg = {"suite2p": {"detection": {"sparsery_settings": {"max_ROIs": rois}}}}
        for step, args in calls.items():
            proc = subprocess.run([sys.executable, "-c", TRACE_STEP, step, json.dumps(args)], capture_output=True,
                                  text=True, env={**env, "PYTHONPATH": str(REPO / "src")})
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{step} on {rois} ROIs x {frames} frames failed:\n{proc.stderr[-3000:]}")
            rec = json.loads(line[0][len("RESULT "):])
            rec.update(step=step, rois=rois, frames=frames, trace_mb=rois * frames * 4 / 1e6,
                       model_mb=registry.STEPS[step].memory(m, cfg, 0 if step == "postprocess" else None))
            out.append(rec)
        shutil.rmtree(d, ignore_errors=True)
    return out


def _fmt_mb(v) -> str:
    return "-" if v is None else f"{v:,.0f}"


def report(runs: list[dict]) -> list[str]:
    runs = sorted(runs, key=lambda r: r["frames"])
    lines = []
    for r in runs:
        lines += [f"--- {r['frames']} frames of {r['size']}x{r['size']} px ({r['raw_mb']:,.0f} MB of TIFF), "
                  f"{r['cores']} cores: workflow {r['wall_s']:.0f} s"
                  + (f" ({_timing.UNRELIABLE}: {'; '.join(r['unreliable'])})" if r["unreliable"] else ""),
                  *r["provenance"],
                  f"results folder high-water mark {r['results_peak_mb']:,.0f} MB = "
                  f"{r['results_peak_mb'] / r['raw_mb']:.2f}x the raw TIFF"]
    steps = []
    for r in runs:
        steps += [j["step"] for j in r["jobs"] if j["step"] not in steps]
    lines.append("")
    lines.append("peak memory per job (MB): peak = the job process's VmHWM (its log), max_rss = Snakemake's "
                 "sample, both counting the pages of the memory-mapped binaries it touched (page cache); "
                 "private = its peak RssAnon, sampled every second (what it needs); model = the step's "
                 "memory model (own process), request = mem_mb on a first attempt "
                 f"(model + {_runner_mb()} MB for the Snakemake process on a cluster node)")
    head = f"{'step':13s} {'frames':>7s} {'peak':>7s} {'max_rss':>8s} {'private':>8s} {'model':>7s} {'request':>8s} " \
           f"{'peak/req':>8s} {'priv/req':>8s} {'time s':>8s} {'ms/frame':>9s} {'fixed s':>8s}"
    lines.append(head)
    for step in steps:
        for r in runs:
            for j in (j for j in r["jobs"] if j["step"] == step):
                peak, s, req, fixed = _timing.job_peak(j), j["s"], j["request_mb"], j["fixed_s"]
                ratio = "-" if peak is None else f"{peak / req:.2f}"
                anon = j.get("anon_mb")
                pratio = "-" if anon is None else f"{anon / req:.2f}"
                secs = "-" if s is None else f"{s:.1f}"
                per_frame = "-" if s is None else f"{1000 * s / r['frames']:.2f}"
                fixed = "-" if fixed is None else f"{fixed:.1f}"
                lines.append(
                    f"{step:13s} {r['frames']:7d} {_fmt_mb(j['peak_mb']):>7s} {_fmt_mb(j['max_rss']):>8s} "
                    f"{_fmt_mb(anon):>8s} {_fmt_mb(j['model_mb']):>7s} {_fmt_mb(req):>8s} {ratio:>8s} {pratio:>8s} "
                    f"{secs:>8s} "
                    f"{per_frame:>9s} {fixed:>8s}")
    for r in runs:
        if r.get("detection_alone"):
            lines.append("")
            lines.append(f"detection alone on the {r['frames']}-frame registered movie repeated (MB; binned = "
                         "frames of suite2p's binned movie):")
            lines.append(f"{'frames':>7s} {'binned':>7s} {'peak':>7s} {'private':>8s} {'mapped':>7s} {'request':>8s} "
                         f"{'peak/req':>8s} {'priv/req':>8s} {'time s':>7s}")
            for d in r["detection_alone"]:
                lines.append(f"{d['frames']:7d} {d['binned_frames']:7d} {d['peak_mb']:7,.0f} {d['anon_mb']:8,.0f} "
                             f"{d['file_mb']:7,.0f} {d['request_mb']:8,.0f} {d['peak_mb'] / d['request_mb']:8.2f} "
                             f"{d['anon_mb'] / d['request_mb']:8.2f} {d['s']:7.1f}")
    for r in runs:
        if r.get("traces"):
            lines.append("")
            lines.append(f"traces: postprocess and merge on the {r['frames']}-frame plane's detection outputs "
                         "scaled to ROIs x frames (MB; trace = one float32 array; private = peak RssAnon; peak = "
                         "VmHWM, with the pages of the traces it read; model = the step's memory model at that "
                         "many ROIs):")
            lines.append(f"{'step':12s} {'ROIs':>6s} {'frames':>7s} {'trace':>7s} {'peak':>7s} {'private':>8s} "
                         f"{'model':>7s} {'priv/model':>10s} {'time s':>7s}")
            for t in r["traces"]:
                lines.append(f"{t['step']:12s} {t['rois']:6d} {t['frames']:7d} {t['trace_mb']:7,.0f} "
                             f"{t['peak_mb']:7,.0f} {t['anon_mb']:8,.0f} {t['model_mb']:7,.0f} "
                             f"{t['anon_mb'] / t['model_mb']:10.2f} {t['s']:7.1f}")
    if len(runs) >= 2:
        lo, hi = runs[0], runs[-1]
        grow = hi["frames"] / lo["frames"]
        lines.append("")
        lines.append(f"from {lo['frames']} to {hi['frames']} frames (x{grow:.1f}): "
                     "peak memory (VmHWM; private) grows by")
        for step in steps:
            a = [j for j in lo["jobs"] if j["step"] == step]
            b = [j for j in hi["jobs"] if j["step"] == step]
            if not (a and b and _timing.job_peak(a[0]) and _timing.job_peak(b[0])):
                continue
            pa, pb = _timing.job_peak(a[0]), _timing.job_peak(b[0])
            d = pb - pa
            kind = "planeflow's own" if step in OWN_STEPS else "suite2p inside"
            priv = ""
            if a[0].get("anon_mb") and b[0].get("anon_mb"):
                qa, qb = a[0]["anon_mb"], b[0]["anon_mb"]
                priv = f"; private {qa:,.0f} -> {qb:,.0f} MB ({qb - qa:+,.0f} MB)"
            lines.append(f"  {step:13s} {pa:7,.0f} -> {pb:7,.0f} MB ({d:+,.0f} MB, x{pb / pa:.2f}; "
                         f"{1000 * d / (hi['frames'] - lo['frames']):+.1f} MB per 1000 frames){priv}  {kind}")
        for r in runs:
            fm = r["size"] ** 2 * 4 / 1e6
            det = [j for j in r["jobs"] if j["step"] == "detection"]
            if det:
                lines.append(f"  detection at {r['frames']} frames: suite2p's binned movie {r['binned_frames']} "
                             f"frames x {fm:.2f} MB = {r['binned_frames'] * fm:,.0f} MB; peak "
                             f"{_fmt_mb(_timing.job_peak(det[0]))} MB against the model's {det[0]['model_mb']:,.0f}")
    return lines


def _runner_mb() -> int:
    from planeflow.plan import resources

    return resources.RUNNER_MB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=None, help="frame counts (default 5000 10000)")
    ap.add_argument("--size", type=int, default=None, help="Ly = Lx in px (default 512)")
    ap.add_argument("--cells", type=int, default=None, help="planted cells (default 150)")
    ap.add_argument("--cores", default="all", help="cores of the workflow run (default: all)")
    ap.add_argument("--out", default="/tmp/planeflow-long-plane")
    ap.add_argument("--keep", action="store_true", help="keep each run's raw data and results")
    ap.add_argument("--report", action="store_true", help="only print the table of the runs in --out")
    ap.add_argument("--detection-frames", type=int, nargs="+", default=None,
                    help="after the first run, detection alone on its registered movie repeated to these "
                    "lengths (multiples of it; e.g. 10000 20000): detection's memory against the length "
                    "without registering the longer movies")
    ap.add_argument("--traces", nargs="+", default=None, metavar="ROISxFRAMES",
                    help="after the first run, postprocess and merge on its detection outputs scaled to these "
                    "sizes (e.g. 2000x10000 5000x20000): their memory against the number of ROIs and frames")
    ap.add_argument("--samples", help="a JSON of job memory samples taken by a separate sampler "
                    "(_timing.JobMemorySampler.jobs), for runs made without one")
    ap.add_argument("--tiny", action="store_true",
                    help="a smoke run: 64 x 64 px, 150 and 300 frames, 5 cells (figures mean nothing)")
    a = ap.parse_args()
    if a.tiny:
        a.frames, a.size, a.cells = a.frames or [150, 300], a.size or 64, a.cells or 5
        a.traces = a.traces or ["40x600"]
    a.frames, a.size, a.cells = a.frames or [5000, 10000], a.size or 512, a.cells or 150
    try:
        traces = [tuple(int(v) for v in t.lower().split("x")) for t in a.traces or ()]
        assert all(len(t) == 2 and min(t) > 0 for t in traces)
    except (ValueError, AssertionError):
        ap.error(f"--traces {' '.join(a.traces)}: each size is ROISxFRAMES, two positive integers (e.g. 2000x10000)")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0)) if a.cores == "all" else int(a.cores)
    if not a.report:
        env = _timing.slurm_tools_hidden(out) or dict(os.environ)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        for i, n in enumerate(a.frames):
            print(f"running {n} frames of {a.size}x{a.size} px ...", file=sys.stderr, flush=True)
            run_one(out, n, a.size, a.cells, cores, env, a.keep, a.detection_frames if i == 0 else None,
                    traces if i == 0 else None, settle=not a.tiny)
    runs = []
    for n in a.frames:
        f = out / f"long_plane_{a.size}x{n}.json"
        if f.exists():
            runs.append(json.loads(f.read_text()))
            if a.samples:
                _timing.merge_samples(runs[-1]["jobs"], a.samples, out / f"planeflow_{a.size}x{n}" / "results")
        else:
            print(f"no run of {n} frames in {out}", file=sys.stderr)
    if a.tiny:
        print("--tiny: a smoke run, NOT A MEASUREMENT")
    print(f"command: {_timing.command_line()}")
    print("\n".join(report(runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
