"""Binary write against the disk: how close `binary_write` comes to a plain read of the file.

Writes a multi-page TIFF of at least 2 GB (interleaved planes, as ScanImage saves them),
then in one run, in rounds of A B B A (benchmarks/_timing.py):
  A. reads it sequentially in 16 MB blocks (the disk's speed for this file);
  B. runs `binary_write` for every plane through Snakemake with the local profile (timed from
     the first job's start to the last one's end, from their logs);
and prints both throughputs and their ratio (target >= 0.7). The page cache is dropped
before each when this machine allows it (root), otherwise both are measured warm and the
output says so. Then it runs binary_write on a movie half as long and compares the
peak RSS of one job (Snakemake's max_rss): it must not grow with movie length and must
stay under 1 GiB.

    python benchmarks/binary_write.py [--planes 4] [--size 512] [--frames 1000] [--rounds 3] [--quick]
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from planeflow.plan.layout import Layout

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _timing  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET_RATIO, TARGET_RSS_MB = 0.7, 1024


def make_tiff(path: Path, planes: int, frames: int, size: int) -> None:
    """Interleaved planes, frames written page by page (never the whole movie in memory)."""
    import tifffile

    if path.exists():
        return
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2000, (planes, size, size), dtype=np.int16)
    noise = rng.integers(0, 200, (16, size, size), dtype=np.int16)

    def pages():
        for t in range(frames):
            for p in range(planes):
                yield base[p] + noise[(t + p) % 16]

    tmp = path.with_suffix(".tmp.tif")
    tifffile.imwrite(tmp, pages(), shape=(frames * planes, size, size), dtype=np.int16,
                     bigtiff=True, photometric="minisblack", metadata=None)
    os.replace(tmp, path)


def drop_caches() -> bool:
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("1\n")
        return True
    except OSError:
        return False


def sequential_read(path: Path, block: int = 16 << 20) -> float:
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while fh.read(block):
            pass
    return time.perf_counter() - t0


def run_binary_write(work: Path, tif: Path, planes: int) -> tuple[float, list[dict], float]:
    """Snakemake `--until binary_write` on one session; (wall s, benchmark rows per job, job span s)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "sessions.tsv").write_text(f"session_id\tdata_path\tnplanes\tfs\nb\t{tif}\t{planes}\t10\n")
    (work / "config.yaml").write_text(yaml.safe_dump({"sessions": str(work / "sessions.tsv"),
                                                      "results_dir": str(work / "results")}))
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(work),
           f"--configfile={work / 'config.yaml'}", "--until", "binary_write"]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    dry = subprocess.run(cmd + ["-n"], capture_output=True, text=True, env=env)  # caches metadata
    if dry.returncode:
        sys.exit(dry.stderr[-3000:])
    drop_caches()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(proc.stderr[-3000:])
    rows = []
    lay = Layout(work / "results")
    for f in sorted(Path(lay.benchmark("binary_write", "b", 0, 0)).parent.glob("*.tsv")):
        with open(f) as fh:
            rows.append(next(csv.DictReader(fh, delimiter="\t")))
    return wall, rows, job_span(Path(lay.log("binary_write", "b", 0, 0)).parent)


def job_span(log_dir: Path) -> float:
    """Seconds from the first binary_write job's start to the last one's end (from the
    timestamps of their logs): the conversion itself, without Snakemake's start-up."""
    from datetime import datetime

    stamps = []
    for f in log_dir.glob("*.log"):
        for line in f.read_text().splitlines():
            if " planeflow: start rule " in line or " planeflow: done rule " in line:
                stamps.append(datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f"))
    return (max(stamps) - min(stamps)).total_seconds()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--planes", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=1000, help="frames per plane of the long movie")
    ap.add_argument("--out", default="/tmp/planeflow-bench-bw")
    _timing.add_arguments(ap)
    a = ap.parse_args()
    _timing.check_arguments(ap, a)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    long_tif = out / f"long_{a.planes}x{a.size}x{a.frames}.tif"
    short_tif = out / f"short_{a.planes}x{a.size}x{a.frames // 2}.tif"
    make_tiff(long_tif, a.planes, a.frames, a.size)
    make_tiff(short_tif, a.planes, a.frames // 2, a.size)
    size_mb = long_tif.stat().st_size / 1e6
    cold = drop_caches()

    def read():
        drop_caches()
        return sequential_read(long_tif)

    def write():
        wall, rows, span = run_binary_write(out / "work_long", long_tif, a.planes)  # drops the cache itself
        return span, (wall, rows)

    res = _timing.from_args({"sequential read": read, "binary_write": write}, a)
    t_read, t_jobs = res.median("sequential read"), res.median("binary_write")
    t_wall = float(np.median([w for w, _ in res.extras["binary_write"]]))
    rows = res.extras["binary_write"][-1][1]
    _, rows_short, _ = run_binary_write(out / "work_short", short_tif, a.planes)

    rss_long = max(float(r["max_rss"]) for r in rows)
    rss_short = max(float(r["max_rss"]) for r in rows_short)
    ratio, _, _ = res.ratio("sequential read", "binary_write")  # throughput ratio: read time / write time
    ratio_wall = t_read / t_wall
    cache = "page cache dropped before each" if cold else "warm page cache (cannot drop caches here)"
    print("\n".join(res.header()))
    print(f"file: {size_mb / 1e3:.2f} GB TIFF, {a.planes} planes x {a.size}x{a.size} px x {a.frames} frames; "
          f"{cache}")
    print(f"sequential read:  {size_mb / t_read:7.0f} MB/s   " + res.side_line("sequential read", "time"))
    print(f"binary_write:     {size_mb / t_jobs:7.0f} MB/s   " + res.side_line("binary_write", "time")
          + f"   ({len(rows)} jobs, first start to last end; whole snakemake call {t_wall:.1f} s, median)")
    print(res.ratio_line("sequential read", "binary_write",
                         "ratio binary_write / sequential read throughput (= read time / write time)")
          + f"   target >= {TARGET_RATIO}   ({res.target(ratio >= TARGET_RATIO)}); "
          f"including Snakemake's start-up: {ratio_wall:.2f}")
    print(f"peak RSS of one binary_write job: {rss_long:.0f} MB ({a.frames} frames), "
          f"{rss_short:.0f} MB ({a.frames // 2} frames); growth x{rss_long / rss_short:.2f}   "
          f"target < {TARGET_RSS_MB} MB and flat "
          f"({'meets' if rss_long < TARGET_RSS_MB and rss_long < 1.2 * rss_short else 'misses'} target; "
          "memory, not time: the load does not change it)")
    print(res.verdict_line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
