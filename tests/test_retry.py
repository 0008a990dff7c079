"""Failures that retry (issue 20, item 3): only the suite2p failures planeflow recognises mark
a plane failed; an out-of-memory or device error fails the job, leaves no output behind, and
so Snakemake retries it with the attempt-scaled memory of planeflow.plan.resources."""
from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import NFRAMES_RAW as NFRAMES
from conftest import PLANE_LX as LX
from conftest import PLANE_LY as LY

S2P = {"torch_device": "cpu", "registration": {"block_size": [64, 64]}}


def _run(raw_plane, out):
    from planeflow.steps.registration import registration

    return registration(str(raw_plane / "ops.npy"), str(raw_plane / "data_raw.bin"), str(out / "data.bin"),
                        str(out / "ops.npy"), S2P)


@pytest.mark.parametrize("error", ["oom", "cuda", "cpu_alloc"])
def test_machine_errors_fail_the_job_and_leave_nothing(raw_plane, tmp_path, monkeypatch, error):
    import torch

    from planeflow import suite2p_api as s2p

    exc = {"oom": torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
           "cuda": RuntimeError("CUDA error: an illegal memory access was encountered"),
           "cpu_alloc": RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                                     "can't allocate memory: you tried to allocate 4294967296 bytes")}[error]

    def fails(*a, **k):
        raise exc

    monkeypatch.setattr(s2p, "registration_wrapper", fails)
    with pytest.raises(type(exc)):
        _run(raw_plane, tmp_path)
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "ops.npy").exists()
    assert not list(tmp_path.iterdir())  # no temporary file either


def test_a_recognised_suite2p_failure_marks_the_plane(raw_plane, tmp_path, monkeypatch):
    from planeflow import suite2p_api as s2p

    def fails(*a, **k):
        raise ValueError("zero-size array to reduction operation maximum which has no identity")

    monkeypatch.setattr(s2p, "registration_wrapper", fails)
    out = _run(raw_plane, tmp_path)
    assert out["plane_failure"]["step"] == "registration"
    assert "ValueError" in out["plane_failure"]["reason"]
    assert (tmp_path / "data.bin").stat().st_size == NFRAMES * LY * LX * 2


def test_is_plane_failure():
    import torch

    from planeflow.steps._suite2p import is_plane_failure

    assert is_plane_failure(ValueError("x")) and is_plane_failure(IndexError("x"))
    assert is_plane_failure(torch.linalg.LinAlgError("linalg.svd: failed to converge"))
    assert is_plane_failure(RuntimeError("Input and output sizes should be greater than 0, but got input"))
    assert not is_plane_failure(RuntimeError("CUDA error: device-side assert triggered"))
    assert not is_plane_failure(torch.OutOfMemoryError("CUDA out of memory"))
    assert not is_plane_failure(MemoryError())


def test_a_real_memory_cap_fails_the_job(raw_plane, tmp_path):
    """The registration under an address-space cap just above what its imports use: the job
    exits non-zero with the allocation error (not a plane marked failed) and writes nothing;
    the same call without the cap (the retry's larger request) succeeds."""
    code = f"""
import resource, sys
from planeflow.steps.registration import registration
from planeflow import suite2p_api as s2p
import torch, numpy, scipy.signal, scipy.linalg, scipy.ndimage
for name in (*s2p.PUBLIC, *s2p.PRIVATE):  # every module a job may import, before the cap
    getattr(s2p, name)
with open('/proc/self/status') as fh:
    vm = next(int(l.split()[1]) for l in fh if l.startswith('VmSize:')) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 40 * 2**20, resource.RLIM_INFINITY))
registration({str(raw_plane / 'ops.npy')!r}, {str(raw_plane / 'data_raw.bin')!r},
             {str(tmp_path / 'data.bin')!r}, {str(tmp_path / 'ops.npy')!r}, {S2P!r})
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "MemoryError" in last or "allocate" in last, proc.stderr[-2000:]
    assert not (tmp_path / "data.bin").exists() and not (tmp_path / "ops.npy").exists()
    out = _run(raw_plane, tmp_path)
    assert "plane_failure" not in out and (tmp_path / "data.bin").exists()
