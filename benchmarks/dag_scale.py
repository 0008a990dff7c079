"""DAG scale: time of `snakemake -n` and `planeflow status` for many sessions x planes.

Makes N small synthetic sessions (tiny frames: only the number of planes matters for
the DAG), builds their metadata caches with one dry run, then times, in rounds of A B C C B A
(benchmarks/_timing.py):

- A, a cached dry run (what every later `snakemake` call pays; target 30 s for 100 sessions
  x 30 planes, issue 22),
- B, Snakemake's own floor: a minimal workflow with as many jobs,
- C, `planeflow status` on a finished results tree of the same sessions (every output, log
  and benchmark the config's jobs leave, as tests/test_status.py's build_tree writes them;
  empty files: status only lists folders and reads logs; target 5 s),

and prints the medians, their spread, the ratio of the dry run to the floor and the verdicts.

SLURM's client tools: the SLURM executor plugin (installed with planeflow) runs
`scontrol show config` whenever Snakemake builds its command line, i.e. for every
`snakemake` call, also a dry run without the cluster profile. Where the tools are installed
but no controller answers (a stopped test cluster), that waits ~9 s; a machine without SLURM
does not pay it, and a cluster whose controller answers pays milliseconds. So, as
benchmarks/end_to_end.py does, the tools are hidden from both Snakemake sides then (and the
output says so).

    python benchmarks/dag_scale.py [--sessions 100] [--planes 30] [--out /tmp/planeflow-dag] [--rounds 3] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
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
sys.path.insert(0, str(REPO / "src"))
#: issue 22: a dry run of 100 sessions x 30 planes in 30 s, `planeflow status` on it in 5 s
TARGET_S = 30.0
STATUS_TARGET_S = 5.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=100)
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
    env = _timing.slurm_tools_hidden(out)
    if env is not None:
        print(f"SLURM tools installed but no controller answers: hidden from both snakemake sides "
              f"({env['PATH'].split(os.pathsep)[0]})")
    t0 = time.perf_counter()
    first = subprocess.run(cmd, capture_output=True, text=True, env=env)
    t_first = time.perf_counter() - t0
    if first.returncode:
        print(first.stdout[-2000:], first.stderr[-3000:])
        return 1
    floor_cmd = floor_workflow(out, a.sessions, a.planes)
    status_cmd, jobs = status_tree(out, [f"s{s:03d}" for s in range(a.sessions)])

    def timed(c, env=None):
        def once():
            t0 = time.perf_counter()
            proc = subprocess.run(c, capture_output=True, text=True, env=env)
            dt = time.perf_counter() - t0
            if proc.returncode and not (c is status_cmd and proc.returncode == 2):
                sys.exit(proc.stdout[-2000:] + proc.stderr[-2000:])
            return dt
        return once

    res = _timing.from_args({"planeflow": timed(cmd, env), "floor": timed(floor_cmd, env),
                             "status": timed(status_cmd)}, a)
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
    t_status = res.median("status")
    print(res.side_line("status", "planeflow status", width=28)
          + f"   target {STATUS_TARGET_S:.0f} s ({res.target(t_status <= STATUS_TARGET_S)})")
    print(f"  (status: a finished tree of the same {a.sessions} sessions, {n_files(out)} files; "
          "the command as a user types it, Python's start included)")
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


def status_tree(out: Path, sessions: list[str]) -> tuple[list[str], int]:
    """A finished results tree of ``sessions`` (their metadata.json from the dry run, every
    output, log and benchmark of their jobs under the default config, logs ending with
    planeflow's done line), the `planeflow status` command that reads it, and the number of
    jobs of the dry run (the registry's, plus the target rule)."""
    from planeflow.plan.config import deep_merge, load_schema, schema_defaults
    from planeflow.plan.layout import Layout

    tree = out / "status-results"
    config = deep_merge(schema_defaults(load_schema("config.schema.yaml")), {"results_dir": str(tree)})
    (out / "status-config.yaml").write_text(yaml.safe_dump({"sessions": str(out / "sessions.tsv"),
                                                            "results_dir": str(tree)}))
    cmd = [str(Path(sys.executable).parent / "planeflow"), "status", str(tree),
           "--config", str(out / "status-config.yaml"), "--directory", str(out)]
    from planeflow.synth.results_tree import write_finished_session

    from planeflow.plan.registry import session_jobs

    src, jobs = Layout(out / "results"), 1  # and the target rule, all
    for sid in sessions:
        meta = json.loads(Path(src.metadata(sid)).read_text())
        jobs += len(session_jobs(meta, config))
        if not os.path.isfile(Layout(tree).metadata(sid)):  # else written by an earlier run
            write_finished_session(tree, meta, config)
    return cmd, jobs


def n_files(out: Path) -> int:
    return sum(len(f) for _, _, f in os.walk(out / "status-results"))


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
