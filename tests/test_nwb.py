"""NWB export: metadata checks, the chunked writer, and the exported file read back.

The workflow tests reuse the ``finished_session`` fixture (2 planes, 128 x 128 px,
500 frames). A second config file holds everything of the fixture's config plus the
nwb_export section and a sessions sheet with the metadata columns; Snakemake uses only
the last of several ``--configfile`` options, so it is a complete config of its own.
"""
from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pytest
import yaml

from conftest import dry_run_jobs, make_config, snakemake

from planeflow import PlaneflowError
from planeflow.plan import config as pfc
from planeflow.plan import nwb_meta as pfnwb

workflow = pytest.mark.workflow

GOOD = {"session_start_time": "2024-03-05T09:15:00+01:00", "subject_id": "m042", "species": "Mus musculus",
        "sex": "F", "age": "P84D", "indicator": "GCaMP6s", "location": "VISp"}
SHEET_COLS = ["session_id", "data_path", "nplanes", "fs", "tau", "diameter", "dx", "dy", "dz"]


# ---- metadata (runs at DAG-build time) ------------------------------------------------
def test_sheet_cell_wins_over_config_default_and_identifier_is_stable():
    row = {"session_id": "s1", "data_path": "/x", **GOOD, "species": None, "lab": "Lab A"}
    defaults = {"species": "Rattus norvegicus", "lab": "Default lab", "excitation_lambda": 920}
    meta, missing, problems = pfnwb.resolve_metadata("s1", row, defaults)
    assert missing == [] and problems == []
    assert meta["species"] == "Rattus norvegicus"  # empty cell -> config default
    assert meta["lab"] == "Lab A"  # cell wins
    assert meta["excitation_lambda"] == 920.0
    assert meta["session_start_time"] == "2024-03-05T09:15:00+01:00"
    again, _, _ = pfnwb.resolve_metadata("s1", dict(row), defaults)
    other, _, _ = pfnwb.resolve_metadata("s2", dict(row), defaults)
    assert meta["identifier"] == again["identifier"] != other["identifier"]
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["identifier"])


@pytest.mark.parametrize("key, value, needle", [
    ("session_start_time", "2024-03-05T09:15:00", "has no timezone"),
    ("session_start_time", "5 March 2024", "not an ISO 8601"),
    ("session_start_time", "2999-01-01T00:00:00+00:00", "in the future"),
    ("age", "84 days", "not an ISO 8601 duration"),
    ("sex", "female", "must be one of M"),
    ("species", "mouse", "Latin binomial"),
])
def test_bad_metadata_values_are_named(key, value, needle):
    _, missing, problems = pfnwb.resolve_metadata("s1", {**GOOD, key: value})
    assert missing == [] and len(problems) == 1 and needle in problems[0]


def test_check_sessions_lists_every_session_and_where_to_fix_it():
    rows = {"a": {"session_id": "a", **GOOD, "age": None, "species": None},
            "b": {"session_id": "b", **GOOD, "sex": "X"}, "c": {"session_id": "c", **GOOD}}
    with pytest.raises(PlaneflowError) as e:
        pfnwb.check_sessions(rows, {"metadata": {}}, "my/sheet.tsv")
    msg = str(e.value)
    assert "session 'a': missing species, age" in msg and "session 'b': sex 'X'" in msg
    assert "'c'" not in msg and "my/sheet.tsv" in msg and "nwb_export.metadata" in msg
    del rows["b"]
    ok = pfnwb.check_sessions(rows, {"metadata": {"age": "P1Y", "species": "Mus musculus"}}, "s")
    assert ok["a"]["age"] == "P1Y" and ok["c"]["age"] == GOOD["age"]  # defaults fill empty cells only


def test_config_yaml_datetime_needs_timezone():
    naive = dt.datetime(2024, 3, 5, 9, 15)
    _, _, problems = pfnwb.resolve_metadata("s", {**GOOD, "session_start_time": naive})
    assert "has no timezone" in problems[0]
    aware = naive.replace(tzinfo=dt.timezone.utc)
    meta, _, problems = pfnwb.resolve_metadata("s", {**GOOD, "session_start_time": aware})
    assert problems == [] and meta["session_start_time"] == "2024-03-05T09:15:00+00:00"


