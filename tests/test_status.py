"""planeflow status on results trees written here (no Snakemake run): states from outputs,
logs and Snakemake's incomplete markers and locks (issue 13, item 1). The end-to-end
check on a real failed plane is in tests/test_workflow.py."""
from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from planeflow import PlaneflowError
from planeflow.plan.layout import Layout, plane_folder_files
from planeflow.plan.status import collect, format_table, log_error
from planeflow.synth.results_tree import DONE_LOG, write_finished_session

CONFIG = {"cellpose": {"export": False}, "nwb_export": {"enabled": False}, "raw_compress": {"enabled": False},
          "registration": {"shared_motion": "off"}}
DONE = DONE_LOG


def build_tree(root: Path, nsessions: int, nplanes: int, nparts: int = 1, config: dict = CONFIG) -> Layout:
    """A finished results tree: every output of session_outputs (with ``config``), logs ending
    with 'done' (planeflow.synth.results_tree)."""
    for i in range(nsessions):
        meta = {"session_id": f"s{i:02d}", "planes": list(range(nplanes)),
                "parts": [{"part": q} for q in range(nparts)]}
        write_finished_session(root, meta, config)
    return Layout(root)


def mark_incomplete(workdir: Path, output: str):
    d = workdir / ".snakemake" / "incomplete"
    d.mkdir(parents=True, exist_ok=True)
    name = base64.urlsafe_b64encode(os.path.relpath(output, workdir).encode()).decode()
    (d / name).write_text(json.dumps({"external_jobid": "4242"}))


def states(status, sid):
    s = next(x for x in status["sessions"] if x["session"] == sid)
    return s["planes"], s["session_steps"]


def test_every_state_from_disk(tmp_path, monkeypatch):
    lay = build_tree(tmp_path / "results", 2, 4)
    (tmp_path / ".snakemake").mkdir()
    # s00 plane 1: registration failed with planeflow's one-line error; later steps never ran
    for step in ("registration", "detection", "postprocess"):
        for f in lay.part_files(step, "s00", 1, 0).values():
            os.unlink(f)
        os.unlink(lay.log(step, "s00", 1, 0))
    for f in plane_folder_files(lay.plane_dir("s00", 1)).values():
        os.unlink(f)
    Path(lay.log("registration", "s00", 1, 0)).write_text(
        DONE.splitlines()[0] + "\n2026-01-01 10:00:01,000 [ERROR] planeflow: binary 'x/data_raw.bin' "
        "is truncated or corrupt: 10 bytes, expected 20.\n")
    # s00 plane 2: detection killed (no marker left: the run went on) -> failed, no 'done'
    for f in lay.part_files("detection", "s00", 2, 0).values():
        os.unlink(f)
    Path(lay.log("detection", "s00", 2, 0)).write_text(DONE.splitlines()[0] + "\nsome suite2p output\n")
    # s01 plane 3: detection started and did not finish (marker, no lock) -> incomplete
    mark_incomplete(tmp_path, lay.part_file("detection", "stat", "s01", 3, 0))
    # s01 plane 0: never run -> pending
    for f in lay.part_files("postprocess", "s01", 0, 0).values():
        os.unlink(f)
    os.unlink(lay.log("postprocess", "s01", 0, 0))

    monkeypatch.chdir(tmp_path)  # the workdir is found from the current folder
    st = collect(str(tmp_path / "results"))
    assert st["workdir"] == str(tmp_path)
    planes, sess = states(st, "s00")
    assert planes[0] == dict.fromkeys(("binary_write", "registration", "detection", "postprocess", "merge"), "done")
    assert planes[1]["registration"] == "failed" and planes[1]["detection"] == "pending"
    assert planes[2]["detection"] == "failed" and planes[3]["merge"] == "done"
    assert sess == {"volume_stats": "done", "qc": "done"}
    planes, _ = states(st, "s01")
    assert planes[3]["detection"] == "incomplete" and planes[0]["postprocess"] == "pending"
    problems = {(p["session"], p["plane"], p["step"]): p for p in st["problems"]}
    assert set(problems) == {("s00", 1, "registration"), ("s00", 2, "detection"), ("s01", 3, "detection")}
    reg = problems[("s00", 1, "registration")]
    assert reg["error"] == "binary 'x/data_raw.bin' is truncated or corrupt: 10 bytes, expected 20."
    assert reg["log"] == lay.log("registration", "s00", 1, 0)
    assert reg["rerun"] == {"local": f"snakemake {lay.plane_dir('s00', 1)}",
                            "slurm": f"snakemake --profile slurm {lay.plane_dir('s00', 1)}"}
    assert "without planeflow's 'done' line" in problems[("s00", 2, "detection")]["error"]
    assert problems[("s01", 3, "detection")]["jobid"] == "4242"
    assert st["counts"]["failed"] == 2 and st["counts"]["incomplete"] == 1
    text = format_table(st)
    assert "FAILED: s00 plane 1, step registration" in text and "INCOMPLETE: s01 plane 3" in text
    rows = {tuple(ln.split()[:2]): ln.split()[2:] for ln in text.splitlines() if ln.startswith("s0")}
    assert rows[("s00", "0")] == ["done"] * 5 + ["volume_stats:", "done,", "qc:", "done"]
    assert rows[("s00", "1")] == ["done", "failed", "pending", "pending", "pending"]
    assert rows[("s00", "3")] == ["done"] * 5
    assert "lock" not in text.lower()
    # a held lock: the marked job is running, and the lock is reported with --unlock advice
    (tmp_path / ".snakemake" / "locks").mkdir()
    (tmp_path / ".snakemake" / "locks" / "0.output.lock").write_text("x\n")
    st = collect(str(tmp_path / "results"), sessions=["s01"])
    assert [s["session"] for s in st["sessions"]] == ["s01"]
    assert states(st, "s01")[0][3]["detection"] == "running"
    assert "snakemake --unlock" in format_table(st)


