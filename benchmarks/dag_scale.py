"""DAG scale: time of `snakemake -n` for many sessions x planes with cached metadata.

Makes N small synthetic sessions (tiny frames: only the number of planes matters for
the DAG), builds their metadata caches with one dry run, then times a second dry run
(what every later `snakemake` call pays) three times and prints the median and its
ratio to the 15 s target.

    python benchmarks/dag_scale.py [--sessions 50] [--planes 30] [--out /tmp/planeflow-dag]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tifffile
import yaml

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 15.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--planes", type=int, default=30)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--out", default="/tmp/planeflow-dag")
    ap.add_argument("--repeat", type=int, default=3, help="cached dry runs timed (median printed)")
    a = ap.parse_args()
    out = Path(a.out)
    raw = out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    pages = np.zeros((a.planes * a.frames, 16, 16), np.int16)
    rows = ["session_id\tdata_path\tnplanes\tfs"]
    for s in range(a.sessions):
        f = raw / f"s{s:03d}.tif"
        if not f.exists():
            tifffile.imwrite(f, pages)
        rows.append(f"s{s:03d}\t{f}\t{a.planes}\t10")
    (out / "sessions.tsv").write_text("\n".join(rows) + "\n")
    (out / "config.yaml").write_text(yaml.safe_dump({"sessions": str(out / "sessions.tsv"),
                                                     "results_dir": str(out / "results")}))
    cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(out),
           f"--configfile={out / 'config.yaml'}", "-n", "--quiet", "all"]
    t0 = time.perf_counter()
    first = subprocess.run(cmd, capture_output=True, text=True)
    t_first = time.perf_counter() - t0
    if first.returncode:
        print(first.stdout[-2000:], first.stderr[-3000:])
        return 1
    times = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        second = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
    t_cached = float(np.median(times))
    jobs = a.sessions * (5 * a.planes + 1) + 1
    t_floor = floor_time(out, a.sessions, a.planes, a.repeat)
    print(f"sessions={a.sessions} planes={a.planes} jobs={jobs}")
    print(f"dry run, metadata not cached: {t_first:.1f} s")
    print(f"dry run, metadata cached:     {t_cached:.1f} s (median of {a.repeat}: "
          f"{', '.join(f'{t:.1f}' for t in times)})   target {TARGET_S:.0f} s   "
          f"ratio {t_cached / TARGET_S:.2f} ({'meets' if t_cached <= TARGET_S else 'misses'} target)")
    print(f"Snakemake's own floor for as many jobs (5 chained rules, one input and one output "
          f"each, with log and benchmark): {t_floor:.1f} s")
    return 0 if second.returncode == 0 else 1


FLOOR_SNAKEFILE = """
S = [f"s{{i:03d}}" for i in range({sessions})]
rule all:
    input: expand("r/{{s}}/merge/p{{p}}.txt", s=S, p=range({planes}))
for i, (a, b) in enumerate(zip(["in", "bw", "reg", "det", "pp"], ["bw", "reg", "det", "pp", "merge"])):
    rule:
        name: f"step{{i}}"
        input: [] if a == "in" else f"r/{{{{s}}}}/{{a}}/p{{{{p}}}}.txt"
        output: f"r/{{{{s}}}}/{{b}}/p{{{{p}}}}.txt"
        log: f"r/{{{{s}}}}/logs/{{b}}/p{{{{p}}}}.log"
        benchmark: f"r/{{{{s}}}}/bench/{{b}}/p{{{{p}}}}.tsv"
        shell: "touch {{output}}"
"""


def floor_time(out: Path, sessions: int, planes: int, repeat: int) -> float:
    """Median time of `snakemake -n` on a minimal workflow with the same number of jobs:
    what Snakemake itself needs, whatever the workflow."""
    d = out / "floor"
    d.mkdir(parents=True, exist_ok=True)
    (d / "Snakefile").write_text(FLOOR_SNAKEFILE.format(sessions=sessions, planes=planes))
    cmd = [str(Path(sys.executable).parent / "snakemake"), "-s", str(d / "Snakefile"), "-d", str(d),
           "-n", "--quiet", "all", "--cores", "1"]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode:
            sys.exit(proc.stderr[-2000:])
    return float(np.median(times))


if __name__ == "__main__":
    sys.exit(main())