def test_sheet_reads_nwb_columns_and_they_do_not_touch_the_processing_row(tmp_path):
    p = tmp_path / "s.tsv"
    p.write_text("session_id\tdata_path\tfs\tsubject_id\tage\texcitation_lambda\n"
                 "a\t/x\t7.5\tm1\tP90D\t920\n")
    row = pfc.read_sessions(str(p))[0]
    assert row["subject_id"] == "m1" and row["excitation_lambda"] == 920.0
    assert pfc.metadata_row(row) == {"session_id": "a", "data_path": "/x", "fs": 7.5}


def test_memory_request_adds_the_movie_buffer():
    from planeflow.plan import resources

    meta = {"session_id": "s", "planes": [0, 2], "nframes": 1000, "plane_shape": [512, 512],
            "parts": [{"part": 0, "shape": [512, 256], "offset": [0, 0]},
                      {"part": 1, "shape": [512, 256], "offset": [0, 256]}]}
    opts = {"include_movie": False, "chunk_frames": 500}
    without = resources.estimate("nwb_export", meta, {"nwb_export": opts}, 1)
    movie = resources.estimate("nwb_export", meta, {"nwb_export": {**opts, "include_movie": True}}, 1)
    # the movie buffer (500 frames of 512 x 512 int16, 4 copies) is added to the request
    assert abs(movie["mem_mb"] - without["mem_mb"] - 1048.6) <= 1
    assert resources.minutes("nwb_export", meta, {"nwb_export": {**opts, "include_movie": True}}) > without["runtime"]
    assert abs(resources.estimate("nwb_export", meta, {"nwb_export": opts}, 2)["mem_mb"] - 2 * without["mem_mb"]) <= 1


# ---- chunked writer ---------------------------------------------------------------------
def test_time_chunk_iterator_reads_bounded_blocks():
    from hdmf.data_utils import DataChunk

    from planeflow.steps.nwb_export import TimeChunkIterator

    src = np.arange(103 * 5 * 4, dtype=np.int16).reshape(103, 5, 4)
    asked, seen = [], []
    it = TimeChunkIterator(lambda t0, t1: asked.append((t0, t1)) or src[t0:t1], src.shape, np.int16,
                           frames_per_buffer=20, frames_per_chunk=8,
                           on_buffer=lambda t0, t1, nb: seen.append(nb))
    out = np.zeros_like(src)
    chunks = list(it)
    assert all(isinstance(c, DataChunk) for c in chunks)
    for c in chunks:
        out[c.selection] = c.data
    assert np.array_equal(out, src)
    assert max(t1 - t0 for t0, t1 in asked) <= 20 and len(asked) == len(chunks) == 7  # 16-frame blocks
    assert it.recommended_chunk_shape() == (8, 5, 4) and it.recommended_data_shape() == src.shape
    assert sum(seen) == src.nbytes


def _fake_plane(folder, n_rois, nframes, Ly, Lx, rng):
    """A minimal final suite2p folder (what merge writes) for direct calls of the writer."""
    folder.mkdir(parents=True)
    ops = {"Ly": Ly, "Lx": Lx, "nframes": nframes, "fs": 10.0, "yrange": [1, Ly - 1], "xrange": [2, Lx],
           "meanImg": rng.random((Ly, Lx)).astype(np.float32),
           "max_proj": rng.random((Ly - 2, Lx - 2)).astype(np.float32),
           "Vcorr": rng.random((Ly - 2, Lx - 2)).astype(np.float32)}
    stat = np.array([{"ypix": np.array([i, i + 1]), "xpix": np.array([i, i]), "lam": np.array([0.5, 1.0]),
                      "med": [i, i]} for i in range(n_rois)], dtype=object)
    files = {"ops": folder / "ops.npy", "stat": folder / "stat.npy", "iscell": folder / "iscell.npy"}
    np.save(files["ops"], ops, allow_pickle=True)
    np.save(files["stat"], stat, allow_pickle=True)
    np.save(files["iscell"], np.tile([1.0, 0.9], (n_rois, 1)).reshape(n_rois, 2))
    for k in ("F", "Fneu", "spks", "dff"):
        files[k] = folder / f"{k}.npy"
        np.save(files[k], rng.random((n_rois, nframes)).astype(np.float32))
    return files


