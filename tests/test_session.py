import os

import numpy as np
import pytest

from planeflow import PlaneflowError
from planeflow.plan import session as ps

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


def test_truncated_tiff_is_named(tmp_path):
    f = write_tiff(tmp_path / "raw" / "a.tif", coded_frames(120, Ly=32, Lx=32))
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(PlaneflowError, match=r"a\.tif' is truncated or damaged"):
        ps.session_metadata(row(tmp_path / "raw"), str(tmp_path / "res"))


def test_unreadable_file_is_named(tmp_path, monkeypatch):
    import tifffile

    write_tiff(tmp_path / "raw" / "a.tif", coded_frames(120))

    def deny(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tifffile, "TiffFile", deny)
    with pytest.raises(PlaneflowError, match=r"cannot read '.*a\.tif': permission denied"):
        ps.session_metadata(row(tmp_path / "raw"), str(tmp_path / "res"))


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_array_inputs_through_binary_write(tmp_path, fmt):
    """(T, Z, Y, X) zarr/HDF5 arrays: planes and frames from the shape, frames streamed."""
    from planeflow.steps.binary_write import binary_write

    T, Z, Y, X = 80, 3, 8, 6
    data = (np.arange(T)[:, None, None, None] * 10 + np.arange(Z)[None, :, None, None]
            + np.zeros((1, 1, Y, X))).astype(np.int16)
    if fmt == "zarr":
        import zarr

        path = tmp_path / "mov.zarr"
        z = zarr.create_array(str(path), shape=data.shape, dtype="int16", chunks=(16, 1, Y, X))
        z[:] = data
    else:
        import h5py

        path = tmp_path / "mov.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=data, chunks=(16, 1, Y, X))
    meta = ps.session_metadata({"session_id": "s1", "data_path": str(path), "fs": 5.0}, str(tmp_path / "res"))
    assert (meta["format"], meta["nplanes"], meta["nframes"], meta["Ly"], meta["Lx"]) == (fmt, Z, T, Y, X)
    mpath = tmp_path / "res" / "s1" / "metadata.json"
    binary_write(str(mpath), 2, 0, str(tmp_path / "b" / "data_raw.bin"), str(tmp_path / "b" / "ops.npy"),
                 chunk_frames=7)
    out = np.fromfile(tmp_path / "b" / "data_raw.bin", np.int16).reshape(T, Y, X)
    assert np.array_equal(out[:, 0, 0], np.arange(T) * 10 + 2)


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_array_of_wrong_rank(tmp_path, fmt):
    data = np.zeros((80, 8), np.int16)
    if fmt == "zarr":
        import zarr

        path = tmp_path / "mov.zarr"
        zarr.create_array(str(path), shape=data.shape, dtype="int16")[:] = data
    else:
        import h5py

        path = tmp_path / "mov.h5"
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=data)
    with pytest.raises(PlaneflowError, match=r"mov\.(zarr|h5)"):
        ps.session_metadata({"session_id": "s1", "data_path": str(path), "fs": 5.0}, str(tmp_path / "res"))
    assert not (tmp_path / "res" / "s1" / "metadata.json").exists()


def test_scanimage_header_fills_in_the_sheet(tmp_path):
    """A sheet with only id and path: planes, fs, pixel size and ROIs come from the header."""
    from planeflow.synth.scanimage_session import simulate_scanimage_session

    simulate_scanimage_session(tmp_path / "raw", nplanes=3, nframes=60, roi_widths=(40, 30), height=48,
                               fly_to_lines=4, bidiphase=0, nfiles=2, cells_per_plane=4, diameter=6)
    r = {"session_id": "s1", "data_path": str(tmp_path / "raw" / "lbm_*.tif")}
    meta = ps.session_metadata(r, str(tmp_path / "res"), {"roi_mode": "separate"})
    assert (meta["stack_type"], meta["nplanes"], meta["nframes"], meta["fs"]) == ("lbm", 3, 60, 15.0)
    assert meta["plane_shape"] == [48, 70] and [p["offset"] for p in meta["parts"]] == [[0, 0], [0, 40]]
    assert meta["parts"][1]["tiles"][0]["src"] == [52, 100, 0, 30]
    assert meta["dx"] and meta["dy"] and meta["bidiphase"]["enabled"] is True
    # the sheet wins over the header; flyback planes are dropped
    r2 = dict(r, fs=30.0, dx=0.5)
    meta = ps.session_metadata(r2, str(tmp_path / "res"), {"flyback_planes": [2]})
    assert meta["fs"] == 30.0 and meta["dx"] == 0.5 and meta["planes"] == [0, 1]
