"""NWB export metadata: the subject and session description of each session.

Runs when Snakemake builds the DAG (only the standard library is imported here), so
that a session lacking what an NWB file needs stops the workflow before any job
starts. Values come from the sessions sheet (one column per key) and, where a cell is
empty, from the config's ``nwb_export.metadata`` defaults. The writer itself is
:mod:`planeflow.steps.nwb_export`.
"""
from __future__ import annotations

import datetime as _dt
import math
import re
import uuid

from planeflow import PlaneflowError
from planeflow.plan.config import sheet_columns

#: keys every exported session needs, from the sheet or the config
REQUIRED = ("session_start_time", "subject_id", "species", "sex", "age", "indicator", "location")

SEXES = ("M", "F", "U", "O")

_NUM = r"\d+(?:\.\d+)?"
_DURATION = re.compile(
    rf"P(?!$)(?:{_NUM}Y)?(?:{_NUM}M)?(?:{_NUM}W)?(?:{_NUM}D)?(?:T(?=\d)(?:{_NUM}H)?(?:{_NUM}M)?(?:{_NUM}S)?)?")
_SPECIES = re.compile(r"[A-Z][a-z]+ [a-z]+|http://purl\.obolibrary\.org/obo/NCBITaxon_\d+")

#: namespace of the identifiers derived for sessions without an ``identifier``
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://planeflow/nwb_export")


def _is_age(text: str) -> bool:
    """ISO 8601 duration (P90D, P12W, P2Y6M), or a range 'P80D/P100D' or 'P80D/'."""
    lo, sep, hi = text.partition("/")
    if not _DURATION.fullmatch(lo):
        return False
    return not sep or hi == "" or bool(_DURATION.fullmatch(hi))


def _start_time(value, now: _dt.datetime) -> tuple[str | None, str | None]:
    """(ISO 8601 text, problem) for a session_start_time cell or config value."""
    if isinstance(value, _dt.datetime):
        t = value
    elif isinstance(value, _dt.date):
        return None, (f"session_start_time {value.isoformat()} is a date without a time and timezone; "
                      "write it as e.g. 2024-05-01T10:30:00+02:00")
    else:
        text = str(value).strip()
        try:
            t = _dt.datetime.fromisoformat(text)
        except ValueError:
            return None, (f"session_start_time '{text}' is not an ISO 8601 date and time; write it "
                          "as e.g. 2024-05-01T10:30:00+02:00")
    if t.tzinfo is None or t.utcoffset() is None:
        return None, (f"session_start_time '{t.isoformat()}' has no timezone; add the UTC offset, "
                      f"e.g. {t.replace(microsecond=0).isoformat()}+02:00 (or Z for UTC)")
    if t > now:
        return None, f"session_start_time '{t.isoformat()}' is in the future"
    return t.isoformat(), None


def resolve_metadata(session_id: str, row: dict, defaults: dict | None = None,
                     now: _dt.datetime | None = None) -> tuple[dict, list[str], list[str]]:
    """NWB metadata of one session: sheet cell, else config default, else None.

    Returns ``(metadata, missing, problems)``: the values (plain JSON types, the start
    time as ISO 8601 text, the identifier derived when not given), the required keys
    that have no value, and descriptions of values in the wrong form.
    """
    defaults = defaults or {}
    now = now or _dt.datetime.now(_dt.timezone.utc)
    meta = {}
    columns = sheet_columns(nwb=True)
    for key, _typ in columns.items():
        v = row.get(key)
        if v is None or (isinstance(v, str) and not v.strip()):
            v = defaults.get(key)
        if isinstance(v, str):
            v = v.strip() or None
        meta[key] = v
    missing = [k for k in REQUIRED if meta[k] is None]
    problems = []
    if meta["session_start_time"] is not None:
        meta["session_start_time"], problem = _start_time(meta["session_start_time"], now)
        if problem:
            problems.append(problem)
    for key in columns:
        if columns[key] is str and meta[key] is not None and not isinstance(meta[key], str):
            meta[key] = str(meta[key])
    if meta["sex"] is not None and meta["sex"] not in SEXES:
        problems.append(f"sex '{meta['sex']}' must be one of M (male), F (female), U (unknown), O (other)")
    if meta["age"] is not None and not _is_age(meta["age"]):
        problems.append(f"age '{meta['age']}' is not an ISO 8601 duration such as P90D (90 days), "
                        "P12W or P2Y; a range is written P80D/P100D")
    if meta["species"] is not None and not _SPECIES.fullmatch(meta["species"]):
        problems.append(f"species '{meta['species']}' must be a Latin binomial such as 'Mus musculus' or "
                        "an NCBI taxonomy link such as http://purl.obolibrary.org/obo/NCBITaxon_10090")
    if meta["subject_id"] is not None and "/" in meta["subject_id"]:
        problems.append(f"subject_id '{meta['subject_id']}' must not contain '/'")
    for key in ("excitation_lambda", "emission_lambda"):
        v = meta[key]
        if v is None:
            continue
        try:
            v = float(v)
        except (TypeError, ValueError):
            problems.append(f"{key} '{v}' is not a number (wavelength in nm)")
            continue
        if not math.isfinite(v) or v < 100:
            problems.append(f"{key} {v} is not a wavelength in nm (e.g. 920 for two-photon GCaMP excitation)")
        meta[key] = v
    if meta["identifier"] is None and not missing and not problems:
        meta["identifier"] = str(uuid.uuid5(
            _ID_NAMESPACE, f"{session_id}|{meta['subject_id']}|{meta['session_start_time']}"))
    return meta, missing, problems


