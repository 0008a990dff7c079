"""Running a step inside a Snakemake job: logging to the rule's log, thread limits,
and one clear error line for bad input."""
from __future__ import annotations

import logging
import os
import sys
import time
import traceback

from planeflow import PlaneflowError

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def limit_threads(n: int) -> None:
    """Keep numpy/numba/torch to the threads Snakemake gave the job (set before they import)."""
    for var in THREAD_VARS:
        os.environ[var] = str(max(1, int(n)))


def setup_logging(logfile: str | None) -> logging.Logger:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s")
    handlers = [logging.StreamHandler(sys.stderr)]
    if logfile:
        os.makedirs(os.path.dirname(os.path.abspath(logfile)), exist_ok=True)
        handlers.append(logging.FileHandler(logfile, mode="w"))
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    logging.getLogger("suite2p").setLevel(logging.INFO)
    return logging.getLogger("planeflow")


def run_job(snakemake, fn) -> None:
    """Call ``fn()`` with logging set up from the ``snakemake`` object of a script job.

    A :class:`PlaneflowError` ends the job with exit code 1 and its message as the
    last log line; any other exception is logged with its traceback.
    """
    log = setup_logging(snakemake.log[0] if len(snakemake.log) else None)
    where = f"rule {snakemake.rule}, " + ", ".join(f"{k}={v}" for k, v in snakemake.wildcards.items())
    t0 = time.time()
    log.info("start %s (threads=%s)", where, snakemake.threads)
    try:
        fn()
    except PlaneflowError as e:
        log.error("%s", e)
        sys.exit(1)
    except Exception:  # noqa: BLE001
        log.error("%s failed:\n%s", where, traceback.format_exc())
        sys.exit(1)
    log.info("done %s in %.1f s", where, time.time() - t0)


def named(files) -> dict:
    """A Snakemake input/output/params list as a plain dict of its named entries."""
    return {k: files[k] for k in files.keys()}


def run_step(snakemake, step: str, arguments) -> None:
    """The one way a script runs its step: ``planeflow.steps.<step>.<step>(**arguments(snakemake))``.

    Threads are limited to the job's before the step module (and numpy, torch, suite2p)
    is imported; logging goes to the rule's log; a :class:`PlaneflowError` ends the job
    with its one-line message. Settings that change results reach the step through the
    rule's ``params`` (a change reruns the step); settings of how to run it (torch device,
    chunk sizes, raw_compress deletion) are read from ``snakemake.config`` so that changing
    them reruns nothing.
    """
    import importlib

    limit_threads(snakemake.threads)

    def call():
        module = importlib.import_module(f"planeflow.steps.{step}")
        return getattr(module, step)(**arguments(snakemake))

    run_job(snakemake, call)
