"""Running a step inside a Snakemake job: logging to the rule's log, a quiet console,
thread limits, and one clear error line for bad input.

The console (the terminal Snakemake runs in) gets only planeflow's own one-line
messages: the job's start and end, planeflow warnings, and on failure the error with
the path of the job's log. Everything else a job produces goes to its log file only:
every logger's records (suite2p's progress, cellpose's "Could not import CPDINO, run
pip install ..." notice), Python warnings (torch's UserWarnings on non-writable arrays
and sparse tensors, tifffile's), and whatever libraries print or write to the standard
streams, from Python or from C: file descriptors 1 and 2 are pointed at the log file.

Call :func:`start_job` at the top of a script, before importing anything that may
print; :func:`run_job` calls it too (once per process).
"""
from __future__ import annotations

import logging
import os
import sys
import time
import traceback

from planeflow import PlaneflowError

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")
#: ``extra`` of the job wrapper's start/done lines, the INFO records shown on the console
_ON_CONSOLE = {"console": True}
_FILE_FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"

_started: dict = {}


def limit_threads(n: int) -> None:
    """Keep numpy/numba/torch to the threads Snakemake gave the job (set before they import)."""
    for var in THREAD_VARS:
        os.environ[var] = str(max(1, int(n)))


class _ConsoleFilter(logging.Filter):
    """planeflow's own records: the job's start/done lines (``extra={"console": True}``)
    and warnings/errors; never one marked ``extra={"console": False}`` (a traceback) nor
    a third-party one."""

    def filter(self, record: logging.LogRecord) -> bool:
        shown = getattr(record, "console", None)
        if shown is not None:
            return shown
        own = record.name == "planeflow" or record.name.startswith("planeflow.")
        return own and record.levelno >= logging.WARNING


class _ConsoleFormatter(logging.Formatter):
    def __init__(self, logfile: str | None):
        super().__init__()
        self.logfile = logfile

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"planeflow: error: {msg}" + (f" (log: {self.logfile})" if self.logfile else "")
        if record.levelno >= logging.WARNING:
            return f"planeflow: warning: {msg}"
        return f"planeflow: {msg}"