def test_single_plane_without_rois_and_a_two_part_movie(tmp_path):
    """Writer called directly: unsuffixed names for one plane, no ROI table or traces for
    a plane without ROIs, and a movie assembled from two side-by-side parts (roi_mode separate)."""
    from nwbinspector import Importance, inspect_nwbfile
    from pynwb import NWBHDF5IO

    from planeflow.steps.nwb_export import nwb_export

    rng = np.random.default_rng(0)
    nframes, Ly = 60, 6
    files = _fake_plane(tmp_path / "plane0", 0, nframes, Ly, 9, rng)
    parts = [{"shape": [Ly, 4], "offset": [0, 0]}, {"shape": [Ly, 5], "offset": [0, 4]}]
    movies = []
    for i, q in enumerate(parts):
        m = rng.integers(-100, 3000, (nframes, *q["shape"])).astype(np.int16)
        q["bin"] = str(tmp_path / f"part{i}.bin")
        m.tofile(q["bin"])
        movies.append(m)
    meta, _, _ = pfnwb.resolve_metadata("one", GOOD)
    out = tmp_path / "out" / "one.nwb"
    nwb_export(planes=[{"plane": 0, **{k: str(v) for k, v in files.items()}, "movie_parts": parts}], out=out,
               metadata=meta, session={"session_id": "one", "fs": 10.0, "dx": None, "dy": None, "dz": None,
                                       "nplanes": 1},
               options={"include_movie": True, "chunk_frames": 16, "compression": "none"})
    assert sorted(p.name for p in out.parent.iterdir()) == ["one.nwb"]  # no temporary file left
    with NWBHDF5IO(str(out), "r") as io:
        f = io.read()
        ophys = f.processing["ophys"]
        assert "ImageSegmentation" not in ophys.data_interfaces  # no ROIs: no (empty) table
        assert "Fluorescence" not in ophys.data_interfaces and "DfOverF" not in ophys.data_interfaces
        ip = f.imaging_planes["ImagingPlane"]
        assert ip.grid_spacing is None and ip.origin_coords is None  # pixel size and depth unknown
        movie = ophys["TwoPhotonSeriesRegistered"].data[:].transpose(0, 2, 1)
        assert np.array_equal(movie, np.concatenate(movies, axis=2))
        assert ophys["SegmentationImages"]["MeanImage"].data.shape == (9, Ly)
    bad = [m for m in inspect_nwbfile(nwbfile_path=str(out))
           if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)]
    assert not bad, [m.message for m in bad]


# ---- workflow ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nwb_run(finished_session):
    """The finished session exported with the movie, metadata from sheet + config."""
    tmp = finished_session["tmp"]
    cfg = yaml.safe_load(finished_session["cfg"].read_text())
    old_sheet = (tmp / "sessions.tsv").read_text().splitlines()
    cols = ["session_start_time", "subject_id", "sex", "age"]
    sheet = tmp / "sessions_nwb.tsv"
    sheet.write_text("\n".join([old_sheet[0] + "\t" + "\t".join(cols),
                                old_sheet[1] + "\t2024-03-05T09:15:00+01:00\tm042\tF\tP84D"]) + "\n")
    cfg["sessions"] = str(sheet)
    cfg["nwb_export"] = {"enabled": True, "include_movie": True, "chunk_frames": 128,
                         "metadata": {"species": "Mus musculus", "indicator": "GCaMP6s", "location": "VISp",
                                      "excitation_lambda": 920, "emission_lambda": 510,
                                      "experimenter": "Doe, Jane; Roe, Rick", "institution": "Test U",
                                      "lab": "Imaging lab"}}
    path = tmp / "config_nwb.yaml"
    path.write_text(yaml.safe_dump(cfg))
    target = finished_session["res"] / "nwb_export" / "fin.nwb"
    # what the new sheet could invalidate: file times (metadata.json), params and inputs; the
    # code trigger is left out so that edits to other rules' scripts during a test run do not count
    jobs = dry_run_jobs(path, "--rerun-triggers", "mtime", "params", "input", workdir=tmp)
    proc = snakemake(path, target, workdir=tmp, check=True)
    return {**finished_session, "nwb": target, "jobs": jobs, "proc": proc}


@pytest.fixture(scope="module")
def nwb_file(nwb_run):
    from pynwb import NWBHDF5IO

    io = NWBHDF5IO(str(nwb_run["nwb"]), mode="r")
    yield io.read()
    io.close()