def test_finished_sessions_collapse_to_one_row(tmp_path):
    build_tree(tmp_path / "results", 2, 5, nparts=2)
    st = collect(str(tmp_path / "results"), workdir=str(tmp_path))
    assert st["counts"] == {"done": 2 * (5 * (4 * 2 + 1) + 2), "failed": 0, "running": 0, "incomplete": 0, "pending": 0}
    rows = [ln for ln in format_table(st).splitlines() if ln.startswith("s0")]
    assert len(rows) == 2 and all(" 0-4 " in r for r in rows), rows


def test_crosstalk_subtract_steps_shown_once_they_ran(tmp_path):
    """volume.crosstalk: subtract: the per-part crosstalk_subtract jobs and the session's
    crosstalk job are listed (and their failures reported) once their folders exist."""
    lay = build_tree(tmp_path / "results", 1, 3, config={**CONFIG, "volume": {"crosstalk": "subtract"}})
    st = collect(str(tmp_path / "results"), workdir=str(tmp_path))
    planes, sess = states(st, "s00")
    assert all(planes[p]["crosstalk_subtract"] == "done" for p in range(3)), planes
    assert sess == {"crosstalk": "done", "volume_stats": "done", "qc": "done"}
    assert st["counts"]["done"] == 3 * (4 + 1 + 1) + 3
    # crosstalk_subtract of plane 2 failed; the session's crosstalk job died without its 'done' line
    for f in lay.part_files("crosstalk_subtract", "s00", 2, 0).values():
        os.unlink(f)
    Path(lay.log("crosstalk_subtract", "s00", 2, 0)).write_text(
        DONE.splitlines()[0] + "\n2026-01-01 10:00:01,000 [ERROR] planeflow: binary 'x/data.bin' is truncated\n")
    os.unlink(lay.crosstalk("s00"))
    Path(lay.log("crosstalk", "s00")).write_text(DONE.splitlines()[0] + "\n")
    st = collect(str(tmp_path / "results"), workdir=str(tmp_path))
    planes, sess = states(st, "s00")
    assert planes[2]["crosstalk_subtract"] == "failed" and planes[1]["crosstalk_subtract"] == "done"
    assert sess["crosstalk"] == "failed"
    problems = {(p["plane"], p["step"]): p for p in st["problems"]}
    assert set(problems) == {(2, "crosstalk_subtract"), (None, "crosstalk")}
    assert problems[(2, "crosstalk_subtract")]["error"] == "binary 'x/data.bin' is truncated"
    assert problems[(None, "crosstalk")]["rerun"]["local"] == f"snakemake {lay.crosstalk('s00')}"
    assert "FAILED: s00, step crosstalk" in format_table(st)
    # estimate (no crosstalk folders): neither is shown
    build_tree(tmp_path / "est", 1, 2)
    planes, sess = states(collect(str(tmp_path / "est"), workdir=str(tmp_path)), "s00")
    assert "crosstalk_subtract" not in planes[0] and "crosstalk" not in sess


