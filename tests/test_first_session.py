"""The first session with one's own data: `planeflow inspect`, `planeflow init`, and a
console that shows planeflow's lines only (third-party noise goes to the job logs)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO, dry_run_jobs, write_tiff
from planeflow.cli import main as cli
from planeflow import PlaneflowError
from planeflow.plan.inspect import inspect_session
from planeflow.plan.session import resolve_files, session_metadata

REAL_SI = "scanimage/si57_resonant_512px_3frames_2ch.tif"


# ---- small recordings ----------------------------------------------------------------------

def lbm_mroi(folder: Path, seed: int = 1, nframes: int = 120) -> dict:
    """ScanImage LBM: 3 planes as channels, 2 mROI stripes of 32 px with 4 fly-to lines,
    scan phase planted at 2 px, over 2 files."""
    from planeflow.synth.scanimage_session import simulate_scanimage_session

    return simulate_scanimage_session(folder, nplanes=3, nframes=nframes, roi_widths=(32, 32), height=48,
                                      fly_to_lines=4, bidiphase=2, nfiles=2, cells_per_plane=4, seed=seed,
                                      name="lbm")


def piezo(folder: Path, name: str = "piezo_00001_00001.tif", nvol: int = 60, fps: int = 2) -> Path:
    """ScanImage piezo (fast z) stack: 3 slices 2.5 µm apart, ``fps`` frames per slice, 1 flyback."""
    from planeflow.synth.scanimage_writer import make_tags, write_scanimage_tiff

    software, artist = make_tags(fs=30.0, page_shape=(32, 40), zoom=2.0,
                                 stack={"nplanes": 3, "dz": 2.5, "flyback": 1, "frames_per_slice": fps})
    pages = np.random.default_rng(0).integers(0, 1000, size=(nvol * (3 * fps + 1), 32, 40), dtype=np.int16)
    folder.mkdir(parents=True, exist_ok=True)
    return write_scanimage_tiff(folder / name, pages, software=software, artist=artist, fs=30.0)


def plain(folder: Path, name: str = "rec.tif", npages: int = 120) -> Path:
    return write_tiff(folder / name, np.zeros((npages, 16, 16), np.int16))


def hdf5(path: Path, shape: tuple) -> Path:
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros(shape, np.int16)
    return path


def workflow_meta(data_path, tmp: Path, acquisition: dict | None = None, **row) -> dict:
    """What the workflow computes at DAG time for one sheet row."""
    row = {"session_id": "s", "data_path": str(data_path), **row}
    return session_metadata(row, str(tmp / "results"), acquisition)


SAME = ("nplanes", "planes", "fs", "dx", "dy", "dz", "zoom", "plane_shape", "roi_mode")


def reported_stack(meta: dict) -> str:
    """The workflow's stack type as inspect reports it: pages no header stack explains
    ("single_plane" in the metadata) with more than one plane are "interleaved"."""
    if meta["stack_type"] == "single_plane" and meta["nplanes"] != 1:
        return "interleaved"
    return meta["stack_type"]


def assert_same_as_workflow(rep: dict, meta: dict):
    for key in SAME:
        assert rep[key] == meta[key], key
    assert rep["stack_type"] == reported_stack(meta)
    assert rep["frames_per_plane"] == meta["nframes"]
    assert rep["frame_shape"] == [meta["Ly"], meta["Lx"]]
    assert rep["parts"] == len(meta["parts"])
    assert [f["path"] for f in rep["files"]] == meta["files"]
    assert rep["bidiphase_correction"] == meta["bidiphase"]["enabled"]
    if meta["format"] == "tiff":
        assert [f["pages"] for f in rep["files"]] == meta["pages_per_file"]
        assert rep["pages_per_volume"] == meta["layout"]["pages_per_volume"]
    if meta.get("scanimage"):
        assert len(rep["rois"]) == meta["nrois"]
        assert [r["rows"] for r in rep["rois"]] == meta["scanimage"]["roi_rows"]


# ---- inspect ---------------------------------------------------------------------------------

def test_inspect_real_scanimage_file(shared_data, tmp_path, capsys):
    path = shared_data / REAL_SI
    rep = inspect_session(str(path), bidi=True)
    assert rep["format"] == "scanimage-tiff" and rep["scanimage"]["version"] == "5.7.0"
    assert rep["stack_type"] == "single_plane" and "2 channel(s) per frame" in rep["stack_reason"]
    # the file's quirk: channelSave = 1 but both channels are saved, 6 pages = 3 frames x 2
    assert rep["nchannels"] == 2 and rep["pages"] == 6 and rep["frames_per_plane"] == 3
    assert any("channelSave" in w for w in rep["warnings"])
    assert rep["fs"] == pytest.approx(29.9786) and rep["fs_source"] == "header"
    assert rep["zoom"] == 2 and rep["dx"] == pytest.approx(0.32958984375) and rep["frame_shape"] == [512, 512]
    assert rep["scanimage"]["acquisition_start"].startswith("2023-04-13T17:45")
    assert rep["bidirectional"] is True and rep["bidiphase_correction"] is True
    assert rep["bidiphase_estimate"]["frames_per_plane"] == 3
    # 3 frames are too few for a run: the workflow stops with the same message
    assert any("only 3 frames per plane" in p for p in rep["problems"])
    from planeflow import PlaneflowError

    with pytest.raises(PlaneflowError, match="only 3 frames per plane"):
        workflow_meta(path, tmp_path)
    assert cli(["inspect", str(path), "--config", str(REPO / "config" / "config.yaml")]) == 1
    out = capsys.readouterr().out
    assert "single_plane" in out and "29.98 Hz" in out and "a run would stop" in out


def test_inspect_lbm_mroi_equals_workflow_and_finds_the_scan_phase(tmp_path, capsys):
    sim = lbm_mroi(tmp_path / "lbm")
    for acq in (None, {"roi_mode": "separate"}):
        rep = inspect_session(str(tmp_path / "lbm"), acquisition=acq)
        meta = workflow_meta(tmp_path / "lbm", tmp_path / ("sep" if acq else "stitch"), acq)
        assert_same_as_workflow(rep, meta)
    assert rep["stack_type"] == "lbm" and rep["nplanes"] == 3 and rep["parts"] == 2
    assert [(r["width"], r["height"]) for r in rep["rois"]] == [(32, 48), (32, 48)]
    assert rep["fly_to_lines"] == 4 and rep["frame_shape"] == list(sim["page_shape"])
    assert rep["fs"] == 15.0 and rep["frames_per_plane"] == 120 and rep["problems"] == []
    assert [m["column"] for m in rep["missing"]] == ["dz"]  # LBM headers hold no bead spacing
    assert any("120 frames per plane" in w for w in rep["warnings"])
    assert cli(["inspect", str(tmp_path / "lbm"), "--json", "--bidi"]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["session_id"] == "lbm" and js["nplanes"] == 3
    assert set(js["bidiphase_estimate"]["offsets"].values()) == {2.0}  # the planted offset


def test_inspect_piezo_equals_workflow(tmp_path):
    path = piezo(tmp_path / "pz")
    rep = inspect_session(str(path))
    assert_same_as_workflow(rep, workflow_meta(path, tmp_path))
    assert rep["stack_type"] == "piezo" and "3 slices" in rep["stack_reason"]
    assert rep["dz"] == 2.5 and rep["dz_source"] == "header"
    assert rep["frames_per_slice"] == 2 and rep["average_slices"] and rep["frames_per_plane"] == 60
    assert rep["pages_per_volume"] == 7 and rep["missing"] == []


def test_inspect_plain_tiff_and_hdf5_say_what_is_missing(tmp_path, capsys):
    import h5py

    plain(tmp_path / "plain", npages=150)
    rep = inspect_session(str(tmp_path / "plain"))
    assert rep["format"] == "tiff" and rep["nplanes"] is None and rep["fs"] is None
    assert {m["column"] for m in rep["missing"] if m["required"]} == {"nplanes", "fs"}
    assert len(rep["problems"]) == 2  # a run stops on both
    rep = inspect_session(str(tmp_path / "plain"), row={"nplanes": 3, "fs": 10.0})
    assert rep["problems"] == [] and rep["frames_per_plane"] == 50
    assert_same_as_workflow(rep, workflow_meta(tmp_path / "plain", tmp_path, nplanes=3, fs=10.0))
    assert cli(["inspect", str(tmp_path / "plain")]) == 1
    assert "nplanes (required)" in capsys.readouterr().out

    h5 = tmp_path / "rec.h5"
    with h5py.File(h5, "w") as f:
        f["data"] = np.zeros((60, 2, 16, 16), np.int16)
    rep = inspect_session(str(h5))
    assert rep["format"] == "hdf5" and rep["nplanes"] == 2 and rep["fs"] is None
    assert [m["column"] for m in rep["missing"] if m["required"]] == ["fs"]
    rep = inspect_session(str(h5), row={"fs": 20.0})
    assert_same_as_workflow(rep, workflow_meta(h5, tmp_path / "h5", fs=20.0))


def test_plain_tiff_planes_say_where_their_number_comes_from(tmp_path, capsys):
    """A 3-plane TIFF without a header: never "single plane" for an unknown count."""
    plain(tmp_path / "raw" / "rec1", npages=150)
    folder = str(tmp_path / "raw" / "rec1")
    assert cli(["inspect", folder]) == 1
    out = capsys.readouterr().out
    assert "  planes        unknown\n" in out and "stack type    unknown: plain TIFF" in out
    assert "single" not in out and "per volume" not in out  # no volume size without nplanes
    rep = inspect_session(folder)
    assert rep["stack_type"] == "unknown" and rep["planes_text"] == "planes unknown"
    assert rep["nplanes_source"] is None and rep["pages_per_volume"] is None

    assert cli(["inspect", folder, "--nplanes", "3", "--fs", "10"]) == 0
    out = capsys.readouterr().out
    assert "  planes        3 planes (from --nplanes)\n" in out
    assert "pages are read as 3 planes interleaved page by page (nplanes from --nplanes)" in out
    assert "10 Hz per plane (from --fs)" in out and "single" not in out
    rep = inspect_session(folder, row={"nplanes": 3, "fs": 10.0})  # a sheet row
    assert rep["planes_text"] == "3 planes (from the sheet)" and rep["fs_source"] == "sheet"
    assert rep["stack_type"] == "interleaved" and "(nplanes from the sheet)" in rep["stack_reason"]
    assert_same_as_workflow(rep, workflow_meta(folder, tmp_path, nplanes=3, fs=10.0))
    rep = inspect_session(folder, row={"nplanes": 1, "fs": 10.0})
    assert rep["stack_type"] == "single_plane" and rep["planes_text"] == "1 plane (from the sheet)"

    assert cli(["init", str(tmp_path / "raw"), "--sheet", str(tmp_path / "mine.tsv")]) == 0
    out = capsys.readouterr().out
    assert "  rec1  plain TIFF, planes unknown  <- " in out and "single" not in out
    assert "nplanes (required; all sessions)" in out


def workflow_reads(data_path) -> bool:
    """Whether the workflow's resolve_files takes ``data_path``."""
    try:
        resolve_files(str(data_path))
    except PlaneflowError:
        return False
    return True


