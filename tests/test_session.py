import json
import os

import numpy as np
import pytest

from planeflow import PlaneflowError
from planeflow import session as ps

from conftest import coded_frames, write_tiff


def test_resolve_files_natural_order_glob_and_folder(tmp_path):
    for k in (10, 2, 1):
        write_tiff(tmp_path / f"run_{k}.tif", coded_frames(4))
    (tmp_path / "notes.txt").write_text("x")
    names = [os.path.basename(f) for f in ps.resolve_files(str(tmp_path))]
    assert names == ["run_1.tif", "run_2.tif", "run_10.tif"]
    names = [os.path.basename(f) for f in ps.resolve_files(str(tmp_path / "run_1*.tif"))]
    assert names == ["run_1.tif", "run_10.tif"]
    assert ps.resolve_files(str(tmp_path / "run_2.tif")) == [str(tmp_path / "run_2.tif")]


@pytest.mark.parametrize("setup, needle", [
    (lambda d: d.mkdir(), "holds no .tif/.tiff file"),
    (lambda d: None, "does not exist"),
])
def test_resolve_files_errors(tmp_path, setup, needle):
    d = tmp_path / "raw"
    setup(d)
    with pytest.raises(PlaneflowError, match=needle):
        ps.resolve_files(str(d), "s1")


def row(path, **kw):
    return {"session_id": "s1", "data_path": str(path), "nplanes": 2, "fs": 10.0, **kw}


def test_metadata_from_files_and_sheet(tmp_path):
    write_tiff(tmp_path / "raw" / "a_00001.tif", coded_frames(120))
    write_tiff(tmp_path / "raw" / "a_00002.tif", coded_frames(80, start=120))
    meta = ps.session_metadata(row(tmp_path / "raw"), str(tmp_path / "res"))
    assert meta["nframes"] == 100 and meta["nplanes"] == 2
    assert meta["pages_per_file"] == [120, 80]
    assert (meta["Ly"], meta["Lx"], meta["dtype"]) == (8, 6, "int16")
    assert meta["parts"] == [{"part": 0, "shape": [8, 6], "offset": [0, 0],
                              "tiles": [{"src": [0, 8, 0, 6], "dst": [0, 0]}]}]
    assert (tmp_path / "res" / "s1" / "metadata.json").is_file()


def test_metadata_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    f = write_tiff(tmp_path / "raw" / "a.tif", coded_frames(120))
    res = str(tmp_path / "res")
    ps.session_metadata(row(f), res)
    calls = []
    real = ps.inspect_tiffs
    monkeypatch.setattr(ps, "inspect_tiffs", lambda files: calls.append(files) or real(files))
    ps.session_metadata(row(f), res)
    assert calls == [], "a cache hit must not open the raw files"
    ps.session_metadata(row(f, fs=20.0), res)  # a sheet change rebuilds
    assert len(calls) == 1
    write_tiff(f, coded_frames(140))  # a file change rebuilds
    meta = ps.session_metadata(row(f, fs=20.0), res)
    assert len(calls) == 2 and meta["nframes"] == 70


@pytest.mark.parametrize("kind, needle", [
    ("indivisible", r"not divisible by the 2 frames of one volume \(nplanes=2\)"),
    ("mismatch", "all files of a session must agree"),
    ("not_tiff", "is not a readable TIFF"),
    ("no_fs", "set the fs column"),
    ("no_nplanes", "set the nplanes column"),
    ("few_frames", "suite2p needs at least 50"),
])
def test_metadata_bad_input(tmp_path, kind, needle):
    raw = tmp_path / "raw"
    r = row(raw)
    if kind == "indivisible":
        write_tiff(raw / "a.tif", coded_frames(121))
    elif kind == "mismatch":
        write_tiff(raw / "a_1.tif", coded_frames(100))
        write_tiff(raw / "a_2.tif", coded_frames(100, Ly=9))
    elif kind == "not_tiff":
        raw.mkdir()
        (raw / "a.tif").write_text("this is not a tiff")
    elif kind == "no_fs":
        write_tiff(raw / "a.tif", coded_frames(120))
        r["fs"] = None
    elif kind == "no_nplanes":
        write_tiff(raw / "a.tif", coded_frames(120))
        r["nplanes"] = None
    elif kind == "few_frames":
        write_tiff(raw / "a.tif", coded_frames(40))
    with pytest.raises(PlaneflowError, match=needle):
        ps.session_metadata(r, str(tmp_path / "res"))
    assert not (tmp_path / "res" / "s1" / "metadata.json").exists()
