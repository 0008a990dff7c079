"""What planeflow._s2p_import's third-party shims (scipy.signal, torchvision) save per job.

Times a job's imports (``planeflow.steps.<step>`` and the suite2p names its record in the step
registry says it calls) in fresh interpreters, with the shims (as the jobs run) and without them (the
scipy.signal and torchvision entries taken out of BARE_PACKAGES and LAZY_MODULES), in
rounds of A B B A (benchmarks/_timing.py), and prints the median of each side, the spread and the
saving. The shims stay while the saving is >= 0.5 s per job (issue 20).

    python benchmarks/shim_gain.py [--rounds 3] [--steps registration detection] [--quick]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing  # noqa: E402

TARGET_S = 0.5  # saving per job that keeps the shims

CODE = """
import time
t0 = time.perf_counter()
import planeflow._s2p_import as m
if {off}:
    third = ("scipy", "torchvision")
    m.BARE_PACKAGES = tuple(p for p in m.BARE_PACKAGES if not p.startswith(third))
    m.LAZY_MODULES = tuple(p for p in m.LAZY_MODULES if not p.startswith(third))
import planeflow.steps.{step}
from planeflow import suite2p_api
from planeflow.plan.registry import STEPS
for name in STEPS["{step}"].suite2p:  # the suite2p names the step calls, looked up as its work does
    if name != "get_pc_metrics":  # registration metrics (scikit-learn): only from 1500 frames
        getattr(suite2p_api, name)
print(time.perf_counter() - t0)
"""


def once(step: str, off: bool) -> float:
    out = subprocess.run([sys.executable, "-c", CODE.format(step=step, off=off)], capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    _timing.add_arguments(ap)
    ap.add_argument("--steps", nargs="+", default=["registration", "detection"])
    args = ap.parse_args()
    _timing.check_arguments(ap, args)
    for step in args.steps:
        once(step, False)  # warm the page cache
        res = _timing.from_args({"with shims": lambda s=step: once(s, False),
                                 "without": lambda s=step: once(s, True)}, args)
        print("\n".join(res.header()))
        print(f"{step}: a job's imports plus the suite2p names it calls")
        for n in res.names:
            print("  " + res.side_line(n, width=12))
        saving = res.median("without") - res.median("with shims")
        lows = [b - a for a, b in zip(res.round_means("with shims"), res.round_means("without"))]
        print(f"  saving {saving:.2f} s per job (per round {min(lows):.2f}-{max(lows):.2f})   target >= {TARGET_S} s "
              f"({res.target(saving >= TARGET_S)})")
        print("  " + res.ratio_line("without", "with shims", "ratio without / with"))
        print(res.verdict_line())


if __name__ == "__main__":
    main()