def _streams_to(logfile: str):
    """Point file descriptors 1 and 2 at ``logfile`` (appending); return a text stream
    on the original stderr, for the console."""
    console = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except (OSError, ValueError):
            pass
    fd = os.open(logfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    return console


def setup_logging(logfile: str | None) -> logging.Logger:
    """Log every record to ``logfile`` and only planeflow's own lines to the console.

    Without a log file everything goes to stderr, as plain Python would.
    """
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_planeflow", False)]:
        root.removeHandler(h)
        h.close()
    root.setLevel(logging.INFO)
    if logfile:
        logfile = os.path.abspath(logfile)
        os.makedirs(os.path.dirname(logfile), exist_ok=True)
        open(logfile, "w").close()  # a fresh log per attempt; all writers append below
        console = logging.StreamHandler(_streams_to(logfile))
        console.addFilter(_ConsoleFilter())
        console.setFormatter(_ConsoleFormatter(logfile))
        to_file = logging.FileHandler(logfile, mode="a", encoding="utf-8")
        to_file.setFormatter(logging.Formatter(_FILE_FORMAT))
        handlers = [console, to_file]
    else:
        plain = logging.StreamHandler(sys.stderr)
        plain.setFormatter(logging.Formatter(_FILE_FORMAT))
        handlers = [plain]
    for h in handlers:
        h._planeflow = True
        root.addHandler(h)
    logging.captureWarnings(True)  # warnings.warn -> logger "py.warnings" -> the log file
    logging.getLogger("suite2p").setLevel(logging.INFO)
    return logging.getLogger("planeflow")


def _logfile(snakemake) -> str | None:
    return os.path.abspath(snakemake.log[0]) if len(snakemake.log) else None


def start_job(snakemake) -> logging.Logger:
    """Limit threads and set up the job's logging (see the module doc); once per process.

    Call it before importing libraries that print on import (suite2p, cellpose, torch).
    """
    if not _started:
        limit_threads(snakemake.threads)
        setup_logging(_logfile(snakemake))
        _started["at"] = time.time()
    return logging.getLogger("planeflow")


def run_job(snakemake, fn) -> None:
    """Call ``fn()`` with logging set up from the ``snakemake`` object of a script job.

    A :class:`PlaneflowError` ends the job with exit code 1 and its message as the
    last log line (and on the console, with the log's path); any other exception is
    logged with its traceback (the console gets its one-line summary).
    """
    log = start_job(snakemake)
    where = f"rule {snakemake.rule}, " + ", ".join(f"{k}={v}" for k, v in snakemake.wildcards.items())
    t0 = time.time()
    log.info("start %s (threads=%s)", where, snakemake.threads, extra=_ON_CONSOLE)
    try:
        fn()
    except PlaneflowError as e:
        log.error("%s: %s", where, e)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001
        log.error("%s failed: %s: %s", where, type(e).__name__, e)
        log.error("%s", traceback.format_exc(), extra={"console": False})
        sys.exit(1)
    log.info("%s", resource_summary())  # the log file only
    log.info("done %s in %.1f s", where, time.time() - t0, extra=_ON_CONSOLE)


def named(files) -> dict:
    """A Snakemake input/output/params list as a plain dict of its named entries."""
    return {k: files[k] for k in files.keys()}


def run_step(snakemake, step: str, arguments) -> None:
    """The one way a script runs its step: ``planeflow.steps.<step>.<step>(**arguments(snakemake))``.

    Threads are limited to the job's, and the job's output is sent to its log (see the
    module doc), before the step module (and numpy, torch, suite2p) is imported; a
    :class:`PlaneflowError` ends the job with its one-line message. Settings that change
    results reach the step through the rule's ``params`` (a change reruns the step);
    settings of how to run it (torch device, chunk sizes, raw_compress deletion) are read
    from ``snakemake.config`` so that changing them reruns nothing.
    """
    import importlib

    start_job(snakemake)

    def call():
        module = importlib.import_module(f"planeflow.steps.{step}")
        # the job's fixed cost: everything up to here is paid before any work
        logging.getLogger("planeflow").info("work starts %s", startup_summary())
        return getattr(module, step)(**arguments(snakemake))

    run_job(snakemake, call)
    if in_snakemake_script():
        end_process()


#: set to 1 to let a job's Python shut down as usual (module teardown) instead of ending at once
SLOW_EXIT_VAR = "PLANEFLOW_SLOW_EXIT"


def in_snakemake_script() -> bool:
    """Whether this process is a Snakemake script job: Snakemake writes the script, with its
    preamble, to ``.snakemake/scripts/tmp*.py`` and runs it as ``python <that file>``."""
    here = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else ""
    return (os.path.basename(here) == "scripts" and os.path.basename(os.path.dirname(here)) == ".snakemake"
            and os.environ.get(SLOW_EXIT_VAR, "") in ("", "0"))


def end_process(code: int = 0) -> None:
    """End a finished job's process now: flush the log and the standard streams, then
    ``os._exit``. Python's own shutdown (tearing down torch, numba, scikit-learn and every
    module, freeing the last arrays) took 0.6 s of every registration job and 0.95 s of every
    detection job after its last line (docs/performance-jobs.md); the job's outputs are
    written and closed by then, and a script job runs nothing after the script. Not done
    when ``PLANEFLOW_SLOW_EXIT=1``."""
    logging.shutdown()  # flushes and closes the log's handlers
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/stat") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB). Linux: VmHWM, which starts anew
    at exec (ru_maxrss keeps the peak of the forking process, e.g. Snakemake's)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def startup_summary() -> str:
    """The job's fixed cost so far: time since the process started and memory, for the log."""
    age = process_age()
    peak_mb = peak_rss_mb()
    return f"{'?' if age is None else f'{age:.1f}'} s and {peak_mb:.0f} MB after process start"


def resource_summary() -> str:
    """Peak memory of this process and which of the registry's HEAVY_PACKAGES it imported, for the log."""
    from planeflow._s2p_import import is_imported

    peak_mb = peak_rss_mb()
    # the large packages a job should import only when it uses them (the step registry's): imported
    # here, once the step module is, so that a job that needs no registry does not pay for it before
    from planeflow.plan.registry import HEAVY_PACKAGES

    heavy = [p for p in HEAVY_PACKAGES if is_imported(p)]
    return f"peak RSS {peak_mb:.0f} MB; imported {', '.join(heavy) or 'none'} (of {', '.join(HEAVY_PACKAGES)})"
