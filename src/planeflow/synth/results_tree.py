"""A finished results tree without running anything: every output, log and benchmark a finished
run of a config leaves for a session (:meth:`planeflow.plan.layout.Layout.session_outputs`),
as empty files, logs ending with planeflow's "done" line; the same for a subject's steps
(:func:`write_finished_subject`). What ``planeflow status`` reads, at any size
(tests/test_status.py, benchmarks/dag_scale.py)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from planeflow.plan import registry
from planeflow.plan.layout import Layout, plane_folder_files

#: the log of a job that finished (the job runner's first and last lines)
DONE_LOG = ("2026-01-01 10:00:00,000 [INFO] planeflow: start rule x (threads=1)\n"
            "2026-01-01 10:00:05,000 [INFO] planeflow: done rule x in 5.0 s\n")


def write_finished_session(results, meta: dict, config: dict) -> Layout:
    """Every file a finished run of ``config`` leaves for the session of ``meta`` under
    ``results``; its ``metadata.json`` (``meta``) last, so a tree cut short shows as unfinished."""
    lay = Layout(str(results))
    sid = meta["session_id"]
    for path in lay.session_outputs(meta, config):
        if path == lay.metadata(sid):
            continue
        if path.endswith(".zarr"):
            files = [os.path.join(path, ".zattrs")]
        elif "/suite2p/plane" in path and not path.endswith(".npy"):  # merge's folder
            files = list(plane_folder_files(path).values())
        else:
            files = [path]
        for f in files:
            os.makedirs(os.path.dirname(f), exist_ok=True)
            Path(f).write_text(DONE_LOG if f.endswith(".log") else "")
    os.makedirs(lay.session_dir(sid), exist_ok=True)
    Path(lay.metadata(sid)).write_text(json.dumps(meta))
    return lay


def write_finished_subject(results, meta: dict, config: dict) -> Layout:
    """Every file a finished run of ``config`` leaves for the subject of ``meta``
    (:func:`planeflow.plan.registry.subject_meta`): its steps' outputs, logs and benchmarks."""
    lay = Layout(str(results))
    sub = meta["subject"]
    for job in registry.subject_jobs(meta, config):
        for f in [*lay.job_outputs(job, sub, config), lay.log(job.step, sub), lay.benchmark(job.step, sub)]:
            os.makedirs(os.path.dirname(f), exist_ok=True)
            Path(f).write_text(DONE_LOG if f.endswith(".log") else "")
    return lay