def mode(nwb_config: dict) -> str:
    """``nwb_export.enabled`` as "auto", "on" or "off" (YAML and --config spellings alike)."""
    value = (nwb_config or {}).get("enabled", "auto")
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    return "auto" if value == "auto" else "on" if value is True else "off"


def resolve_sessions(rows: dict, nwb_config: dict, now: _dt.datetime | None = None):
    """Every session's NWB metadata: (``{session: metadata}`` of those that are complete and
    valid, ``{session: [what is wrong, ...]}`` of the others)."""
    defaults = (nwb_config or {}).get("metadata") or {}
    ready, wrong = {}, {}
    for sid, row in rows.items():
        meta, missing, problems = resolve_metadata(sid, row, defaults, now)
        lines = ([f"missing {', '.join(missing)}"] if missing else []) + list(problems)
        if lines:
            wrong[sid] = lines
        else:
            ready[sid] = meta
    return ready, wrong


def skipped_warning(wrong: dict, sheet: str) -> str:
    """The one warning of nwb_export.enabled: auto about the sessions it leaves out: sessions
    missing the same columns share one entry naming at most three of them (every parse prints
    it, every cluster job's log too, so it stays short at a hundred sessions)."""
    groups: dict = {}
    for sid, lines in wrong.items():
        groups.setdefault(tuple(lines), []).append(sid)
    parts = "; ".join(f"{', '.join(ids[:3])}{f' and {len(ids) - 3} more' if len(ids) > 3 else ''}: {', '.join(lines)}"
                      for lines, ids in groups.items())
    return (f"no NWB file for {len(wrong)} session(s) (nwb_export.enabled: auto), their metadata is "
            f"incomplete: {parts}. Add the columns to '{sheet}' or set nwb_export.metadata to export them.")


def sessions_to_export(config: dict) -> set:
    """The sessions whose NWB file the default target makes under ``config`` (read from its
    sessions sheet; cached per sheet and settings): all with ``enabled: true``, those with
    complete metadata with ``auto``, none with ``false``."""
    nwb = config.get("nwb_export") or {}
    if mode(nwb) == "off":
        return set()
    import json
    import os

    sheet = config.get("sessions") or ""
    try:
        stamp = os.stat(sheet).st_mtime_ns
    except OSError:
        return set()
    key = (sheet, stamp, mode(nwb), json.dumps(nwb.get("metadata") or {}, sort_keys=True, default=str))
    if key not in _EXPORTED:
        from planeflow.plan.config import read_sessions

        rows = {r["session_id"]: r for r in read_sessions(sheet)}
        _EXPORTED[key] = set(rows) if mode(nwb) == "on" else set(resolve_sessions(rows, nwb)[0])
    return _EXPORTED[key]


_EXPORTED: dict = {}


def check_sessions(rows: dict, nwb_config: dict, sheet: str, now: _dt.datetime | None = None) -> dict:
    """Resolve every session's NWB metadata; one PlaneflowError listing all that is wrong.

    ``rows``: session_id -> sheet row; ``nwb_config``: the config's ``nwb_export`` section.
    """
    defaults = (nwb_config or {}).get("metadata") or {}
    out, lines, all_missing, any_problem = {}, [], set(), False
    for sid, row in rows.items():
        meta, missing, problems = resolve_metadata(sid, row, defaults, now)
        out[sid] = meta
        if missing:
            lines.append(f"session '{sid}': missing {', '.join(missing)}")
            all_missing.update(missing)
        lines += [f"session '{sid}': {p}" for p in problems]
        any_problem = any_problem or bool(problems)
    if lines:
        hint = []
        if all_missing:
            cols = [k for k in REQUIRED if k in all_missing]
            hint.append(f"Add the column(s) {', '.join(cols)} to the sessions sheet '{sheet}' (one value "
                        "per session), or set a value for all sessions under nwb_export.metadata in the "
                        "config.")
        if any_problem:
            hint.append(f"Correct the values in the sessions sheet '{sheet}' or under "
                        "nwb_export.metadata in the config.")
        hint.append("To export only the sessions whose metadata is complete, set nwb_export: {enabled: auto}; "
                    "to skip the NWB export, set nwb_export: {enabled: false}.")
        raise PlaneflowError(
            "NWB export (nwb_export.enabled) cannot describe these sessions:\n  " + "\n  ".join(lines)
            + "\n" + " ".join(hint))
    return out


# ---- rule nwb_export: params from the cached session metadata ----


def job_session(meta: dict) -> dict:
    """What the writer needs to know of the session (a rule param: a change reruns the export)."""
    keys = ("session_id", "fs", "dx", "dy", "dz", "nplanes", "planes", "plane_shape")
    return {**{k: meta[k] for k in keys},
            "parts": [{"part": q["part"], "shape": q["shape"], "offset": q["offset"]} for q in meta["parts"]]}
