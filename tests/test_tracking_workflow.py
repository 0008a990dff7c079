"""Rule tracking in the workflow (issue 23): one job per subject of the sessions sheet, its
outputs under <results>/subjects/<subject>/, what reruns when a session is added, bad input
stopped at parse time, and a real run on a finished session."""
from __future__ import annotations

import json
import os

import pytest
import yaml

from conftest import coded_frames, dry_run_jobs, snakemake, write_tiff
from planeflow.plan import registry
from planeflow.plan.config import deep_merge, load_schema, schema_defaults
from planeflow.plan.layout import Layout


def _project(tmp, rows: list[dict], nplanes: dict | None = None):
    """Tiny TIFF sessions (3 planes unless ``nplanes`` says otherwise) and a config."""
    nplanes = nplanes or {}
    lines, cols = [], ["session_id", "data_path", "nplanes", "fs", "dx", "dy", "dz", "subject_id"]
    for r in rows:
        n = nplanes.get(r["session_id"], 3)
        raw = tmp / "raw" / r["session_id"]
        if not raw.exists():
            write_tiff(raw / "s.tif", coded_frames(n * 60, 32, 32))
        vals = {"data_path": str(raw), "nplanes": n, "fs": 10.0, "dx": 1.0, "dy": 1.0, "dz": 10.0, **r}
        lines.append("\t".join(str(vals.get(c) or "") for c in cols))
    (tmp / "sessions.tsv").write_text("\t".join(cols) + "\n" + "\n".join(lines) + "\n")
    cfg = {"sessions": str(tmp / "sessions.tsv"), "results_dir": str(tmp / "results"),
           "cellpose": {"export": False}, "nwb_export": {"enabled": False}}
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "config.yaml", deep_merge(schema_defaults(load_schema("config.schema.yaml")), cfg)


SHEET = [{"session_id": "m1_d1", "subject_id": "m1"}, {"session_id": "m1_d2", "subject_id": "m1"},
         {"session_id": "m2_d1", "subject_id": "m2"}, {"session_id": "lone", "subject_id": None}]


def test_one_tracking_job_per_subject(tmp_path):
    cfg, _ = _project(tmp_path, SHEET)
    jobs = dry_run_jobs(cfg)
    tracking = sorted(wc["subject"] for rule, wc in jobs if rule == "tracking")
    assert tracking == ["m1", "m2"]  # "lone" has no subject_id: not tracked
    assert sum(rule == "volume_stats" for rule, _ in jobs) == 4
    # switched off: no tracking job
    cfg2 = tmp_path / "off.yaml"
    cfg2.write_text(yaml.safe_dump({**yaml.safe_load(cfg.read_text()), "tracking": {"enabled": False}}))
    assert not [r for r, _ in dry_run_jobs(cfg2) if r == "tracking"]


def test_adding_a_session_reruns_it_and_its_subjects_tracking_only(tmp_path):
    from planeflow.synth.results_tree import write_finished_session, write_finished_subject

    cfg, config = _project(tmp_path, SHEET)
    dry_run_jobs(cfg)  # writes each session's metadata.json
    res = tmp_path / "results"
    metas = {s["session_id"]: json.loads(open(Layout(res).metadata(s["session_id"])).read()) for s in SHEET}
    for m in metas.values():
        write_finished_session(res, m, config)
    for sub, sids in (("m1", ["m1_d1", "m1_d2"]), ("m2", ["m2_d1"])):
        write_finished_subject(res, registry.subject_meta(sub, [metas[s] for s in sids]), config)
    for f in res.glob("*/metadata.json"):
        os.utime(f, (f.stat().st_mtime - 3600,) * 2)  # the inputs are older than what was made of them
    assert [r for r, _ in dry_run_jobs(cfg) if r != "all"] == []  # finished: nothing to do

    cfg, config = _project(tmp_path, [*SHEET, {"session_id": "m1_d3", "subject_id": "m1"}])
    jobs = [(r, wc) for r, wc in dry_run_jobs(cfg) if r != "all"]
    assert {wc.get("session") for r, wc in jobs if r != "tracking"} == {"m1_d3"}
    assert [wc["subject"] for r, wc in jobs if r == "tracking"] == ["m1"]


@pytest.mark.parametrize("rows, nplanes, needle", [
    ([{"session_id": "a", "subject_id": "m1"}, {"session_id": "b", "subject_id": "m1"}], {"b": 2},
     "the sessions of subject 'm1' differ in plane count (a: 3, b: 2)"),
    ([{"session_id": "a", "subject_id": "mouse 1"}], None, "subject_id 'mouse 1' names the subject's results folder"),
    ([{"session_id": "subjects", "subject_id": "m1"}], None, "session_id 'subjects' is reserved"),
], ids=["plane-count", "folder-name", "reserved-session"])
def test_bad_subjects_stop_at_parse_time(tmp_path, rows, nplanes, needle):
    cfg, _ = _project(tmp_path, rows, nplanes)
    proc = snakemake(cfg, "-n")
    assert proc.returncode != 0
    assert needle in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "results" / "subjects").exists()


