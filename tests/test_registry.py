"""planeflow.plan.registry is the one home of a step (issue 20, item 1): the rules, the layout,
the resources, the job runner and ``planeflow status`` derive from it, and ``planeflow status``
lists exactly the jobs ``snakemake -n`` plans, with and without the optional steps."""
from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from conftest import BIN, REPO, coded_frames, dry_run_jobs, write_tiff
from planeflow import suite2p_api as s2p
from planeflow.plan import registry
from planeflow.plan.config import deep_merge, load_schema, schema_defaults

NWB = {"session_start_time": "2024-03-05T09:15:00+01:00", "subject_id": "m042", "species": "Mus musculus",
       "sex": "F", "age": "P84D", "indicator": "GCaMP6s", "location": "VISp"}
TARGETS = {"all", "cellpose_import_all"}  # rules that are targets, not steps


def test_every_rule_is_a_step_and_every_step_a_rule(tmp_path):
    """Snakemake's own list of the workflow's rules (not a parse of the .smk files)."""
    cfg_path, _ = _session(tmp_path, False)
    out = subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
                          f"--configfile={cfg_path}", "--list-rules"], capture_output=True, text=True)
    rules = {m.group(1) for ln in out.stdout.splitlines() if (m := re.match(r"^(\w+)(?: \(|$)", ln))}
    assert rules, out.stdout + out.stderr
    assert rules - TARGETS == set(registry.STEPS), out.stdout


def test_records_are_complete_and_consistent():
    props = load_schema("config.schema.yaml")["properties"]
    for name, s in registry.STEPS.items():
        assert s.scope in registry.SCOPES and s.when in registry.CONDITIONS, name
        assert bool(s.files) == (name != "merge"), name  # merge writes the final plane folder
        assert s.threads >= 1 and s.minutes > 0, name
        assert all(sec in props for sec in s.settings), (name, s.settings)
        assert (REPO / "scripts" / f"{name}.py").is_file(), name
        assert all(n in s2p.PUBLIC or n in s2p.PRIVATE for n in s.suite2p), name
        assert not s.suite2p or "suite2p" in s.imports, name
    assert {"suite2p", "torch", "pynwb"} <= set(registry.HEAVY_PACKAGES)
    # the default profile no longer repeats each rule's threads
    profile = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text())
    assert "set-threads" not in profile


def test_grouped_steps_follow_the_dependencies():
    assert registry.grouped_steps("none", False, False) == ()
    assert registry.grouped_steps("short", False, False) == ("postprocess", "merge")
    assert registry.grouped_steps("plane", False, False) == (
        "binary_write", "registration", "detection", "postprocess", "merge")
    # shared motion: registration waits for every plane's binary; subtraction: detection for every registration
    assert "binary_write" not in registry.grouped_steps("plane", True, False)
    assert "registration" not in registry.grouped_steps("plane", False, True)


def test_estimates_grow_with_the_attempt():
    meta = {"session_id": "s", "planes": [0, 1], "nframes": 1000, "plane_shape": [256, 256],
            "parts": [{"part": 0, "shape": [256, 256], "offset": [0, 0]}]}
    cfg = {"binary_write": {"chunk_frames": 500, "chunk_mb": 32},
           "nwb_export": {"include_movie": True, "chunk_frames": 500}}
    subject = registry.subject_meta("m1", [meta, meta])
    for name, s in registry.STEPS.items():
        m = subject if s.scope == "subject" else meta
        one, two = (s.estimate(m, cfg, a, part=0) for a in (1, 2))
        assert two["mem_mb"] > one["mem_mb"] > 0 and two["runtime"] > one["runtime"] > 0, name