@pytest.mark.parametrize("shape, axes", [((60, 16, 16), "(T, Y, X)"), ((60, 2, 16, 16), "(T, Z, Y, X)")])
def test_inspect_and_init_find_the_one_hdf5_file_of_a_folder(tmp_path, capsys, shape, axes):
    h5 = hdf5(tmp_path / "raw" / "rec.h5", shape)
    folder = tmp_path / "raw"
    rep = inspect_session(str(folder), row={"fs": 20.0})
    assert [f["path"] for f in rep["files"]] == [str(h5)] and rep["format"] == "hdf5"
    assert rep["array_shape"] == list(shape) and rep["array_axes"] == axes
    assert f"hdf5 array of shape {axes} = {shape}" in rep["stack_reason"]
    nplanes = 1 if len(shape) == 3 else shape[1]
    assert rep["nplanes"] == nplanes and rep["nplanes_source"] == "array shape"
    if workflow_reads(folder):  # session.py takes a folder's one zarr/HDF5 recording
        assert rep["problems"] == []
        assert_same_as_workflow(rep, workflow_meta(folder, tmp_path, fs=20.0))
    else:  # a run on the folder stops: inspect says so and names the file to use
        assert len(rep["problems"]) == 1 and f"'{h5}': set data_path to that path" in rep["problems"][0]
    assert_same_as_workflow(rep, workflow_meta(h5, tmp_path / "file", fs=20.0))

    cli(["inspect", str(folder), "--fs", "20"])
    out = capsys.readouterr().out
    assert f"stack type    array: hdf5 array of shape {axes} = {shape}" in out
    assert ("(T, Z, Y, X)" in out) == (len(shape) == 4)
    assert f"  planes        {nplanes} plane" in out and "(from the array's shape)" in out

    assert cli(["init", str(folder), "--sheet", str(tmp_path / "s.tsv")]) == 0
    out = capsys.readouterr().out
    assert f"  rec  hdf5 array {axes}, {nplanes} plane" in out
    assert read_sheet(tmp_path / "s.tsv")[0]["data_path"] == str(h5)


