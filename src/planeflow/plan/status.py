"""Where every session, plane and step of a results folder stands, without building the DAG.

``planeflow status`` reads only what is on disk:

- each session's cached ``metadata.json`` (planes and parts; planeflow.plan.session),
- the step outputs and per-step logs at the paths :class:`planeflow.plan.layout.Layout` gives,
- Snakemake's own markers in ``<workdir>/.snakemake``: ``incomplete/`` holds one file per
  output of a job that started and has not finished (file name = URL-safe base64 of the
  output path as the rule names it; content = the cluster job id), ``locks/`` exists while
  a run holds the folder (or after a run was killed).

A job (session, plane, part, step) is

- ``done``: every output exists and no incomplete marker names one of them;
- ``running``: an incomplete marker names an output and a Snakemake lock is held;
- ``incomplete``: an incomplete marker names an output and no lock is held (the run was
  killed; the next run starts the job again, ``rerun-incomplete`` is on in profiles/default);
- ``failed``: outputs missing and the job's log ends with an error (planeflow's run_job
  writes ``[ERROR] planeflow: ...``) or without planeflow's ``done`` line (killed for
  memory or time);
- ``pending``: none of these (not started yet).

Which jobs a session has comes from :func:`planeflow.plan.registry.session_jobs` with the
config the workflow runs with (``config``), so the list is the one ``snakemake -n`` plans.
Without a config, the steps that run only with a setting are shown once their folder or
their log folder exists.

Outputs that are present but out of date (a changed setting) count as ``done``: only a
Snakemake dry run (``snakemake -n``) knows about those. No Snakemake import.
"""
from __future__ import annotations

import base64
import json
import os
import re
import time

from planeflow.plan import registry
from planeflow.plan.layout import METADATA, STEP_SCOPE, Layout, plane_folder_files

STATES = ("done", "failed", "running", "incomplete", "pending")
#: the order in which a plane's state is summarised from its steps' (worst first)
_WORST = ("failed", "incomplete", "running", "pending", "done")
#: the cluster profile's name as users install it (planeflow slurm-profile)
SLURM_PROFILE = "slurm"

_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \[(\w+)\] ([\w.]+): ?(.*)$")


# ---- Snakemake's markers --------------------------------------------------------------
def find_workdir(results: str, workdir: str | None = None) -> str | None:
    """The folder holding ``.snakemake`` for ``results``: ``workdir`` if given, else the
    current folder or the nearest folder above ``results`` that has one."""
    if workdir:
        return os.path.abspath(workdir)
    candidates = [os.getcwd()]
    d = os.path.abspath(results)
    while True:
        candidates.append(d)
        up = os.path.dirname(d)
        if up == d:
            break
        d = up
    for c in candidates:
        if os.path.isdir(os.path.join(c, ".snakemake")):
            return c
    return None


def incomplete_markers(workdir: str | None) -> dict[str, str | None]:
    """Outputs Snakemake marked as started-not-finished: absolute path -> cluster job id."""
    out: dict[str, str | None] = {}
    if not workdir:
        return out
    base = os.path.join(workdir, ".snakemake", "incomplete")
    for dirpath, _dirs, files in os.walk(base):
        rel = os.path.relpath(dirpath, base)
        prefix = "" if rel == "." else "".join(part.lstrip("@") for part in rel.split(os.sep))
        for f in files:
            if f == "migration_underway":
                continue
            try:
                path = base64.urlsafe_b64decode((prefix + f).encode()).decode()
            except (ValueError, UnicodeDecodeError):
                continue
            try:
                with open(os.path.join(dirpath, f)) as fh:
                    jobid = json.load(fh).get("external_jobid")
            except (OSError, ValueError, AttributeError):
                jobid = None
            out[os.path.normpath(os.path.join(workdir, path))] = jobid
    return out


def lock_files(workdir: str | None) -> list[str]:
    if not workdir:
        return []
    d = os.path.join(workdir, ".snakemake", "locks")
    try:
        return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".lock"))
    except OSError:
        return []