def test_trace_steps_are_sized_for_suite2p_s_cap_on_rois():
    """postprocess and merge hold a plane's traces: sized before detection for as many ROIs as
    suite2p may find (sparsery's max_ROIs), and a plane of several parts joins each part's."""
    from planeflow.plan import resources as res

    meta = {"session_id": "s", "planes": [0], "nframes": 20000, "plane_shape": [512, 512],
            "parts": [{"part": 0, "shape": [512, 512], "offset": [0, 0]}]}
    trace = res.SUITE2P_MAX_ROIS * 20000 * 4 / 1e6  # MB of one float32 trace array at the cap
    fewer = {"suite2p": {"detection": {"sparsery_settings": {"max_ROIs": 500}}}}
    pp = registry.STEPS["postprocess"]
    assert pp.memory(meta, {}, 0) - pp.memory(meta, fewer, 0) == pytest.approx(1.5 * trace * 0.9)
    merge = registry.STEPS["merge"]
    two = {**meta, "parts": meta["parts"] * 2}
    assert merge.memory(meta, {}, None) == merge.memory(meta, fewer, None)  # one part: copied from its maps
    assert merge.memory(two, {}, None) - merge.memory(meta, {}, None) == pytest.approx(1.2 * 2 * trace)


def test_volume_stats_asks_for_the_crosstalk_frames_only_when_it_measures_crosstalk():
    """The frames' phase (crosstalk measured on 1,000 sampled frames of several planes) runs with two
    planes or more and volume.crosstalk on: a one-plane 512² session does not read them."""
    from planeflow.plan.config import with_defaults

    vs = registry.STEPS["volume_stats"]
    meta = {"session_id": "s", "planes": [0], "nframes": 10000, "plane_shape": [512, 512],
            "parts": [{"part": 0, "shape": [512, 512], "offset": [0, 0]}]}
    on = {"volume": with_defaults("volume", None)}
    off = {"volume": {**on["volume"], "crosstalk": "off"}}
    one, two = vs.memory(meta, on, None), vs.memory({**meta, "planes": [0, 1]}, on, None)
    frames_mb = 2 * min(10000, on["volume"]["crosstalk_frames"]) * 512 * 512 * 4 / 1e6  # both planes' sample
    assert one < 2000 < frames_mb < two
    assert vs.memory({**meta, "planes": [0, 1]}, off, None) < 2000


def _session(tmp, optional: bool):
    """A 3-plane TIFF session and a config with every optional step off or on."""
    nplanes, nframes = 3, 60
    write_tiff(tmp / "raw" / "s1.tif", coded_frames(nplanes * nframes, 32, 32))
    row = {"session_id": "s1", "data_path": str(tmp / "raw"), "nplanes": nplanes, "fs": 10.0,
           "dx": 1.0, "dy": 1.0, "dz": 10.0, **(NWB if optional else {})}
    (tmp / "sessions.tsv").write_text("\t".join(row) + "\n" + "\t".join(map(str, row.values())) + "\n")
    cfg = {"sessions": str(tmp / "sessions.tsv"), "results_dir": str(tmp / "results"),
           "cellpose": {"export": optional}, "nwb_export": {"enabled": optional},
           "raw_compress": {"enabled": optional},
           "registration": {"shared_motion": "on" if optional else "off"},
           "volume": {"crosstalk": "subtract" if optional else "estimate"},
           "suite2p": {"io": {"save_mat": optional}}}
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "config.yaml", cfg


@pytest.mark.parametrize("optional", [False, True], ids=["plain", "every-optional-step"])
def test_status_lists_the_jobs_the_dry_run_plans(tmp_path, optional):
    from planeflow.plan.status import collect

    cfg_path, cfg = _session(tmp_path, optional)
    planned = {(rule, int(wc["plane"]) if "plane" in wc else None, int(wc["part"]) if "part" in wc else None)
               for rule, wc in dry_run_jobs(cfg_path) if rule not in TARGETS}
    config = deep_merge(schema_defaults(load_schema("config.schema.yaml")), cfg)
    st = collect(cfg["results_dir"], workdir=str(tmp_path), config=config)
    (sess,) = st["sessions"]
    listed = {(j["step"], j["plane"], j["part"]) for j in sess["jobs"]}
    listed |= {(step, None, None) for sub in st["subjects"] for step in sub["steps"]}  # per subject
    assert listed == planned
    assert st["counts"]["pending"] == len(planned)
    steps = {j[0] for j in planned}
    optional_steps = {"rigid_shifts", "shared_motion", "crosstalk", "crosstalk_subtract", "cellpose_export",
                      "nwb_export", "raw_compress", "mat_export", "tracking"}  # tracking: a subject_id
    assert (optional_steps <= steps) if optional else not (optional_steps & steps)


