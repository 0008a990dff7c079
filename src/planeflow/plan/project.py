"""The project a config describes (its sessions and what runs for each), checked as a whole.

:func:`load` is what the Snakefile runs at parse time. It finds every problem of the config,
the sessions sheet and each session's raw files before it stops, so that a new user fixes
them in one go rather than one per run: each is one line that names the setting, or the
sheet's row, session and column, or the session and its file. It stays cheap: only headers
and each session's cached ``metadata.json`` are read, never frames.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from planeflow import PlaneflowError
from planeflow.io.atomic import save_json
from planeflow.plan import config as pfconfig
from planeflow.plan import nwb_meta
from planeflow.plan.layout import Layout

#: a subject_id that can name its results folder and a Snakemake wildcard
SUBJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Project:
    """What the workflow knows of a project once its config and sheet are checked."""

    layout: Layout
    #: session_id -> sessions sheet row
    rows: dict
    #: session_id -> session metadata (:func:`planeflow.plan.session.session_metadata`)
    meta: dict
    #: nwb_export.enabled as "on", "auto" or "off", and the NWB metadata of the sessions exported
    nwb_mode: str
    nwb_meta: dict
    #: session_id -> fixed plane offsets (:func:`planeflow.plan.config.volume_offsets`)
    volume_offsets: dict
    #: session_id -> whether crosstalk is subtracted / motion shared (the registry's answer)
    crosstalk_subtract: dict
    shared_motion: dict
    #: subject_id -> its sessions (sheet order) whose subject's steps run (tracking)
    subjects: dict = field(default_factory=dict)
    #: what the run goes on despite, one line each
    warnings: list = field(default_factory=list)


def _collect(problems: list, fn: Callable, *args):
    """``fn(*args)``, or None with its PlaneflowError noted in ``problems``."""
    try:
        return fn(*args)
    except PlaneflowError as e:
        problems.append(str(e))
        return None


def config_problems(config: dict) -> list[str]:
    """Every problem of the config itself (its schema, suite2p's settings schema, the suite2p
    settings known to fail), one line each."""
    suite2p = config.get("suite2p") or {}
    problems = pfconfig.schema_problems(config, pfconfig.load_schema("config.schema.yaml"), "config")
    if isinstance(suite2p, dict):
        problems += pfconfig.schema_problems(
            suite2p, pfconfig.load_schema("suite2p_settings.schema.yaml"), "config suite2p")
        _collect(problems, pfconfig.check_suite2p_settings, suite2p, "config")
    return problems


def _default_fill(config: dict) -> None:
    schema = pfconfig.load_schema("config.schema.yaml")
    config.update(pfconfig.deep_merge(pfconfig.schema_defaults(schema), config))


def load(config: dict, fill_defaults: Callable[[dict], None] | None = None) -> Project:
    """Check ``config`` and its sessions sheet and read every session's metadata.

    ``fill_defaults(config)`` fills in the schema's defaults in place once the config is valid
    (the Snakefile passes Snakemake's own validation; by default the schema's defaults are merged
    in). Every problem found is raised at the end in one PlaneflowError, one line each; the raw
    files of a session are looked at only when the config is valid and its sheet row is.
    """
    problems = config_problems(config)
    config_ok = not problems
    if config_ok:
        (fill_defaults or _default_fill)(config)
    sheet = config.get("sessions")
    rows = pfconfig.read_sessions(sheet, problems) if isinstance(sheet, str) else []
    good = pfconfig.validate_sessions(rows, sheet, pfconfig.load_schema("sessions.schema.yaml"), problems)
    rows = {r["session_id"]: r for r in rows}
    if not config_ok:
        pfconfig.raise_problems(problems)
    project = Project(layout=Layout(config["results_dir"]), rows=rows, meta={}, nwb_mode="off",
                      nwb_meta={}, volume_offsets={}, crosstalk_subtract={}, shared_motion={})
    _check_nwb(project, config, sheet, problems)
    unsaved: list = []
    _read_sessions(project, config, [r["session_id"] for r in good], problems, unsaved)
    _group_subjects(project, config, sheet, problems)
    pfconfig.raise_problems(problems)
    for path, meta in unsaved:  # only now: a run that stops writes nothing
        save_json(path, meta)
    return project


def _check_nwb(project: Project, config: dict, sheet: str, problems: list) -> None:
    """NWB subject/session metadata: every session's with nwb_export.enabled: true; with auto,
    the sessions that lack it are named in one warning and not exported."""
    project.nwb_mode = nwb_meta.mode(config["nwb_export"])
    if project.nwb_mode == "on":
        project.nwb_meta = _collect(problems, nwb_meta.check_sessions, project.rows,
                                    config["nwb_export"], sheet) or {}
    elif project.nwb_mode == "auto":
        project.nwb_meta, wrong = nwb_meta.resolve_sessions(project.rows, config["nwb_export"])
        if wrong:
            project.warnings.append(nwb_meta.skipped_warning(wrong, sheet))


def _read_sessions(project: Project, config: dict, sessions: list[str], problems: list,
                   unsaved: list) -> None:
    """Each session's metadata, fixed offsets and what runs for it; the problems of all."""
    from planeflow.plan import registry
    from planeflow.plan.session import session_metadata

    for sid in sessions:
        row = project.rows[sid]
        # the NWB columns and those passed to steps as parameters (tau, diameter, offsets) are left
        # out: editing them keeps the cached metadata valid and reruns only the steps that use them
        meta = session_metadata(pfconfig.metadata_row(row), project.layout.root, config["acquisition"],
                                problems, unsaved)
        if meta is None:
            continue
        offsets = _collect(problems, pfconfig.volume_offsets, config, meta, row)
        subtract = _collect(problems, registry.enabled, "crosstalk_subtract", meta, config)
        if offsets is None or subtract is None:
            continue
        project.meta[sid] = meta
        project.volume_offsets[sid] = offsets
        project.crosstalk_subtract[sid] = subtract
        project.shared_motion[sid] = registry.enabled("shared_motion", meta, config)