# ---- logs ----------------------------------------------------------------------------
def log_error(text: str) -> str | None:
    """The meaningful line of a failed job's log, or None if the log ends with planeflow's
    ``done`` line. An error record is run_job's ``[ERROR] planeflow: message`` (the message's
    lines joined) or, after a traceback, the exception's line."""
    lines = text.splitlines()
    records = [(i, m) for i, ln in enumerate(lines) if (m := _RECORD.match(ln))]
    errors = [(i, m) for i, m in records if m.group(1) in ("ERROR", "CRITICAL")]
    if errors:
        i, m = errors[-1]
        nxt = next((j for j, _ in records if j > i), len(lines))
        body = [m.group(3)] + lines[i + 1:nxt]
        if any(ln.startswith("Traceback") for ln in body):
            tail = [ln.strip() for ln in body if ln.strip()]
            return tail[-1] if tail else m.group(3)
        return " ".join(ln.strip() for ln in body if ln.strip())
    if any(m.group(2) == "planeflow" and m.group(3).startswith("done ") for _, m in records):
        return None
    rest = [ln.strip() for ln in lines if ln.strip()]
    last = rest[-1] if rest else "(empty log)"
    return (f"the job ended without planeflow's 'done' line (killed, e.g. for memory or time?); "
            f"last log line: {last}")