def test_inspect_a_folder_of_several_arrays_names_them(tmp_path, capsys):
    zarr = pytest.importorskip("zarr")
    hdf5(tmp_path / "raw" / "a.h5", (60, 16, 16))
    z = zarr.create_array(str(tmp_path / "raw" / "b.zarr"), shape=(60, 16, 16), dtype="int16")
    z[:] = 0
    assert cli(["inspect", str(tmp_path / "raw")]) == 1
    err = capsys.readouterr().err
    assert "2 zarr/HDF5 recordings (a.h5, b.zarr)" in err
    (tmp_path / "raw" / "a.h5").unlink()  # one zarr store left: found as the HDF5 file is
    rep = inspect_session(str(tmp_path / "raw"), row={"fs": 20.0})
    assert rep["format"] == "zarr" and rep["array_axes"] == "(T, Y, X)"
    assert rep["files"] == [{"path": str(tmp_path / "raw" / "b.zarr")}]


def test_inspect_a_path_without_recordings_is_one_clear_error(tmp_path, capsys):
    assert cli(["inspect", str(tmp_path / "nowhere")]) == 1
    assert "does not exist" in capsys.readouterr().err


# ---- init ------------------------------------------------------------------------------------

def read_sheet(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    cols = lines[0].split("\t")
    return [dict(zip(cols, ln.split("\t"))) for ln in lines[1:]]


def write_config(path: Path, sheet: Path, nwb: bool) -> Path:
    path.write_text(yaml.safe_dump({"sessions": str(sheet), "results_dir": str(path.parent / "results"),
                                    "nwb_export": {"enabled": nwb}}))
    return path


@pytest.fixture(scope="module")
def neuroblueprint(tmp_path_factory):
    """rawdata/sub-001/ses-01, sub-001/ses-02 (LBM mROI) and sub-002/ses-01 (piezo)."""
    root = tmp_path_factory.mktemp("nb") / "project"
    raw = root / "rawdata"
    lbm_mroi(raw / "sub-001" / "ses-01" / "funcimg", seed=1)
    lbm_mroi(raw / "sub-001" / "ses-02" / "funcimg", seed=2, nframes=100)
    piezo(raw / "sub-002" / "ses-01" / "funcimg")
    (raw / "sub-002" / "ses-02" / "behav").mkdir(parents=True)  # no imaging: skipped
    (root / "derivatives").mkdir()
    return root


def test_init_neuroblueprint_writes_one_row_per_session_and_a_dry_run_lists_every_job(
        neuroblueprint, tmp_path, capsys):
    sheet, cfg = tmp_path / "sessions.tsv", tmp_path / "config.yaml"
    write_config(cfg, sheet, nwb=True)
    assert cli(["init", str(neuroblueprint), "--sheet", str(sheet), "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    rows = read_sheet(sheet)
    raw = neuroblueprint / "rawdata"
    assert [r["session_id"] for r in rows] == ["sub-001_ses-01", "sub-001_ses-02", "sub-002_ses-01"]
    assert [r["subject_id"] for r in rows] == ["sub-001", "sub-001", "sub-002"]
    assert rows[2]["data_path"] == str(raw / "sub-002" / "ses-01" / "funcimg")
    # the header values are those the workflow uses
    for r in rows:
        meta = workflow_meta(r["data_path"], tmp_path / r["session_id"])
        assert int(r["nplanes"]) == meta["nplanes"] and float(r["fs"]) == pytest.approx(meta["fs"])
        assert float(r["dx"]) == pytest.approx(meta["dx"]) and float(r["dy"]) == pytest.approx(meta["dy"])
    assert [r["dz"] for r in rows] == ["", "", "2.5"]
    # the columns a run needs are there, empty, and listed
    for col in ("session_start_time", "species", "sex", "age", "indicator", "location", "tau", "diameter"):
        assert all(r[col] == "" for r in rows), col
    assert "dz (recommended; sub-001_ses-01, sub-001_ses-02)" in out
    assert "species (required; all sessions)" in out
    assert "sub-002/ses-02: no recording in funcimg/" in out
    # the sheet is valid for the workflow: with the NWB export off, a dry run lists every job
    sheet2, cfg2 = tmp_path / "no_nwb" / "sessions.tsv", tmp_path / "no_nwb" / "config.yaml"
    sheet2.parent.mkdir()
    write_config(cfg2, sheet2, nwb=False)
    assert cli(["init", str(neuroblueprint), "--sheet", str(sheet2), "--config", str(cfg2)]) == 0
    assert "species" not in sheet2.read_text().splitlines()[0]
    jobs = dry_run_jobs(cfg2)
    written = sorted((w["session"], w["plane"]) for rule, w in jobs if rule == "binary_write")
    assert written == sorted([(s, str(p)) for s in ("sub-001_ses-01", "sub-001_ses-02", "sub-002_ses-01")
                              for p in range(3)])
    assert sorted(w["session"] for rule, w in jobs if rule == "volume_stats") == [r["session_id"] for r in rows]
    # one tracking job per NeuroBlueprint subject (issue 23)
    assert sorted(w["subject"] for rule, w in jobs if rule == "tracking") == ["sub-001", "sub-002"]


def test_init_flat_folders_and_refusal_without_force(tmp_path, capsys):
    root = tmp_path / "raw"
    plain(root / "mouse1" / "day1", "a_00001.tif")
    plain(root / "mouse1" / "day1", "a_00002.tif")
    piezo(root / "day2", "run_00001_00001.tif")  # two ScanImage acquisitions in one folder
    piezo(root / "day2", "run_00002_00001.tif")
    sheet, cfg = tmp_path / "sessions.tsv", tmp_path / "config.yaml"
    write_config(cfg, sheet, nwb=False)
    assert cli(["init", str(root), "--sheet", str(sheet), "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    rows = read_sheet(sheet)
    assert [r["session_id"] for r in rows] == ["day2_run_00001", "day2_run_00002", "mouse1_day1"]
    assert rows[0]["data_path"] == str(root / "day2" / "run_00001_*.tif")
    assert rows[2]["data_path"] == str(root / "mouse1" / "day1")
    assert rows[0]["nplanes"] == "3" and rows[0]["dz"] == "2.5" and rows[0]["fs"]
    assert rows[2]["nplanes"] == "" and rows[2]["fs"] == ""  # plain TIFFs: to fill in
    assert "nplanes (required; mouse1_day1)" in out and "fs (required; mouse1_day1)" in out
    assert "subject_id" not in rows[0]  # the NWB export is off

    # a folder that is itself one session
    sheet_one = tmp_path / "one.tsv"
    assert cli(["init", str(root / "mouse1" / "day1"), "--sheet", str(sheet_one), "--config", str(cfg)]) == 0
    assert [r["session_id"] for r in read_sheet(sheet_one)] == ["day1"]

    # an existing sheet is kept without --force
    before = sheet.read_text()
    capsys.readouterr()
    assert cli(["init", str(root / "mouse1"), "--sheet", str(sheet)]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert sheet.read_text() == before
    assert cli(["init", str(root / "mouse1"), "--sheet", str(sheet), "--force", "--config", str(cfg)]) == 0
    assert [r["session_id"] for r in read_sheet(sheet)] == ["day1"]
    assert sorted(os.listdir(tmp_path)) == ["config.yaml", "one.tsv", "raw", "sessions.tsv"]  # no temporary left


def test_init_without_recordings_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli(["init", str(tmp_path / "empty"), "--sheet", str(tmp_path / "s.tsv")]) == 1
    assert "no TIFF file" in capsys.readouterr().err and not (tmp_path / "s.tsv").exists()


# ---- a quiet console -------------------------------------------------------------------------

NOISY_JOB = textwrap.dedent("""
    import logging, os, sys, warnings
    from types import SimpleNamespace
    from planeflow import PlaneflowError
    from planeflow.steps._job import run_job, start_job

    sm = SimpleNamespace(log=[sys.argv[1]], rule="demo", wildcards={"session": "s", "plane": "0"}, threads=1)
    start_job(sm)
    print("a library printing at import: pip install something")

    def fn():
        os.write(2, b"C-level noise on fd 2\\n")
        logging.getLogger("cellpose.vit").warning("Could not import CPDINO, run `pip install x`")
        warnings.warn("The given NumPy array is not writable", UserWarning)
        logging.getLogger("suite2p").info("registering 1 channels")
        logging.getLogger("planeflow").info("a step's detail line")
        logging.getLogger("planeflow").warning("a planeflow warning")
        if sys.argv[2] == "bad-input":
            raise PlaneflowError("the input is bad: fix it")
        if sys.argv[2] == "bug":
            raise ValueError("boom")

    run_job(sm, fn)
""")


@pytest.mark.parametrize("outcome", ["ok", "bad-input", "bug"])
def test_job_console_shows_planeflow_lines_only(tmp_path, outcome):
    log = tmp_path / "logs" / "demo.log"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-c", NOISY_JOB, str(log), outcome], capture_output=True,
                          text=True, env=env, timeout=120)
    console = proc.stdout + proc.stderr
    lines = console.splitlines()
    where = "rule demo, session=s, plane=0"
    assert lines[0] == f"planeflow: start {where} (threads=1)"
    assert lines[1] == "planeflow: warning: a planeflow warning"
    if outcome == "ok":
        assert proc.returncode == 0 and lines[2].startswith(f"planeflow: done {where} in ") and len(lines) == 3
    elif outcome == "bad-input":
        assert proc.returncode == 1
        assert lines[2:] == [f"planeflow: error: {where}: the input is bad: fix it (log: {log})"]
    else:
        assert proc.returncode == 1
        assert lines[2:] == [f"planeflow: error: {where} failed: ValueError: boom (log: {log})"]
    for noise in ("pip install", "UserWarning", "CPDINO", "C-level", "registering", "detail line"):
        assert noise not in console, noise
    text = log.read_text()
    for noise in ("pip install something", "UserWarning: The given NumPy array", "CPDINO", "C-level noise",
                  "registering 1 channels", "a step's detail line", "a planeflow warning",
                  f" planeflow: start {where}"):  # the form benchmarks/binary_write.py reads
        assert noise in text, noise
    if outcome == "bug":
        assert "Traceback (most recent call last)" in text and "in fn\n" in text


@pytest.mark.workflow
def test_run_console_has_no_third_party_warnings(finished_session):
    console = finished_session["console"]
    assert "planeflow: start rule registration" in console and "planeflow: done rule detection" in console
    for noise in ("UserWarning", "pip install", "CPDINO", "[INFO] suite2p"):
        assert noise not in console, noise
    logs = finished_session["res"] / "logs"
    torch_steps = "".join(p.read_text() for step in ("registration", "detection") for p in (logs / step).glob("*.log"))
    # the third-party warnings of this environment (torch, cellpose) are kept in the job logs
    assert "UserWarning" in torch_steps or "CPDINO" in torch_steps
    assert "suite2p" in torch_steps