def _plane(res, p):
    d = res / "suite2p" / f"plane{p}"
    out = {k: np.load(d / f"{k}.npy") for k in ("F", "Fneu", "spks", "dff", "iscell")}
    out["stat"] = np.load(d / "stat.npy", allow_pickle=True)
    out["ops"] = np.load(d / "ops.npy", allow_pickle=True).item()
    return out


@workflow
def test_adding_metadata_columns_reruns_nothing_but_the_export(nwb_run):
    # the sheet gained NWB columns: session metadata stays valid, no plane is redone
    rules = {rule for rule, _ in nwb_run["jobs"]}
    assert "nwb_export" in rules
    redone = rules & {"binary_write", "registration", "detection", "postprocess", "merge", "volume_stats"}
    assert not redone, nwb_run["jobs"]


@workflow
def test_subject_and_session_metadata(nwb_file):
    f = nwb_file
    assert f.session_id == "fin"
    assert f.session_start_time == dt.datetime.fromisoformat("2024-03-05T09:15:00+01:00")
    assert list(f.experimenter) == ["Doe, Jane", "Roe, Rick"] and f.lab == "Imaging lab"
    s = f.subject
    assert (s.subject_id, s.species, s.sex, s.age) == ("m042", "Mus musculus", "F", "P84D")
    assert re.fullmatch(r"[0-9a-f-]{36}", f.identifier)


@workflow
def test_imaging_planes_rate_spacing_and_depth(nwb_file):
    for p in (0, 1):
        ip = nwb_file.imaging_planes[f"ImagingPlaneChan1Plane{p}"]
        assert ip.imaging_rate == 15.0 and ip.indicator == "GCaMP6s" and ip.location == "VISp"
        assert ip.excitation_lambda == 920.0 and ip.optical_channel[0].emission_lambda == 510.0
        assert np.allclose(ip.grid_spacing, [1.5e-6, 1.5e-6]) and ip.grid_spacing_unit == "meters"
        assert np.allclose(ip.origin_coords, [0.0, 0.0, p * 15.0e-6]) and ip.origin_coords_unit == "meters"


