"""DAG scale: time of `snakemake -n` for many sessions x planes with cached metadata.

Makes N small synthetic sessions (tiny frames: only the number of planes matters for
the DAG), builds their metadata caches with one dry run, then times a cached dry run (what
every later `snakemake` call pays) against Snakemake's own floor, a minimal workflow with
as many jobs, in rounds of A B B A (benchmarks/_timing.py), and prints the medians, their
spread, the ratio to the floor and the verdict on the 15 s target.

    python benchmarks/dag_scale.py [--sessions 50] [--planes 30] [--out /tmp/planeflow-dag] [--rounds 3] [--quick]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 15.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--planes", type=int, default=30)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--out", default="/tmp/planeflow-dag")
    _timing.add_arguments(ap)
    a = ap.parse_args()
    _timing.check_arguments(ap, a)
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
    jobs = a.sessions * (5 * a.planes + 1) + 1
    floor_cmd = floor_workflow(out, a.sessions, a.planes)

    def timed(c):
        def once():
            t0 = time.perf_counter()
            proc = subprocess.run(c, capture_output=True, text=True)
            dt = time.perf_counter() - t0
            if proc.returncode:
                sys.exit(proc.stderr[-2000:])
            return dt
        return once

    res = _timing.from_args({"planeflow": timed(cmd), "floor": timed(floor_cmd)}, a)
    t_cached = res.median("planeflow")
    print("\n".join(res.header()))
    print(f"sessions={a.sessions} planes={a.planes} jobs={jobs}")
    print(f"dry run, metadata not cached: {t_first:.1f} s (one run)")
    print(res.side_line("planeflow", "dry run, metadata cached", width=28)
          + f"   target {TARGET_S:.0f} s ({res.target(t_cached <= TARGET_S)})")
    print(res.side_line("floor", "Snakemake's own floor", width=28))
    print("  (floor: a minimal workflow with as many jobs, 5 chained rules, one input and one output each, "
          "with log and benchmark)")
    print(res.ratio_line("planeflow", "floor", "ratio planeflow / floor"))
    print(res.verdict_line())
    return 0


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


def floor_workflow(out: Path, sessions: int, planes: int) -> list[str]:
    """The `snakemake -n` command of a minimal workflow with the same number of jobs: what
    Snakemake itself needs, whatever the workflow."""
    d = out / "floor"
    d.mkdir(parents=True, exist_ok=True)
    (d / "Snakefile").write_text(FLOOR_SNAKEFILE.format(sessions=sessions, planes=planes))
    return [str(Path(sys.executable).parent / "snakemake"), "-s", str(d / "Snakefile"), "-d", str(d),
            "-n", "--quiet", "all", "--cores", "1"]


if __name__ == "__main__":
    sys.exit(main())
