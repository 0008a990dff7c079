"""Fixed cost of every planeflow job: what a job pays before its first line of work.

For each step, a fresh Python process runs what the job runs before work: the imports
of Snakemake's script preamble, the import statements of ``scripts/<step>.py`` (read
from the script itself, in order), then what ``run_step`` does before it calls the
step: limit threads and import ``planeflow.steps.<step>`` with everything it needs. The process reports the
time from its start (the parent's clock when it was spawned) and its peak RSS
(VmHWM) and private memory (RssAnon) at that point. Each round goes over all steps
forwards, then backwards (benchmarks/_timing.py: a busy machine hits all alike, and the
result says when it was busy); medians are printed, each against a bare interpreter
(``python -c`` with no import), plus two references: ``import torch`` alone and
``import suite2p`` (what a suite2p job paid before), and the imports a step's default
work adds later (``DEFERRED``).

    python benchmarks/job_overhead.py [--rounds 3] [--steps ...] [--json out.json] [--quick]
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STEPS = ("binary_write", "registration", "detection", "postprocess", "merge", "volume_stats",
         "nwb_export", "cellpose_export", "cellpose_import", "raw_compress")
#: steps that run suite2p algorithms on torch: target <= TORCH_TARGET; the others <= OTHER_TARGET
TORCH_STEPS = ("registration", "detection", "cellpose_import")
TORCH_TARGET = (3.0, 600)   # seconds, MB of peak RSS before work
OTHER_TARGET = (1.0, None)
#: what each step's default work imports later, on first use (imports inside functions,
#: lazily loaded modules): not fixed cost, printed apart. registration: suite2p's
#: registration metrics (scikit-learn), computed with >= 1500 frames; postprocess:
#: figures; cellpose_export: cellpose's flow and GUI-file code; cellpose_import: cellpose
#: masks to suite2p ROIs (suite2p.detection.anatomical imports cellpose.models).
DEFERRED = {
    "registration": "suite2p_module('suite2p.registration.metrics')",
    "postprocess": "import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot",
    "cellpose_export": "from planeflow._s2p_import import cellpose_module as m; "
                       "[m(n) for n in ('cellpose.dynamics', 'cellpose.plot', 'cellpose.io')]",
    "cellpose_import": "suite2p_module('suite2p.detection.anatomical').masks_to_stats",
}
#: what Snakemake's script preamble imports before the script runs (snakemake.script)
PREAMBLE = "import pickle\nfrom snakemake.logging import logger\nfrom snakemake.iocontainers import Snakemake\n"

CHILD = r"""
import sys, time
T_SPAWN = float(sys.argv[1])
{code}
T_READY = time.time()
import json, resource
_ru = resource.getrusage(resource.RUSAGE_SELF)
try:
    from planeflow._s2p_import import is_imported  # a bare package (no __init__ run) is not imported
except ImportError:  # a planeflow from before it existed
    def is_imported(m):
        return m in sys.modules