def test_status_lists_the_subjects_jobs(tmp_path):
    from planeflow.plan.status import collect, format_table

    cfg, config = _project(tmp_path, SHEET)
    planned = [wc["subject"] for r, wc in dry_run_jobs(cfg) if r == "tracking"]
    st = collect(config["results_dir"], workdir=str(tmp_path), config=config)
    assert sorted(s["subject"] for s in st["subjects"]) == sorted(planned)
    assert all(s["steps"] == {"tracking": "pending"} for s in st["subjects"])
    assert "subject m1 (m1_d1, m1_d2): tracking: pending" in format_table(st)


def test_the_schema_gives_the_tracking_library_its_own_defaults():
    """The config's tracking settings are the library's options: same keys, same defaults
    (the schema is what users read; planeflow.core.tracking also runs without the workflow)."""
    from planeflow.core.tracking import DEFAULTS
    from planeflow.plan.config import with_defaults

    assert {k: v for k, v in with_defaults("tracking", None).items() if k != "enabled"} == DEFAULTS


@pytest.mark.workflow
def test_a_subject_with_one_session_gets_a_table_of_its_cells(finished_session):
    """The finished session given a subject_id: only rule tracking runs, and every accepted cell
    of cells.tsv is its own track."""
    from planeflow.io.tables import read_tsv

    tmp = finished_session["tmp"]
    cfg = yaml.safe_load(finished_session["cfg"].read_text())
    old = (tmp / "sessions.tsv").read_text().splitlines()
    sheet = tmp / "sessions_subject.tsv"
    sheet.write_text(f"{old[0]}\tsubject_id\n{old[1]}\tmouse-7\n")
    cfg["sessions"] = str(sheet)
    path = tmp / "config_subject.yaml"
    path.write_text(yaml.safe_dump(cfg))
    jobs = dry_run_jobs(path, "--rerun-triggers", "mtime", "params", "input", workdir=tmp)
    assert {r for r, _ in jobs} - {"all"} == {"tracking"}, jobs
    snakemake(path, "--rerun-triggers", "mtime", "params", "input", workdir=tmp, check=True)
    lay = Layout(tmp / "results")
    cells = [r for r in read_tsv(lay.volume_file("cells", "fin")) if r["accepted"] == "true"]
    tracked = read_tsv(lay.subject_file("tracking", "cells", "mouse-7"))
    assert len(tracked) == len(cells) > 0
    assert {r["cell_id"] for r in tracked} == {r["cell_id"] for r in cells}
    assert {r["subject"] for r in tracked} == {"mouse-7"} and {r["session"] for r in tracked} == {"fin"}
    assert len({r["track_id"] for r in tracked}) == len(tracked)  # one track per cell
    tracks = read_tsv(lay.subject_file("tracking", "tracks", "mouse-7"))
    assert len(tracks) == len(tracked) and all(r["n_sessions"] == "1" for r in tracks)
    assert read_tsv(lay.subject_file("tracking", "pairs", "mouse-7")) == []
    summary = json.loads(open(lay.subject_file("tracking", "summary", "mouse-7")).read())
    assert summary["sessions"] == ["fin"] and summary["n_tracks"] == len(tracked)
    fig = tmp / "results" / "subjects" / "mouse-7" / "tracking.png"
    assert fig.stat().st_size > 1000
    # the figure is in `snakemake --report`, under its subject, with its caption
    import base64

    html_path = tmp / "report_subject.html"
    snakemake(path, f"--report={html_path}", workdir=tmp, check=True)
    html = html_path.read_text()
    assert base64.b64encode(fig.read_bytes()).decode() in html
    assert "subject mouse-7" in html and "Cells of subject mouse-7 followed across its sessions" in html


@pytest.mark.workflow
def test_tracking_benchmark_runs_the_rule_on_a_tiny_subject(tmp_path):
    """benchmarks/tracking_accuracy.py --tiny: two simulated sessions of one subject through the
    whole workflow, rule tracking included; the rule's table is the library's answer."""
    import subprocess
    import sys

    from conftest import REPO

    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "tracking_accuracy.py"), "--tiny",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "rule tracking's table: the same tracks as this run" in proc.stdout
    assert (tmp_path / "results" / "subjects" / "bench" / "tracks.tsv").is_file()