def test_status_cli_reads_the_config_in_the_current_folder(tmp_path, monkeypatch, capsys):
    """``planeflow status`` in the folder Snakemake runs in: the config there says which
    optional steps run and where the results are."""
    from planeflow.cli import main

    cfg_path, cfg = _session(tmp_path, True)
    dry_run_jobs(cfg_path)  # writes the session's metadata.json
    (tmp_path / "config").mkdir()
    cfg_path.rename(tmp_path / "config" / "config.yaml")
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["status"]) == 2
    text = capsys.readouterr().out
    assert "cellpose_export" in text and "nwb_export: pending" in text and "crosstalk_subtract" in text


def test_every_job_asks_for_its_steps_resources_and_priority(tmp_path):
    """What each job of the dry run asks for (memory, wall time, priority) is its step's
    record's, for every step of a session with every optional step on."""
    import json

    from conftest import snakemake

    cfg_path, cfg = _session(tmp_path, True)
    proc = snakemake(cfg_path, "-n", workdir=tmp_path, check=True)
    jobs, current = [], None
    for line in (proc.stdout + proc.stderr).splitlines():
        line = line.strip()
        if m := re.match(r"^(?:local)?rule (\w+):$", line):
            current = {"rule": m.group(1), "wildcards": {}, "resources": {}, "priority": 0}
            jobs.append(current)
        elif current and (m := re.match(r"^wildcards: (.*)$", line)):
            current["wildcards"] = dict(kv.split("=", 1) for kv in m.group(1).split(", "))
        elif current and (m := re.match(r"^resources: (.*)$", line)):
            current["resources"] = dict(kv.split("=", 1) for kv in m.group(1).split(", "))
        elif current and (m := re.match(r"^priority: (-?\d+)$", line)):
            current["priority"] = int(m.group(1))
    config = deep_merge(schema_defaults(load_schema("config.schema.yaml")), cfg)
    meta = json.loads((tmp_path / "results" / "s1" / "metadata.json").read_text())
    checked = set()
    for job in jobs:
        if job["rule"] in TARGETS:
            continue
        step = registry.STEPS[job["rule"]]
        m = registry.subject_meta(job["wildcards"]["subject"], [meta]) if step.scope == "subject" else meta
        want = step.estimate(m, config, 1, job["wildcards"].get("part") if step.scope == "part" else None)
        got = {k: int(job["resources"][k]) for k in ("mem_mb", "runtime")}
        assert got == want and job["priority"] == step.priority, (job, want)
        checked.add(job["rule"])
    assert checked == set(registry.STEPS) - {"cellpose_import"}  # on request only


def test_volume_stats_request_holds_its_measured_peak_at_the_size_of_a_real_session():
    """volume_stats of 30 planes x 256² x 3,000 frames (benchmarks/scale.py, 2026-12-07, crosstalk
    measured on two threads) peaked at 3,940 MB (VmHWM of the job's own process): its model
    holds that with a margin, and its first request also the Snakemake process beside it."""
    from planeflow.plan.config import with_defaults

    vs = registry.STEPS["volume_stats"]
    meta = {"session_id": "s", "planes": list(range(30)), "nframes": 3000, "plane_shape": [256, 256],
            "parts": [{"part": 0, "shape": [256, 256], "offset": [0, 0]}]}
    config = {"volume": with_defaults("volume", None)}
    measured = 3940
    assert 1.1 * measured <= vs.memory(meta, config, None) <= 1.3 * measured
    assert 0.5 <= measured / vs.estimate(meta, config, attempt=1)["mem_mb"] <= 0.9  # in the band, with room