@workflow
def test_rois_masks_and_acceptance_equal_suite2p_files(nwb_run, nwb_file):
    seg = nwb_file.processing["ophys"]["ImageSegmentation"]
    assert set(seg.plane_segmentations) == {"PlaneSegmentationChan1Plane0", "PlaneSegmentationChan1Plane1"}
    for p in (0, 1):
        ref = _plane(nwb_run["res"], p)
        ps = seg[f"PlaneSegmentationChan1Plane{p}"]
        n = len(ref["stat"])
        assert len(ps) == n > 0
        assert list(ps.id[:]) == list(range(n))
        for i in (0, n // 2, n - 1):
            pm = ps["pixel_mask"][i]
            s = ref["stat"][i]
            assert np.array_equal(pm["x"], s["xpix"]) and np.array_equal(pm["y"], s["ypix"])
            assert np.allclose(pm["weight"], s["lam"], rtol=1e-6)
        cen = np.asarray(ps["ROICentroids"].data[:])
        assert np.array_equal(cen, np.array([s["med"] for s in ref["stat"]])[:, ::-1])
        assert np.array_equal(np.asarray(ps["Accepted"].data[:]), ref["iscell"][:, 0].astype(bool))
        assert np.array_equal(np.asarray(ps["Rejected"].data[:]), ~ref["iscell"][:, 0].astype(bool))
        assert np.allclose(ps["ClassifierProbability"].data[:], ref["iscell"][:, 1], rtol=1e-6)


@workflow
def test_volume_columns_equal_rois_table(nwb_run, nwb_file):
    import csv

    with open(nwb_run["res"] / "volume_stats" / "rois.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    # the sheet's subject_id m042: the session is tracked (its subject's only one), its ROIs carry the track
    with open(nwb_run["res"].parent / "subjects" / "m042" / "tracked_cells.tsv") as fh:
        track_of = {r["cell_id"]: int(r["track_id"]) for r in csv.DictReader(fh, delimiter="\t")}
    assert track_of
    seg = nwb_file.processing["ophys"]["ImageSegmentation"]
    for p in (0, 1):
        ps = seg[f"PlaneSegmentationChan1Plane{p}"]
        mine = [r for r in rows if r["plane"] == str(p)]
        assert list(ps["CellID"].data[:]) == [int(r["cell_id"]) for r in mine]
        assert list(ps["TrackID"].data[:]) == [track_of.get(r["cell_id"], -1) for r in mine]
        assert list(ps["Primary"].data[:]) == [r["primary"] == "true" for r in mine]
        assert list(ps["DuplicateReason"].data[:]) == [r["duplicate_of_reason"] for r in mine]
        pos = np.asarray(ps["VolumePosition"].data[:])
        assert np.allclose(pos[:, 2], 15.0 * p)
        assert np.allclose(pos[:, 0], [float(r["x_um"]) for r in mine], atol=1e-3)


@workflow
def test_traces_equal_suite2p_files_and_link_their_rois(nwb_run, nwb_file):
    ophys = nwb_file.processing["ophys"]
    for p in (0, 1):
        ref = _plane(nwb_run["res"], p)
        ps = ophys["ImageSegmentation"][f"PlaneSegmentationChan1Plane{p}"]
        for container, name, key in (("Fluorescence", "RoiResponseSeries", "F"), ("Fluorescence", "Neuropil", "Fneu"),
                                     ("Fluorescence", "Deconvolved", "spks"), ("DfOverF", "RoiResponseSeries", "dff")):
            rrs = ophys[container][f"{name}Chan1Plane{p}"]
            assert rrs.data.shape == ref[key].T.shape
            assert np.array_equal(rrs.data[:], ref[key].T.astype(np.float32))
            assert rrs.rate == 15.0 and rrs.rois.table is ps and list(rrs.rois.data[:]) == list(range(len(ps)))


@workflow
def test_summary_images_fill_the_frame(nwb_run, nwb_file):
    images = nwb_file.processing["ophys"]["SegmentationImages"]
    for p in (0, 1):
        ops = _plane(nwb_run["res"], p)["ops"]
        (y0, y1), (x0, x1) = ops["yrange"], ops["xrange"]
        mean = images[f"MeanImageChan1Plane{p}"].data[:].T
        assert np.allclose(mean, ops["meanImg"])
        for name, key in (("MaxProjectionImage", "max_proj"), ("CorrelationImage", "Vcorr")):
            img = images[f"{name}Chan1Plane{p}"].data[:].T
            assert img.shape == (ops["Ly"], ops["Lx"])
            assert np.allclose(img[y0:y1, x0:x1], ops[key])
            outside = np.ones(img.shape, bool)
            outside[y0:y1, x0:x1] = False
            assert not img[outside].any()


@workflow
def test_registered_movie_equals_binary_and_was_written_in_chunks(nwb_run, nwb_file):
    for p in (0, 1):
        ops = _plane(nwb_run["res"], p)["ops"]
        raw = np.fromfile(nwb_run["res"] / "registration" / f"plane{p}" / "part0" / "data.bin", np.int16)
        raw = raw.reshape(ops["nframes"], ops["Ly"], ops["Lx"])
        tps = nwb_file.processing["ophys"][f"TwoPhotonSeriesRegistered{'Chan1Plane%d' % p}"]
        assert tps.imaging_plane is nwb_file.imaging_planes[f"ImagingPlaneChan1Plane{p}"]
        assert tps.data.shape == (ops["nframes"], ops["Lx"], ops["Ly"]) and tps.rate == 15.0
        assert np.array_equal(tps.data[:].transpose(0, 2, 1), raw)
        assert tps.data.chunks[0] <= 128
    log = (nwb_run["res"] / "logs" / "nwb_export" / "session.log").read_text()
    # chunk_frames 128: each plane's 500 frames are read in blocks of at most 128, each reported
    for p in (0, 1):
        blocks = re.findall(rf"plane {p} movie chunk (\d+)/(\d+) \(frames (\d+)-(\d+) of 500\)", log)
        spans = [(int(a), int(b)) for _, _, a, b in blocks]
        assert len(blocks) == int(blocks[0][1]) >= 4 and [int(i) for i, *_ in blocks] == list(range(1, len(blocks) + 1))
        assert max(b - a + 1 for a, b in spans) <= 128
        assert sorted(spans)[0][0] == 0 and sum(b - a + 1 for a, b in spans) == 500
    assert "plane 0 movie chunk" in log and log.count("total 100% done") >= 1
    assert "plane 1 DfOverF/RoiResponseSeriesChan1Plane1 written" in log


@workflow
def test_nwbinspector_finds_no_violation(nwb_run):
    from nwbinspector import Importance, inspect_nwbfile

    messages = list(inspect_nwbfile(nwbfile_path=str(nwb_run["nwb"])))
    for m in messages:
        print(f"nwbinspector {m.importance.name}: {m.object_type} {m.location}: {m.message}")
    bad = [m for m in messages if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)]
    assert not bad, [m.message for m in bad]


@workflow
def test_missing_metadata_stops_before_any_job(finished_session, tmp_path):
    row = {"session_id": "fin", "data_path": str(finished_session["tmp"] / "raw"), "nplanes": 2, "fs": 15.0}
    cfg = make_config(tmp_path, [row], nwb_export={"enabled": True, "metadata": {"species": "Mus musculus"}})
    sheet = tmp_path / "sessions_nwb.tsv"  # the sheet with an NWB column, but not all needed
    sheet.write_text("\t".join(SHEET_COLS + ["subject_id"]) + "\n"
                     + "\t".join(str(row.get(c, "")) for c in SHEET_COLS) + "\tm042\n")
    text = yaml.safe_load(cfg.read_text())
    text["sessions"] = str(sheet)
    cfg.write_text(yaml.safe_dump(text))
    proc = snakemake(cfg, "-n")
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "session 'fin': missing session_start_time, sex, age, indicator, location" in err
    assert str(sheet) in err and "nwb_export.metadata" in err
    assert "Traceback" not in err
    print(err)
    assert not (tmp_path / "results").exists()  # nothing written, not even the metadata cache


def _two_sessions(tmp_path, enabled):
    """Two small TIFF sessions, one with the NWB metadata columns filled and one without."""
    from conftest import coded_frames, write_tiff

    cols = ["session_id", "data_path", "nplanes", "fs", *GOOD]
    rows = []
    for sid, nwb in (("full", True), ("bare", False)):
        write_tiff(tmp_path / sid / "a.tif", coded_frames(60, 16, 16))
        rows.append([sid, str(tmp_path / sid), "1", "10.0", *[(GOOD[c] if nwb else "") for c in GOOD]])
    sheet = tmp_path / "sessions.tsv"
    sheet.write_text("\n".join("\t".join(r) for r in [cols, *rows]) + "\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"sessions": str(sheet), "results_dir": str(tmp_path / "results"),
                                   "nwb_export": {"enabled": enabled}}))
    return cfg