def _group_subjects(project: Project, config: dict, sheet: str, problems: list) -> None:
    """The subjects whose steps run (tracking), each with its sessions; a subject whose sessions
    cannot be compared (plane count, pixel size) or whose id cannot name a folder is a problem."""
    from planeflow.plan import registry
    from planeflow.plan.layout import SUBJECTS

    if SUBJECTS in project.rows:
        problems.append(f"sessions sheet '{sheet}': session_id '{SUBJECTS}' is reserved (the folder of the "
                        f"per-subject results, <results>/{SUBJECTS}/); rename the session")
    ref = (config.get("tracking") or {}).get("reference")
    if ref and ref not in project.rows:
        problems.append(f"config tracking.reference: '{ref}' is not a session of the sheet '{sheet}'; give a "
                        "session_id (its subject's sessions are aligned to it) or null (each subject's first)")
    groups: dict = {}
    for sid, row in project.rows.items():
        if row.get("subject_id") and sid in project.meta:
            groups.setdefault(row["subject_id"], []).append(sid)
    for subject, sessions in groups.items():
        meta = registry.subject_meta(subject, [project.meta[s] for s in sessions])
        if not registry.subject_jobs(meta, config):
            continue
        if not SUBJECT_ID.match(subject):
            problems.append(f"sessions sheet '{sheet}', session {sessions[0]}: subject_id '{subject}' names the "
                            f"subject's results folder (<results>/{SUBJECTS}/<subject_id>/): use letters, digits, "
                            "_ . - only (or set tracking.enabled: false)")
            continue
        for what, key in (("plane count", lambda m: len(m["planes"])),
                          ("pixel size (dx, dy in µm)", lambda m: (m.get("dx"), m.get("dy")))):
            values = {s: key(project.meta[s]) for s in sessions}
            if len(set(values.values())) > 1:
                listed = ", ".join(f"{s}: {v}" for s, v in values.items())
                problems.append(f"sessions sheet '{sheet}': the sessions of subject '{subject}' differ in "
                                f"{what} ({listed}); tracking compares them voxel by voxel. Give them the same "
                                "value, or another subject_id, or set tracking.enabled: false")
                break
        else:
            project.subjects[subject] = sessions
