"""Config and sessions-sheet loading, validation, and suite2p settings assembly.

Everything here runs at DAG-build time except :func:`suite2p_settings`, which
imports suite2p and is called inside jobs.
"""
from __future__ import annotations

import copy
import csv
import os
from pathlib import Path

from planeflow import PlaneflowError
from planeflow.plan.nwb_meta import SHEET_COLUMNS as NWB_SHEET_COLUMNS


#: sheet columns and how to read them; everything but the first two is optional
SHEET_COLUMNS = {
    "session_id": str,
    "data_path": str,
    "nplanes": int,
    "fs": float,
    "tau": float,
    "diameter": float,
    "dx": float,
    "dy": float,
    "dz": float,
    **NWB_SHEET_COLUMNS,  # subject/session metadata for the NWB export (planeflow.plan.nwb_meta)
}


def _load_yaml(path: Path) -> dict:
    import yaml

    with open(path) as fh:
        return yaml.safe_load(fh)


def load_schema(name: str, schema_dir: str | Path) -> dict:
    """A schema of the workflow's ``workflow/schemas`` folder (``schema_dir``)."""
    return _load_yaml(Path(schema_dir) / name)


def _format_error(err, where: str) -> str:
    loc = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    return f"{where}: setting '{loc}': {err.message}"


def validate(instance: dict, schema: dict, where: str) -> None:
    """Validate against a JSON schema; raise one PlaneflowError naming the setting."""
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    errors = sorted(cls(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        msgs = [_format_error(e, where) for e in errors[:5]]
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise PlaneflowError("invalid configuration:\n  " + "\n  ".join(msgs) + more)


def read_sessions(path: str) -> list[dict]:
    """Read the tab-separated sessions sheet into a list of typed dicts.

    Empty cells become ``None``. Lines starting with ``#`` are comments.
    """
    if not os.path.isfile(path):
        raise PlaneflowError(
            f"sessions sheet '{path}' not found. Set 'sessions:' in config/config.yaml to a "
            "tab-separated file with columns session_id and data_path."
        )
    with open(path, newline="") as fh:
        lines = [ln for ln in fh if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.DictReader(lines, delimiter="\t")
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in ("session_id", "data_path") if c not in header]
    if missing:
        raise PlaneflowError(
            f"sessions sheet '{path}': missing column(s) {', '.join(missing)}. The first line "
            "must be a tab-separated header, e.g. 'session_id<TAB>data_path<TAB>nplanes<TAB>fs'."
        )
    unknown = [c for c in header if c not in SHEET_COLUMNS]
    if unknown:
        raise PlaneflowError(
            f"sessions sheet '{path}': unknown column(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(SHEET_COLUMNS)}."
        )
    rows, seen = [], set()
    for lineno, raw in enumerate(reader, start=2):
        row = {}
        for k, v in raw.items():
            k = (k or "").strip()
            if k not in SHEET_COLUMNS:
                raise PlaneflowError(f"sessions sheet '{path}', row {lineno}: more cells than columns.")
            v = (v or "").strip()
            if v == "" or v.upper() == "NA":
                row[k] = None
                continue
            try:
                row[k] = SHEET_COLUMNS[k](v)
            except ValueError:
                raise PlaneflowError(
                    f"sessions sheet '{path}', row {lineno}, column {k}: '{v}' is not a "
                    f"{SHEET_COLUMNS[k].__name__}."
                ) from None
        sid = row.get("session_id")
        if sid in seen:
            raise PlaneflowError(f"sessions sheet '{path}': session_id '{sid}' appears twice.")
        seen.add(sid)
        rows.append(row)
    if not rows:
        raise PlaneflowError(f"sessions sheet '{path}' lists no session.")
    return rows


def validate_sessions(rows: list[dict], path: str, schema: dict) -> None:
    for i, row in enumerate(rows, start=2):
        clean = {k: v for k, v in row.items() if v is not None}
        validate(clean, schema, f"sessions sheet '{path}', row {i}")


def deep_merge(base: dict, override: dict) -> dict:
    """Nested dict merge; ``override`` wins. Neither input is modified."""
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def torch_device(config: dict) -> str:
    """Device for the torch steps: cuda when ``gpu.enabled``, else ``suite2p.torch_device``.

    Not part of any rule's params: switching device does not rerun finished planes.
    """
    if (config.get("gpu") or {}).get("enabled"):
        return "cuda"
    return (config.get("suite2p") or {}).get("torch_device", "cpu")


def session_overrides(config: dict, meta: dict, row: dict) -> dict:
    """The suite2p settings a session changes from suite2p's defaults.

    Config's ``suite2p:`` section first, then the session's own fs/tau/diameter.
    Plain data (no suite2p import), so it can be a rule's ``params`` and a change
    reruns exactly the steps that use it.
    """
    s = copy.deepcopy(config.get("suite2p") or {})
    s["fs"] = float(meta["fs"])
    if row.get("tau") is not None:
        s["tau"] = float(row["tau"])
    if row.get("diameter") is not None:
        s["diameter"] = [float(row["diameter"])] * 2
    return s


#: which suite2p settings each step uses. A rule's ``params`` hold only these, so
#: changing a detection setting reruns detection and what follows, not registration.
STEP_SETTINGS = {
    "registration": ("registration", "run.do_registration", "run.do_regmetrics"),
    "detection": ("fs", "tau", "diameter", "detection", "classification", "extraction",
                  "dcnv_preprocess", "run.do_detection", "run.do_deconvolution"),
}


def step_overrides(overrides: dict, step: str) -> dict:
    """The part of ``overrides`` that ``step`` uses (see STEP_SETTINGS)."""
    out: dict = {}
    for key in STEP_SETTINGS[step]:
        head, _, sub = key.partition(".")
        if head not in overrides:
            continue
        if sub:
            if isinstance(overrides[head], dict) and sub in overrides[head]:
                out.setdefault(head, {})[sub] = copy.deepcopy(overrides[head][sub])
        else:
            out[head] = copy.deepcopy(overrides[head])
    return out


def suite2p_settings(overrides: dict, base: dict | None = None, torch_device: str | None = None) -> dict:
    """suite2p 1.x settings at job time.

    ``base`` is the settings a previous step used (taken from its ops) or, when None,
    ``suite2p.default_settings()``; ``overrides`` are merged on top after their keys
    are checked against suite2p's own settings.
    """
    import numpy as np
    from suite2p import default_settings

    defaults = default_settings()
    _check_keys(overrides, defaults, "suite2p")
    if base is not None:
        base = {k: base[k] for k in defaults if k in base}
    settings = deep_merge(deep_merge(defaults, base or {}), overrides)
    if torch_device is not None:
        settings["torch_device"] = torch_device
    d = settings.get("diameter")
    if not isinstance(d, (list, tuple, np.ndarray)):
        settings["diameter"] = [float(d), float(d)]
    return settings


def _check_keys(override: dict, defaults: dict, where: str) -> None:
    for k, v in override.items():
        if k not in defaults:
            raise PlaneflowError(
                f"config setting '{where}.{k}' is not a suite2p {_s2p_version()} setting. "
                "Check its spelling and nesting against suite2p.default_settings()."
            )
        if isinstance(v, dict) and isinstance(defaults[k], dict):
            _check_keys(v, defaults[k], f"{where}.{k}")


def _s2p_version() -> str:
    from planeflow.io.history import suite2p_version

    return suite2p_version()
