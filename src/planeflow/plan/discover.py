"""Finding the sessions under a folder of raw recordings and drafting the sessions sheet
(``planeflow init``).

Two layouts are recognised:

* NeuroBlueprint (photon-mosaic, datashuttle): ``[project/]rawdata/sub-*/ses-*/funcimg/``;
  one session per ``funcimg`` recording, ``session_id`` = ``<sub>_<ses>``, ``subject_id``
  = the ``sub-*`` folder name.
* Any other tree: one session per folder holding TIFF files (per ScanImage acquisition
  when a folder holds several: ``<name>_<acq>_<file>.tif``), per ``.zarr`` folder and per
  HDF5 file; ``session_id`` from the path below the root.

Every session is inspected with :func:`planeflow.plan.inspect.inspect_session`, the
workflow's own header reading, and the sheet gets the values it found.
"""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from planeflow import PlaneflowError
from planeflow.plan.inspect import inspect_session, neuroblueprint_session_id, safe_session_id
from planeflow.plan.session import ARRAY_SUFFIXES, TIFF_SUFFIXES, natural_key

#: ScanImage file names: <basename>_<acquisition>_<file counter>.tif
_SI_NAME = re.compile(r"^(?P<base>.+)_(?P<acq>\d{5})_(?P<file>\d{5})(?P<ext>\.tiff?)$", re.IGNORECASE)
#: folders never searched: NeuroBlueprint's processed data, planeflow results
_SKIP_DIRS = {"derivatives", "results"}
#: sheet columns init fills from the headers
HEADER_COLUMNS = ("nplanes", "fs", "dx", "dy", "dz")


def _tiff_groups(folder: str, names: list[str]) -> list[tuple[str, str]]:
    """(data_path, label) of the recordings among the TIFFs of one folder."""
    groups: dict[tuple[str, str], str] = {}
    for n in names:
        m = _SI_NAME.match(n)
        if not m:
            return [(folder, "")]
        groups.setdefault((m["base"], m["acq"]), m["ext"])
    if len(groups) <= 1:
        return [(folder, "")]
    return [(os.path.join(glob.escape(folder), f"{glob.escape(base)}_{acq}_*{ext}"), f"{base}_{acq}")
            for (base, acq), ext in sorted(groups.items())]


def find_recordings(folder: str | os.PathLike) -> list[dict]:
    """Recordings under ``folder``: ``{"data_path", "label"}``, ``label`` the path below
    ``folder`` joined by ``_`` ("" for ``folder`` itself)."""
    folder = os.path.abspath(os.fspath(folder))
    out = []
    for d, dirs, files in os.walk(folder):
        rel = os.path.relpath(d, folder)
        parts = [] if rel == "." else rel.split(os.sep)
        keep = []
        for name in sorted(dirs, key=natural_key):
            if name.startswith(".") or name in _SKIP_DIRS:
                continue
            if name.lower().endswith(".zarr"):
                out.append({"data_path": os.path.join(d, name),
                            "label": "_".join(parts + [Path(name).stem])})
            else:
                keep.append(name)
        dirs[:] = keep
        visible = [f for f in files if not f.startswith(".")]
        tiffs = sorted((f for f in visible if f.lower().endswith(TIFF_SUFFIXES)), key=natural_key)
        if tiffs:
            for path, label in _tiff_groups(d, tiffs):
                out.append({"data_path": path, "label": "_".join(p for p in parts + [label] if p)})
        for f in sorted(visible, key=natural_key):
            if f.lower().endswith(ARRAY_SUFFIXES):
                out.append({"data_path": os.path.join(d, f), "label": "_".join(parts + [Path(f).stem])})
    return out


def _neuroblueprint_rawdata(root: Path) -> Path | None:
    if (root / "rawdata").is_dir():
        return root / "rawdata"
    try:
        if any(p.is_dir() and p.name.startswith("sub-") for p in root.iterdir()):
            return root
    except OSError:
        return None
    return None


def find_sessions(root: str | os.PathLike) -> dict:
    """Sessions under ``root``.

    Returns ``{"layout": "neuroblueprint" | "folders", "root", "sessions": [{"session_id",
    "data_path", "subject_id" (NeuroBlueprint only)}], "notes": [str]}``.
    """
    root = Path(os.path.abspath(os.path.expanduser(os.fspath(root))))
    if not root.is_dir():
        raise PlaneflowError(f"'{root}' is not a folder. Give the folder that holds the raw recordings.")
    notes: list[str] = []
    sessions: list[dict] = []
    raw = _neuroblueprint_rawdata(root)
    if raw is not None:
        layout = "neuroblueprint"
        for sub in sorted((p for p in raw.iterdir() if p.is_dir() and p.name.startswith("sub-")),
                          key=lambda p: natural_key(p.name)):
            for ses in sorted((p for p in sub.iterdir() if p.is_dir() and p.name.startswith("ses-")),
                              key=lambda p: natural_key(p.name)):
                func = ses / "funcimg"
                recs = find_recordings(func) if func.is_dir() else []
                if not recs:
                    notes.append(f"{sub.name}/{ses.name}: no recording in funcimg/ (skipped)")
                for rec in recs:
                    sid = neuroblueprint_session_id(sub.name, ses.name)
                    if len(recs) > 1 and rec["label"]:
                        sid = safe_session_id(f"{sid}_{rec['label']}")
                    sessions.append({"session_id": sid, "data_path": rec["data_path"],
                                     "subject_id": sub.name})
    else:
        layout = "folders"
        for rec in find_recordings(root):
            sessions.append({"session_id": safe_session_id(rec["label"] or root.name),
                             "data_path": rec["data_path"]})
    seen: dict[str, int] = {}
    for s in sessions:  # two recordings whose names clean up alike
        n = seen.get(s["session_id"], 0)
        seen[s["session_id"]] = n + 1
        if n:
            s["session_id"] = f"{s['session_id']}-{n + 1}"
    if not sessions:
        what = ("no sub-*/ses-*/funcimg/ folder with recordings" if layout == "neuroblueprint"
                else "no TIFF file, .zarr folder or HDF5 file")
        raise PlaneflowError(f"found {what} under '{root}'. Point planeflow init at the folder that "
                             "holds the recordings (or at a NeuroBlueprint project with rawdata/).")
    return {"layout": layout, "root": str(raw if raw is not None else root), "sessions": sessions,
            "notes": notes}


