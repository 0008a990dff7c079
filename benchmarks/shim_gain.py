"""What planeflow._s2p_import's third-party shims (scipy.signal, torchvision) save per job.

Times a job's imports (``planeflow.steps.<step>`` and the suite2p names its record in the step
registry says it calls) in fresh interpreters, with the shims (as the jobs run) and without them (the
scipy.signal and torchvision entries taken out of BARE_PACKAGES and LAZY_MODULES), in
alternation A B B A, and prints the median of each side, the spread and the saving.
The shims stay while the saving is >= 0.5 s per job (issue 20).

    python benchmarks/shim_gain.py [--rounds 3] [--steps registration detection]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

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
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", nargs="+", default=["registration", "detection"])
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    for step in args.steps:
        once(step, False)  # warm the page cache
        with_, without = [], []
        for _ in range(args.rounds):  # A B B A
            with_.append(once(step, False))
            without += [once(step, True), once(step, True)]
            with_.append(once(step, False))
        a, b = statistics.median(with_), statistics.median(without)
        print(f"{step}: imports with shims {a:.2f} s (range {min(with_):.2f}-{max(with_):.2f}), "
              f"without {b:.2f} s (range {min(without):.2f}-{max(without):.2f}); saving {b - a:.2f} s "
              f"per job, ratio {b / a:.2f}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
