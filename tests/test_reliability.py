"""Faults: a blank plane, a second run on the same folder, a job killed mid-write."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import BIN, REPO, make_config, snakemake

S2P = {"torch_device": "cpu", "diameter": [10, 10], "registration": {"block_size": [64, 64]}}


@pytest.mark.workflow
def test_blank_plane_completes_and_a_second_run_is_refused(tmp_path):
    import tifffile

    from planeflow.synth.simulate import simulate_session

    sim = simulate_session(tmp_path / "sim", nplanes=2, nframes=300, cells_per_plane=12, seed=4)
    with tifffile.TiffFile(sim["files"][0]) as t:
        pages = t.asarray()
    pages[1::2] = np.random.default_rng(0).poisson(100, pages[1::2].shape)  # plane 1: no cells
    (tmp_path / "raw").mkdir()
    tifffile.imwrite(tmp_path / "raw" / "b.tif", pages)
    cfg = make_config(tmp_path, [{"session_id": "b", "data_path": str(tmp_path / "raw"), "nplanes": 2,
                                  "fs": 15.0}], suite2p=S2P)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    first = subprocess.Popen([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                              f"--configfile={cfg}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=env)
    logs = tmp_path / "results" / "b" / "logs"
    deadline = time.time() + 120
    while not logs.exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.2)
    second = snakemake(cfg)
    out1, _ = first.communicate(timeout=900)
    assert second.returncode != 0
    assert "lock" in (second.stdout + second.stderr).lower()
    assert first.returncode == 0, out1[-3000:]
    plane1 = tmp_path / "results" / "b" / "suite2p" / "plane1"
    assert len(np.load(plane1 / "stat.npy", allow_pickle=True)) == 0
    assert np.load(plane1 / "F.npy").shape == (0, 300)
    assert np.load(plane1 / "iscell.npy").shape == (0, 2)
    assert "no ROI" in (logs / "detection" / "plane1_part0.log").read_text()
    assert len(np.load(tmp_path / "results" / "b" / "suite2p" / "plane0" / "stat.npy", allow_pickle=True)) > 0
    rows = (tmp_path / "results" / "b" / "volume_stats" / "planes.tsv").read_text().splitlines()
    assert rows[2].split("\t")[:2] == ["1", "0"]


def test_killed_binary_write_leaves_no_output(tmp_path):
    """SIGKILL in the middle of writing: no file under the final name, nothing a later step trusts."""
    from planeflow.plan import session as ps

    from conftest import coded_frames, write_tiff

    write_tiff(tmp_path / "raw" / "a.tif", coded_frames(3 * 4000, Ly=64, Lx=64))
    ps.session_metadata({"session_id": "s", "data_path": str(tmp_path / "raw"), "nplanes": 3, "fs": 5.0},
                        str(tmp_path / "res"))
    out = tmp_path / "out"
    code = ("import time, planeflow.io.raw as r\n"
            "orig = r.TiffPlaneReader.iter_frames\n"
            "def slow(self, *a, **k):\n"
            "    for x in orig(self, *a, **k):\n"
            "        yield x; time.sleep(0.2)\n"
            "r.TiffPlaneReader.iter_frames = slow\n"
            "from planeflow.steps.binary_write import binary_write\n"
            f"binary_write({str(tmp_path / 'res' / 's' / 'metadata.json')!r}, 0, 0, "
            f"{str(out / 'data_raw.bin')!r}, {str(out / 'ops.npy')!r}, chunk_frames=50)\n")
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.glob(".data_raw.bin.*")):
        time.sleep(0.05)
    time.sleep(0.5)
    assert list(out.glob(".data_raw.bin.*")), "the job never started writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "data_raw.bin").exists() and not (out / "ops.npy").exists()
    # a rerun replaces the stale temporary file and finishes
    from planeflow.steps.binary_write import binary_write

    binary_write(str(tmp_path / "res" / "s" / "metadata.json"), 0, 0, str(out / "data_raw.bin"),
                 str(out / "ops.npy"), chunk_frames=500)
    assert (out / "data_raw.bin").stat().st_size == 4000 * 64 * 64 * 2
    assert sorted(p.name for p in out.iterdir()) == ["data_raw.bin", "ops.npy"]


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs root and mount permission; skipped otherwise)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    ok = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True).returncode == 0
    if not ok:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount permission)")
    yield mnt
    subprocess.run(["umount", str(mnt)], capture_output=True)


def test_disk_full_during_binary_write(tmp_path, small_disk):
    from planeflow import PlaneflowError
    from planeflow.plan import session as ps
    from planeflow.steps.binary_write import binary_write

    from conftest import coded_frames, write_tiff

    write_tiff(tmp_path / "raw" / "a.tif", coded_frames(2 * 300, Ly=64, Lx=64))  # 2.4 MB per plane
    ps.session_metadata({"session_id": "s", "data_path": str(tmp_path / "raw"), "nplanes": 2, "fs": 5.0},
                        str(tmp_path / "res"))
    out = small_disk / "binary_write"
    with pytest.raises(PlaneflowError, match="disk full while writing .*data_raw.bin"):
        binary_write(str(tmp_path / "res" / "s" / "metadata.json"), 0, 0, str(out / "data_raw.bin"),
                     str(out / "ops.npy"), chunk_frames=50)
    assert list(out.iterdir()) == [], "no partial binary may be left for later steps"