def _read(path: str) -> str | None:
    try:
        with open(path, errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


# ---- one job -------------------------------------------------------------------------
def _job_state(outputs: list[str], log: str, markers: dict, locked: bool, listing) -> dict:
    """State of one job from its outputs (paths), its log path and Snakemake's markers."""
    marked = [markers[o] for o in map(os.path.abspath, outputs) if o in markers]
    if marked:
        return {"state": "running" if locked else "incomplete", "jobid": marked[0]}
    if all(listing(o) for o in outputs):
        return {"state": "done"}
    text = _read(log)
    if text is not None:
        err = log_error(text)
        if err is not None:
            return {"state": "failed", "error": err}
    return {"state": "pending"}


class _Listing:
    """Existence checks with one directory listing per folder (fast on 50 x 30 planes)."""

    def __init__(self):
        self._dirs: dict[str, set] = {}

    def __call__(self, path: str) -> bool:
        d, name = os.path.split(path)
        if d not in self._dirs:
            try:
                self._dirs[d] = set(os.listdir(d))
            except OSError:
                self._dirs[d] = set()
        return name in self._dirs[d]


def _worst(states) -> str:
    states = set(states)
    if states == {"done"}:
        return "done"
    return next(s for s in _WORST if s in states)


# ---- a results folder ----------------------------------------------------------------
def list_sessions(results: str) -> list[str]:
    try:
        names = sorted(os.listdir(results))
    except OSError:
        return []
    return [n for n in names if os.path.isfile(os.path.join(results, n, METADATA))]


def rerun_commands(target: str) -> dict:
    return {"local": f"snakemake {target}", "slurm": f"snakemake --profile {SLURM_PROFILE} {target}"}


def _jobs(lay: Layout, sid: str, meta: dict, config: dict | None) -> list[registry.Job]:
    """The session's jobs: the registry's plan under ``config``; without one, the steps that
    always run and the others once they have a folder or a log folder."""
    if config is not None:
        return registry.session_jobs(meta, config)
    present = [n for n, st in registry.STEPS.items() if st.when == "always"
               or os.path.isdir(lay.step_dir(n, sid)) or os.path.isdir(os.path.dirname(lay.log(n, sid)))]
    return registry.session_jobs(meta, None, steps=present)


def _done_outputs(lay: Layout, job: registry.Job, sid: str, config: dict | None,
                  listing: _Listing | None = None) -> list[str]:
    """The files whose presence makes a job done (a folder output by the files in it; not the
    intermediates ``cleanup`` may have removed, such as binary_write's data_raw.bin)."""
    if job.step == "merge":
        return list(plane_folder_files(lay.plane_dir(sid, job.plane)).values())
    if job.step == "volume_stats":
        zarr = lay.volume_file("zarr", sid)
        return [f for f in lay.job_outputs(job, sid, config or {}) if f != zarr]
    if job.step == "raw_compress" and config is None:  # the archive's format is a setting
        return [lay.manifest(sid)]
    removable = {lay.step_file(job.step, k, sid, job.plane, job.part) for k in registry.STEPS[job.step].removable}
    outputs = lay.job_outputs(job, sid, config or {})
    kept = [f for f in outputs if f not in removable]
    if kept:
        return kept
    removed = {k for s, k in registry.removed_outputs(config or {}) if s == job.step}
    if set(registry.STEPS[job.step].files) <= removed and listing is not None \
            and not any(listing(f) for f in outputs):
        # every output is one the config's cleanup removes (detection, with cleanup.intermediates):
        # gone, they are done when the plane's final folder, made from them, is
        return _done_outputs(lay, registry.Job("merge", job.plane), sid, config)
    return outputs


def collect(results: str, sessions: list[str] | None = None, workdir: str | None = None,
            config: dict | None = None) -> dict:
    """Status of ``results`` (a results folder), as plain data (see the module docstring).

    ``sessions``: only these (default: every session folder with a metadata.json);
    ``workdir``: the folder Snakemake runs in (holds ``.snakemake``; found if not given);
    ``config``: the workflow's config with its defaults (which optional steps run).
    """
    from planeflow import PlaneflowError

    t0 = time.perf_counter()
    if not os.path.isdir(results):
        raise PlaneflowError(f"results folder '{results}' not found. Give the folder set as "
                             "results_dir in the config: planeflow status RESULTS.")
    lay = Layout(results)
    workdir = find_workdir(results, workdir)
    markers = incomplete_markers(workdir)
    locks = lock_files(workdir)
    locked = bool(locks)
    listing = _Listing()
    known = list_sessions(results)
    if sessions:
        missing = [s for s in sessions if s not in known]
        if missing:
            raise PlaneflowError(
                f"session(s) {', '.join(missing)} not found under '{results}' (a session shows up "
                f"once Snakemake has written its {METADATA}); known: {', '.join(known) or 'none'}.")
        known = [s for s in known if s in sessions]
    out = {"results": results, "workdir": workdir, "locks": locks, "sessions": [], "problems": []}
    counts = dict.fromkeys(STATES, 0)
    metas: dict = {}

    for sid in known:
        try:
            with open(lay.metadata(sid)) as fh:
                meta = json.load(fh)
        except (OSError, ValueError):
            out["sessions"].append({"session": sid, "error": f"unreadable {lay.metadata(sid)}"})
            counts["pending"] += 1
            continue
        nparts = len(meta.get("parts") or [None])
        planes: dict = {p: {} for p in meta.get("planes", [])}
        per_part: dict = {}
        session_steps = {}
        jobs = []
        for job in _jobs(lay, sid, meta, config):
            outputs = _done_outputs(lay, job, sid, config, listing)
            log = lay.log(job.step, sid, job.plane, job.part)
            st = _job_state(outputs, log, markers, locked, listing)
            jobs.append({"step": job.step, "plane": job.plane, "part": job.part, "state": st["state"]})
            counts[st["state"]] += 1
            if st["state"] in ("failed", "incomplete", "running"):
                per_plane = STEP_SCOPE[job.step] == "part" or job.step == "merge"
                target = lay.plane_dir(sid, job.plane) if per_plane else outputs[0]
                out["problems"].append({"state": st["state"], "session": sid, "plane": job.plane,
                                        "part": job.part, "step": job.step, "log": log,
                                        **{k: v for k, v in st.items() if k != "state"},
                                        "rerun": rerun_commands(target)})
            if job.plane is None:
                session_steps[job.step] = st["state"]
            else:
                per_part.setdefault((job.plane, job.step), []).append(st["state"])
        for (p, step), states in per_part.items():
            planes[p][step] = _worst(states)
        states = [s for row in planes.values() for s in row.values()] + list(session_steps.values())
        out["sessions"].append({"session": sid, "nparts": nparts, "planes": planes, "jobs": jobs,
                                "session_steps": session_steps, "state": _worst(states or ["pending"])})
        metas[sid] = meta
    out["subjects"] = []
    for subject, meta in _subjects(lay, config, metas, filtered=bool(sessions)).items():
        steps = {}
        for job in (registry.subject_jobs(meta, config) if config is not None
                    else registry.subject_jobs(meta, None, steps=list(registry.of_scope("subject")))):
            outputs = lay.job_outputs(job, subject, config or {})
            log = lay.log(job.step, subject)
            st = _job_state(outputs, log, markers, locked, listing)
            steps[job.step] = st["state"]
            counts[st["state"]] += 1
            if st["state"] in ("failed", "incomplete", "running"):
                out["problems"].append({"state": st["state"], "session": f"subject {subject}", "plane": None,
                                        "part": None, "step": job.step, "log": log,
                                        **{k: v for k, v in st.items() if k != "state"},
                                        "rerun": rerun_commands(outputs[0])})
        if not steps:
            continue
        out["subjects"].append({"subject": subject, "sessions": [m["session_id"] for m in meta["sessions"]],
                                "steps": steps, "state": _worst(list(steps.values()) or ["pending"])})
    out["counts"] = counts
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def _subjects(lay: Layout, config: dict | None, metas: dict, filtered: bool) -> dict:
    """subject -> registry.subject_meta of the subjects to show: with a config, those of the
    sessions sheet's subject_id column among the sessions shown (their metadata in ``metas``);
    without one, every folder under ``<results>/subjects/`` (not when sessions were chosen)."""
    from planeflow.plan.layout import SUBJECTS

    groups: dict = {}
    if config is not None and isinstance(config.get("sessions"), str):
        from planeflow.plan.config import read_sessions

        for row in read_sessions(config["sessions"], problems=[]):
            if row.get("subject_id") and row["session_id"] in metas:
                groups.setdefault(row["subject_id"], []).append(metas[row["session_id"]])
    elif not filtered:
        base = os.path.join(lay.root, SUBJECTS)
        names = sorted(os.listdir(base)) if os.path.isdir(base) else []
        groups = {n: [] for n in names if os.path.isdir(os.path.join(base, n))}
    return {sub: registry.subject_meta(sub, ms) for sub, ms in groups.items()}


# ---- text ----------------------------------------------------------------------------
def _ranges(planes: list[int]) -> str:
    out, start, prev = [], None, None
    for p in planes:
        if start is None:
            start = prev = p
        elif p == prev + 1:
            prev = p
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = p
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(out)


def format_table(status: dict) -> str:
    """The status as text: one row per session and run of planes in the same state, then
    every failed, running or incomplete job with its log, error and rerun commands."""
    shown = {step for s in status["sessions"] for row in s.get("planes", {}).values() for step in row}
    steps = [n for n, st in registry.STEPS.items() if st.scope != "session" and n in shown]
    header = ["session", "planes", *steps, "session steps"]
    rows = []
    for s in status["sessions"]:
        if "error" in s:
            rows.append([s["session"], "?", *["?"] * len(steps), s["error"]])
            continue
        groups: list[tuple[tuple, list[int]]] = []
        for p, row in s["planes"].items():
            key = tuple(row.get(step, "-") for step in steps)
            if groups and groups[-1][0] == key and groups[-1][1][-1] == p - 1:
                groups[-1][1].append(p)
            else:
                groups.append((key, [p]))
        sess = ", ".join(f"{k}: {v}" for k, v in s["session_steps"].items())
        for i, (key, planes) in enumerate(groups):
            rows.append([s["session"], _ranges(planes), *key, sess if i == 0 else ""])
        if not groups:
            rows.append([s["session"], "-", *["-"] * len(steps), sess])
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    for sub in status.get("subjects", []):
        steps = ", ".join(f"{k}: {v}" for k, v in sub["steps"].items())
        sessions = f" ({', '.join(sub['sessions'])})" if sub["sessions"] else ""
        lines.append(f"subject {sub['subject']}{sessions}: {steps or 'no step'}")
    c = status["counts"]
    lines.append("")
    lines.append(f"{sum(c.values())} jobs: " + ", ".join(f"{c[k]} {k}" for k in STATES if c[k])
                 + f"  ({status['results']}, read in {status['seconds']:.2f} s)")
    for prob in status["problems"]:
        where = f"{prob['session']}"
        if prob["plane"] is not None:
            where += f" plane {prob['plane']}"
        if prob["part"] is not None and any(s.get("nparts", 1) > 1 for s in status["sessions"]
                                            if s["session"] == prob["session"]):
            where += f" part {prob['part']}"
        lines += ["", f"{prob['state'].upper()}: {where}, step {prob['step']}",
                  f"  log:    {prob['log']}"]
        if prob.get("error"):
            lines.append(f"  error:  {prob['error']}")
        if prob.get("jobid"):
            lines.append(f"  cluster job: {prob['jobid']}")
        if prob["state"] == "running":
            lines.append("  (running now, or the run holding the lock below was killed)")
        else:
            lines.append(f"  rerun:  {prob['rerun']['local']}")
            lines.append(f"          {prob['rerun']['slurm']}   (on the cluster)")
    if status["locks"]:
        lines += ["", f"Snakemake lock held: {', '.join(status['locks'])}",
                  "  A run is active in this folder, or one was killed. Once no other snakemake run is",
                  "  active here, `snakemake --unlock` is safe: it only removes the lock."]
    elif status["workdir"] is None:
        lines += ["", "(no .snakemake folder found: running/incomplete jobs cannot be told apart "
                      "from pending ones; give the folder Snakemake runs in with --directory)"]
    if any(p["state"] != "running" for p in status["problems"]):
        lines += ["", "Run rerun commands in the folder Snakemake runs in"
                  + (f" ({status['workdir']})" if status["workdir"] else "")
                  + "; add the --configfile you ran with, if any."]
    return "\n".join(lines)


# ---- disk ----------------------------------------------------------------------------
def _tree_bytes(path: str) -> int:
    """Bytes of the files under ``path`` (a file: its size), links not followed."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def disk_footprint(results: str, session: str) -> dict:
    """How much a session's results take against its raw files: ``results_bytes``,
    ``raw_bytes`` (the files its metadata.json lists that are still there), ``ratio``
    (None without raw files) and ``folders``: bytes of each folder of the session, largest first."""
    lay = Layout(results)
    sdir = os.path.join(lay.root, session)
    folders = {e.name: _tree_bytes(e.path) for e in os.scandir(sdir)} if os.path.isdir(sdir) else {}
    try:
        with open(lay.metadata(session)) as fh:
            files = json.load(fh).get("files") or []
    except (OSError, ValueError):
        files = []
    raw = sum(_tree_bytes(f) for f in files if os.path.exists(f))
    total = sum(folders.values())
    return {"session": session, "results_bytes": total, "raw_bytes": raw,
            "ratio": total / raw if raw else None,
            "folders": dict(sorted(folders.items(), key=lambda kv: -kv[1]))}


def format_disk(footprints: list[dict]) -> str:
    """One line per session: results and raw size, their ratio and the largest folders."""
    def mb(n):
        return f"{n / 1e6:,.0f} MB" if n >= 1e6 else f"{n / 1e3:,.0f} kB"
    lines = []
    for d in footprints:
        ratio = f"{d['ratio']:.2f}x the raw files ({mb(d['raw_bytes'])})" if d["ratio"] else "raw files not found"
        top = ", ".join(f"{k} {mb(v)}" for k, v in list(d["folders"].items())[:3])
        lines.append(f"disk: {d['session']}: results {mb(d['results_bytes'])}, {ratio}; largest: {top}")
    return "\n".join(lines)