def test_auto_exports_the_sessions_that_can_be_described(tmp_path):
    """nwb_export.enabled: auto (the default): one warning naming the session left out and its
    missing columns; the dry run plans the NWB file of the other; the run is not stopped."""
    from planeflow.plan.config import deep_merge, load_schema, schema_defaults
    from planeflow.plan.status import collect

    cfg = _two_sessions(tmp_path, "auto")
    proc = snakemake(cfg, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [ln for ln in proc.stderr.splitlines() if "NWB" in ln and "warning" in ln]
    assert len(warnings) == 1 and "bare: missing session_start_time, subject_id" in warnings[0], warnings
    assert "full" not in warnings[0].split("incomplete:")[1]
    nwb_jobs = [wc for rule, wc in dry_run_jobs(cfg) if rule == "nwb_export"]
    assert [wc["session"] for wc in nwb_jobs] == ["full"]
    # planeflow status says the same
    config = deep_merge(schema_defaults(load_schema("config.schema.yaml")), yaml.safe_load(cfg.read_text()))
    st = collect(str(tmp_path / "results"), workdir=str(tmp_path), config=config)
    steps = {s["session"]: s["session_steps"] for s in st["sessions"]}
    assert "nwb_export" in steps["full"] and "nwb_export" not in steps["bare"]


def test_true_requires_every_session_to_be_described(tmp_path):
    proc = snakemake(_two_sessions(tmp_path, True), "-n")
    assert proc.returncode != 0
    assert "session 'bare': missing session_start_time" in proc.stderr and "enabled: auto" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_auto_warning_stays_short_for_many_sessions():
    from planeflow.plan.nwb_meta import skipped_warning

    wrong = {f"s{i:03d}": ["missing species, sex"] for i in range(100)}
    wrong["odd"] = ["missing age"]
    text = skipped_warning(wrong, "config/sessions.tsv")
    assert text.startswith("no NWB file for 101 session(s)") and len(text) < 400, text
    assert "s000, s001, s002 and 97 more: missing species, sex; odd: missing age" in text
    assert "s003" not in text