def test_unknown_session_and_folder_are_clear_errors(tmp_path):
    build_tree(tmp_path / "results", 1, 1)
    with pytest.raises(PlaneflowError, match="session.*nope.*not found.*known: s00"):
        collect(str(tmp_path / "results"), sessions=["nope"])
    with pytest.raises(PlaneflowError, match="results folder .* not found"):
        collect(str(tmp_path / "elsewhere"))


@pytest.mark.parametrize("text, expected", [
    (DONE, None),
    ("2026-01-01 10:00:00,000 [INFO] planeflow: start\n"
     "2026-01-01 10:00:01,000 [ERROR] planeflow: rule detection, plane=3 failed:\n"
     "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
     "ValueError: operands could not be broadcast\n", "ValueError: operands could not be broadcast"),
    ("2026-01-01 10:00:01,000 [ERROR] planeflow: invalid configuration:\n  config: setting 'a': bad\n",
     "invalid configuration: config: setting 'a': bad"),
    ("", "the job ended without planeflow's 'done' line (killed, e.g. for memory or time?); "
         "last log line: (empty log)"),
])
def test_log_error(text, expected):
    assert log_error(text) == expected


def test_cli_json_and_exit_status(tmp_path, capsys, monkeypatch):
    from planeflow.cli import main

    monkeypatch.chdir(tmp_path)  # no config/config.yaml here: optional steps shown once they ran
    lay = build_tree(tmp_path / "results", 1, 2)
    assert main(["status", str(tmp_path / "results"), "-d", str(tmp_path)]) == 0
    os.unlink(lay.volume_file("summary", "s00"))
    Path(lay.log("volume_stats", "s00")).write_text(
        "2026-01-01 10:00:01,000 [ERROR] planeflow: no plane finished\n")
    capsys.readouterr()
    assert main(["status", str(tmp_path / "results"), "--json", "-d", str(tmp_path)]) == 1
    st = json.loads(capsys.readouterr().out)
    (prob,) = st["problems"]
    assert prob["step"] == "volume_stats" and prob["error"] == "no plane finished"
    assert prob["rerun"]["local"] == f"snakemake {lay.volume_file('offsets', 's00')}"


def measure(nsessions=50, nplanes=30, root=None):
    """Seconds to read the status of a finished nsessions x nplanes tree (for the report)."""
    import tempfile

    root = Path(root or tempfile.mkdtemp())
    t0 = time.perf_counter()
    build_tree(root / "results", nsessions, nplanes)
    t1 = time.perf_counter()
    st = collect(str(root / "results"), workdir=str(root))
    t2 = time.perf_counter()
    format_table(st)
    return {"build_s": t1 - t0, "collect_s": t2 - t1, "format_s": time.perf_counter() - t2,
            "jobs": sum(st["counts"].values())}


if __name__ == "__main__":  # python tests/test_status.py [SESSIONS PLANES]: the 50 x 30 timing
    import sys

    print(measure(*map(int, sys.argv[1:3])) if len(sys.argv) > 2 else measure())


def test_removed_intermediates_count_as_done_once_the_plane_folder_is(tmp_path, monkeypatch):
    """cleanup.intermediates: a finished run keeps none of detection's outputs; detection is done
    when the plane's final folder is, and pending when that folder is gone too."""
    config = {**CONFIG, "cleanup": {"raw_binary": True, "intermediates": True}}
    lay = build_tree(tmp_path / "results", 1, 2, config=config)
    assert not os.path.exists(lay.part_file("detection", "stat", "s00", 0, 0))
    assert not os.path.exists(lay.part_file("postprocess", "dff", "s00", 0, 0))
    assert os.path.exists(lay.part_file("postprocess", "roi_stats", "s00", 0, 0))  # kept
    for f in plane_folder_files(lay.plane_dir("s00", 1)).values():
        os.unlink(f)
    (tmp_path / ".snakemake").mkdir()
    monkeypatch.chdir(tmp_path)
    planes, _ = states(collect(str(tmp_path / "results"), config=config), "s00")
    assert planes[0]["detection"] == "done" and planes[0]["postprocess"] == "done"
    assert planes[1]["detection"] == "pending" and planes[1]["merge"] == "pending"
    # without the setting, the same tree has detection's outputs missing
    planes, _ = states(collect(str(tmp_path / "results"), config=CONFIG), "s00")
    assert planes[0]["detection"] != "done"