def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
out = dict(fixed_s=T_READY - T_SPAWN, cpu_s=_ru.ru_utime + _ru.ru_stime, peak_mb=status("VmHWM"),
           anon_mb=status("RssAnon"), modules=[m for m in {heavy!r} if is_imported(m)])
{deferred}
print("RESULT " + json.dumps(out))
"""
DEFERRED_CODE = """
t = time.time()
from planeflow._s2p_import import suite2p_module
{code}
out["deferred_s"] = time.time() - t
out["deferred_peak_mb"] = status("VmHWM")
"""
HEAVY = ("suite2p", "torch", "torchvision", "cellpose", "cellpose.models", "sklearn", "numba", "pynwb",
         "matplotlib")


def script_imports(script: Path) -> str:
    """What a job of ``script`` runs before its step's first line of work: the script's
    top-level imports, in order, then what ``planeflow.steps._job.run_step`` does before
    it calls the step (limit threads, import ``planeflow.steps.<step>``; here 1 thread)."""
    tree = ast.parse(script.read_text(), str(script))
    lines = [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    lines += ["from planeflow.steps._job import limit_threads", "limit_threads(1)",
              f"import planeflow.steps.{script.stem}"]
    try:  # the suite2p names the step calls (its registry record), looked up on first use
        from planeflow.plan.registry import STEPS

        first = [n for n in STEPS[script.stem].suite2p if n not in ("get_pc_metrics", "masks_to_stats")]
    except (ImportError, AttributeError):  # a planeflow from before the registry
        first = []
    if first:
        lines += ["from planeflow import suite2p_api", *(f"suite2p_api.{n}" for n in first)]
    return "\n".join(lines)


def child_code(name: str) -> str:
    if name == "python":
        code, deferred = "", ""
    elif name == "import torch":
        code, deferred = "import torch", ""
    elif name == "import suite2p":
        code, deferred = "import suite2p", ""
    else:
        code = PREAMBLE + script_imports(REPO / "scripts" / f"{name}.py")
        deferred = DEFERRED_CODE.format(code=DEFERRED[name]) if name in DEFERRED else ""
    return CHILD.format(code=code, heavy=HEAVY, deferred=deferred)


def run_once(name: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", child_code(name), repr(t0)], capture_output=True,
                          text=True, env=env, cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        sys.exit(f"{name}: failed ({proc.returncode})\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _timing.add_arguments(ap)
    ap.add_argument("--steps", nargs="*", default=list(STEPS), choices=STEPS)
    ap.add_argument("--json", help="also write the medians to this file")
    a = ap.parse_args()
    _timing.check_arguments(ap, a)
    names = ["python", "import torch", "import suite2p", *a.steps]

    def side(n):
        def once():
            r = run_once(n)
            return r["fixed_s"], r
        return once

    res = _timing.from_args({n: side(n) for n in names}, a)

    def med(n, key):
        vals = [r[key] for r in res.extras[n] if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    base = med("python", "fixed_s")
    print("\n".join(res.header()))
    print(f"job fixed cost: process start to first line of work; median of {2 * a.rounds} runs"
          + (f"   {res.label}" if res.label else ""))
    print(f"{'job':18s} {'fixed s':>8s} {'x python':>8s} {'cpu s':>6s} {'peak MB':>8s} {'anon MB':>8s}  "
          f"{'target':14s} {'met':4s} {'+later s':>8s} {'peak MB':>8s}  imports")
    summary, ok = {}, True
    for n in names:
        fixed, peak, anon, cpu = med(n, "fixed_s"), med(n, "peak_mb"), med(n, "anon_mb"), med(n, "cpu_s")
        later, later_mb = med(n, "deferred_s"), med(n, "deferred_peak_mb")
        target, met = "", ""
        if n in a.steps:
            t_s, t_mb = TORCH_TARGET if n in TORCH_STEPS else OTHER_TARGET
            good = fixed <= t_s and (t_mb is None or peak <= t_mb)
            ok &= good
            target = f"<= {t_s:g} s" + (f", {t_mb} MB" if t_mb else "")
            met = ("yes" if good else "NO") if not res.label else "-"
        mods = res.extras[n][-1]["modules"]
        print(f"{n:18s} {fixed:8.2f} {fixed / base:8.1f} {cpu:6.2f} {peak:8.0f} {anon:8.0f}  {target:14s} {met:4s} "
              + (f"{later:8.2f} {later_mb:8.0f}" if later is not None else f"{'':8s} {'':8s}")
              + f"  {', '.join(mods) or '-'}")
        summary[n] = {"fixed_s": fixed, "ratio_to_python": fixed / base, "cpu_s": cpu, "peak_mb": peak,
                      "anon_mb": anon, "later_s": later, "later_peak_mb": later_mb, "modules": mods,
                      "target": target, "met": met}
    print("fixed s: spawn to first line of work (wall clock; the targets apply to it); cpu s: CPU "
          "time the process used by then (less sensitive to a busy machine); "
          "peak MB: VmHWM then (anon MB: private part, "
          "the rest is shared library pages, more of them right after the environment was installed, "
          "while the page cache still holds the files as written: see docs/performance-jobs.md); "
          "+later: imports the step's default work adds on "
          "first use (see DEFERRED), with the peak after them.")
    print("spread of the fixed cost per job (s): " + "; ".join(
        f"{n} {lo:.2f}-{hi:.2f}" for n in names for lo, hi, _, _ in [res.spread(n)]))
    print(f"all fixed-cost targets: {res.target(ok)}")
    print(res.verdict_line())
    if a.json:
        Path(a.json).write_text(json.dumps({"command": res.command, "date": res.before.when,
                                            "load": [res.before.load[0], res.after.load[0]],
                                            "others_cores": res.others_cores, "rounds": a.rounds,
                                            "label": res.label, "reasons": res.reasons(),
                                            "jobs": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
