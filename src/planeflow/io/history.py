"""``processing_history``: the append-only log of steps kept inside ``ops``.

Each entry follows the LBM-Suite2p-Python metadata reference: step name, ISO
timestamp, planeflow and suite2p versions, input files, duration in seconds and a
dict of step-specific extras.
"""
from __future__ import annotations

import datetime as _dt
import os
from importlib import metadata as _md

from planeflow import __version__


def suite2p_version() -> str:
    try:
        return _md.version("suite2p")
    except _md.PackageNotFoundError:  # pragma: no cover - suite2p is a dependency
        return "unknown"


def history_entry(step: str, inputs, duration: float, extra: dict | None = None) -> dict:
    return {
        "step": step,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "planeflow_version": __version__,
        "suite2p_version": suite2p_version(),
        "inputs": [os.fspath(p) for p in inputs],
        "duration": float(duration),
        "extra": dict(extra or {}),
    }


def append_history(ops: dict, step: str, inputs, duration: float, extra: dict | None = None) -> dict:
    """Return a copy of ``ops`` with one more ``processing_history`` entry.

    The input dict is not modified: steps never edit what they read.
    """
    out = dict(ops)
    out["processing_history"] = list(ops.get("processing_history", [])) + [
        history_entry(step, inputs, duration, extra)
    ]
    return out
