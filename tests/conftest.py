"""Shared test helpers: paths, a Snakemake runner and small TIFF writers."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHARED = REPO.parent / "shared"


def write_tiff(path, frames: np.ndarray) -> Path:
    """Write (n, Ly, Lx) frames as an n-page TIFF."""
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, frames, photometric="minisblack", metadata=None)
    return path


def coded_frames(npages: int, Ly: int = 8, Lx: int = 6, start: int = 0) -> np.ndarray:
    """Frames whose every pixel holds the global page index, so order is checkable."""
    idx = np.arange(start, start + npages, dtype=np.int16)
    return np.broadcast_to(idx[:, None, None], (npages, Ly, Lx)).copy()


def make_config(tmp: Path, sessions: list[dict], **extra) -> Path:
    """Write a sessions sheet and a config into ``tmp``; return the config path."""
    cols = ["session_id", "data_path", "nplanes", "fs", "tau", "diameter", "dx", "dy", "dz"]
    lines = ["\t".join(cols)]
    for s in sessions:
        lines.append("\t".join("" if s.get(c) is None else str(s[c]) for c in cols))
    tmp.mkdir(parents=True, exist_ok=True)
    sheet = tmp / "sessions.tsv"
    sheet.write_text("\n".join(lines) + "\n")
    cfg = {"sessions": str(sheet), "results_dir": str(tmp / "results"), **extra}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake(config: Path, *args, workdir: Path | None = None, check: bool = False,
              timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run this repository's workflow with ``config``; Snakemake state lives in ``workdir``."""
    workdir = Path(workdir or Path(config).parent)
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           f"--configfile={config}", *map(str, args)]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def dry_run_jobs(config: Path, *targets, workdir: Path | None = None) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run would schedule."""
    import re

    proc = snakemake(config, "-n", *targets, workdir=workdir)
    if proc.returncode != 0:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-5000:])
    jobs, rule = [], None
    for line in (proc.stdout + proc.stderr).splitlines():
        m = re.match(r"^(?:local)?rule (\w+):", line.strip())
        if m:
            rule = m.group(1)
            jobs.append((rule, {}))
            continue
        m = re.match(r"^wildcards: (.*)$", line.strip())
        if m and rule is not None and jobs:
            jobs[-1] = (jobs[-1][0], dict(kv.split("=", 1) for kv in m.group(1).split(", ")))
    return jobs


@pytest.fixture
def shared_data():
    d = SHARED / "data"
    if not d.is_dir():
        pytest.skip("../shared/data is absent (only the project's own machines have it)")
    return d