def new_sheet_columns(nwb_enabled: bool, with_subject: bool) -> list[str]:
    """Columns of a new sheet, in the order of the sessions schema (the one home of the
    columns): every processing column, and the NWB columns a run needs when the NWB
    export is on (``subject_id`` also when the folder names give it)."""
    from planeflow.plan.config import sheet_columns
    from planeflow.plan.nwb_meta import REQUIRED

    nwb = sheet_columns(nwb=True)
    return [c for c in sheet_columns() if c not in nwb or (nwb_enabled and c in REQUIRED)
            or (with_subject and c == "subject_id")]


def _cell(v) -> str:
    if v is None:
        return ""
    # 15 digits: 0.75, not the 0.7500000000000001 of a header's float arithmetic
    return f"{v:.15g}" if isinstance(v, float) else str(v)


def draft_sheet(root: str | os.PathLike, acquisition: dict | None = None,
                nwb: dict | None = None) -> dict:
    """Find and inspect the sessions under ``root``; the sheet's columns, rows and what is
    still to fill in.

    ``acquisition`` / ``nwb``: the config's sections. Returns ``{"layout", "root",
    "notes", "columns", "rows" (dicts), "reports" (session_id -> inspect report),
    "to_fill" ({column: {"why", "required", "sessions"}})}``.
    """
    from planeflow.plan.config import load_schema, with_defaults
    from planeflow.plan.nwb_meta import mode, resolve_metadata

    found = find_sessions(root)
    nwb = with_defaults("nwb_export", nwb)
    nwb_on = mode(nwb) != "off"
    nwb_required = mode(nwb) == "on"  # auto: a session without them gets no NWB file
    with_subject = any("subject_id" in s for s in found["sessions"])
    columns = new_sheet_columns(nwb_on, with_subject)
    described = load_schema("sessions.schema.yaml")["properties"]
    rows, reports, to_fill = [], {}, {}

    def need(col, why, required, sid):
        entry = to_fill.setdefault(col, {"why": why, "required": required, "sessions": []})
        entry["sessions"].append(sid)

    for s in found["sessions"]:
        sid = s["session_id"]
        try:
            rep = inspect_session(s["data_path"], session_id=sid, acquisition=acquisition)
        except PlaneflowError as e:
            rep = {"problems": [str(e)], "missing": []}
        reports[sid] = rep
        row = {c: None for c in columns}
        row.update(session_id=sid, data_path=s["data_path"])
        if "subject_id" in columns:
            row["subject_id"] = s.get("subject_id")
        for c in HEADER_COLUMNS:
            if c in columns:
                row[c] = rep.get(c)
        rows.append(row)
        for m in rep.get("missing") or []:
            need(m["column"], m["why"], m["required"], sid)
        if nwb_on:
            _, missing, _ = resolve_metadata(sid, row, nwb.get("metadata") or {})
            for c in missing:
                desc = (described.get(c) or {}).get("description")
                need(c, "NWB export" + (f": {desc}" if desc else ""), nwb_required, sid)
    return {**found, "columns": columns, "rows": rows, "reports": reports, "to_fill": to_fill}


def sheet_text(columns: list[str], rows: list[dict]) -> str:
    lines = ["\t".join(columns)]
    lines += ["\t".join(_cell(r.get(c)) for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


def write_sheet(path: str | os.PathLike, columns: list[str], rows: list[dict], force: bool = False) -> None:
    """Write the sheet atomically; refuse to replace an existing one unless ``force``."""
    from planeflow.io.atomic import save_text

    refuse_existing(path, force)
    save_text(path, sheet_text(columns, rows))


def refuse_existing(path: str | os.PathLike, force: bool = False) -> None:
    """Stop when the sheet ``path`` exists and ``force`` is not given."""
    if os.path.exists(path) and not force:
        raise PlaneflowError(
            f"the sessions sheet '{path}' already exists; nothing was written. Pass --force to "
            "replace it, or --sheet NEW.tsv to write another one (and set 'sessions: NEW.tsv' "
            "in the config).")
