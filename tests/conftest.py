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
    cols = ["session_id", "data_path", "nplanes", "fs", "tau", "diameter", "dx", "dy", "dz", "offsets"]
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


#: suite2p settings for small synthetic planes (see tests/test_workflow.py for why)
SMALL_S2P = {"torch_device": "cpu", "diameter": [10, 10], "tau": 1.0,
             "registration": {"block_size": [64, 64]},
             "detection": {"sparsery_settings": {"spatial_scale": 2}}}


@pytest.fixture(scope="session")
def finished_session(tmp_path_factory):
    """One small session (2 planes x 128 x 128 px x 500 frames) run through the whole
    workflow once per test session, for tests that read finished outputs.

    Returns a dict: tmp (folder), cfg (config path), res (results/<session>), sim
    (ground truth from simulate_session), session (its id), console (what the run printed:
    Snakemake's stdout and stderr). Tests may add targets
    (with extra config files on top of ``cfg``) but must not change what exists.
    """
    from planeflow.synth.simulate import simulate_session

    tmp = tmp_path_factory.mktemp("finished")
    sim = simulate_session(tmp / "raw", nplanes=2, nframes=500, Ly=128, Lx=128, diameter=10,
                           fs=15.0, tau=1.0, nfiles=1, seed=11, name="fin")
    cfg = make_config(tmp, [{"session_id": "fin", "data_path": str(tmp / "raw"), "nplanes": 2,
                             "fs": 15.0, "dx": 1.5, "dy": 1.5, "dz": 15.0}], suite2p=SMALL_S2P)
    proc = snakemake(cfg, check=True)
    return {"tmp": tmp, "cfg": cfg, "res": tmp / "results" / "fin", "sim": sim, "session": "fin",
            "console": proc.stdout + proc.stderr}


PLANE_LY = PLANE_LX = 128
NFRAMES_RAW = 120


@pytest.fixture(scope="session")
def raw_plane(tmp_path_factory):
    """One plane's binary_write outputs (noise frames with a bright square that moves)."""
    from planeflow.plan import session as ps
    from planeflow.steps.binary_write import binary_write

    tmp = tmp_path_factory.mktemp("raw_plane")
    rng = np.random.default_rng(0)
    frames = rng.poisson(20, (NFRAMES_RAW, PLANE_LY, PLANE_LX)).astype(np.int16)
    for t in range(NFRAMES_RAW):
        y = 40 + t % 3
        frames[t, y:y + 20, 50:70] += 200
    write_tiff(tmp / "raw" / "a.tif", frames)
    ps.session_metadata({"session_id": "s", "data_path": str(tmp / "raw"), "nplanes": 1, "fs": 10.0},
                        str(tmp / "res"))
    d = tmp / "bw"
    binary_write(str(tmp / "res" / "s" / "metadata.json"), 0, 0, str(d / "data_raw.bin"), str(d / "ops.npy"))
    return d


def run_s2p_direct(data_path, nplanes: int, overrides: dict, save_path, **db_extra) -> Path:
    """suite2p.run_s2p on ``data_path`` with suite2p's defaults plus ``overrides`` (merged by
    planeflow's own suite2p_settings, as planeflow's jobs do); returns its suite2p folder."""
    import suite2p

    from planeflow.plan.config import suite2p_settings

    settings = suite2p_settings(overrides)
    db = {"data_path": [str(data_path)], "nplanes": nplanes, "save_path0": str(save_path), **db_extra}
    suite2p.run_s2p(db=db, settings=settings)
    return Path(save_path) / "suite2p"


def assert_plane_parity(ours: Path, ref: Path) -> None:
    """A planeflow plane folder gives what suite2p's own pipeline gives: the same ROIs
    (count, centres within 1 px), the same traces (correlation > 0.999), the same classification."""
    stat = np.load(ours / "stat.npy", allow_pickle=True)
    stat_ref = np.load(ref / "stat.npy", allow_pickle=True)
    assert len(stat) == len(stat_ref), (ours, len(stat), len(stat_ref))
    if len(stat):
        med = np.array([s["med"] for s in stat])
        med_ref = np.array([s["med"] for s in stat_ref])
        assert np.abs(med - med_ref).max() <= 1.0, ours
    for a, b in zip(np.load(ours / "F.npy"), np.load(ref / "F.npy")):
        assert np.corrcoef(a, b)[0, 1] > 0.999, ours
    assert np.array_equal(np.load(ours / "iscell.npy")[:, 0], np.load(ref / "iscell.npy")[:, 0]), ours
