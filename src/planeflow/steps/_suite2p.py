"""What every suite2p step does first: settings, input checks, the torch device.

Importing this module imports torch: a job script imports it after
:func:`planeflow.steps._job.limit_threads`. suite2p modules come from
:mod:`planeflow.suite2p_api` (suite2p's names, each imported on first use).
"""
from __future__ import annotations

import logging
import os

import torch

from planeflow import suite2p_api as s2p
from planeflow.io.planefiles import check_binary, load_ops
from planeflow.plan.config import suite2p_settings

log = logging.getLogger("planeflow")


def get_device(settings: dict, threads: int | None = None):
    """The torch device from settings['torch_device'], falling back to CPU with a warning."""
    if threads:
        torch.set_num_threads(int(threads))
    name = settings.get("torch_device", "cpu")
    if name != "cpu":
        try:
            dev = torch.device(name)
            torch.zeros(1).to(dev)
            return dev
        except Exception:  # noqa: BLE001
            log.warning("torch device '%s' is not available here; running on CPU", name)
    return torch.device("cpu")


#: RuntimeErrors that torch raises inside suite2p because of the plane's data (frames too
#: small for suite2p's blocks), not because of the machine
DATA_RUNTIME_ERRORS = ("Input and output sizes should be greater than 0",)


def is_plane_failure(e: BaseException) -> bool:
    """Whether an error raised by suite2p on a plane is one planeflow recognises as the plane's
    own (the plane is then marked failed and the session goes on): the value, index and
    division errors of degenerate data, torch's linear-algebra failures, and the RuntimeErrors
    of :data:`DATA_RUNTIME_ERRORS`. Anything else, out-of-memory and device (CUDA) errors
    above all, fails the job, so that Snakemake retries it with more memory
    (planeflow.plan.resources grows with the attempt)."""
    if isinstance(e, (MemoryError, torch.OutOfMemoryError)):
        return False
    if isinstance(e, (ValueError, IndexError, ZeroDivisionError, torch.linalg.LinAlgError)):
        return True
    return isinstance(e, RuntimeError) and any(m in str(e) for m in DATA_RUNTIME_ERRORS)


def select_classifier(settings: dict):
    """The classifier file suite2p's own pipeline would use, with the same precedence."""
    path = settings["classification"].get("classifier_path")
    if path and os.path.exists(path):
        return path
    if settings["classification"]["use_builtin_classifier"] or not s2p.user_classfile.is_file():
        return s2p.builtin_classfile
    return s2p.user_classfile


def prepare_suite2p_step(in_ops, in_bin, overrides: dict, torch_device: str, threads: int):
    """Common start of the suite2p steps: the previous step's ops, the step's suite2p
    settings on top of those ops' settings, a size check of the input binary, the device."""
    ops = load_ops(in_ops)
    settings = suite2p_settings(overrides, base=ops, torch_device=torch_device)
    check_binary(in_bin, ops["nframes"], ops["Ly"], ops["Lx"])
    return ops, settings, get_device(settings, threads)
