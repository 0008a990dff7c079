"""Lazy zarr/HDF5 inputs: metadata, per-plane frame order, errors and bounded reads."""
import os
import tracemalloc

import numpy as np
import pytest

from planeflow import PlaneflowError
from planeflow.io.arrays import ArrayPlaneReader, inspect_array

h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

T, Z, LY, LX = 37, 3, 6, 5


def coded_volume(T=T, Z=Z, Ly=LY, Lx=LX, dtype=np.int32) -> np.ndarray:
    """(T, Z, Ly, Lx) whose pixels hold 100 * t + z (and a per-pixel ramp at [.., 0, 1])."""
    a = (100 * np.arange(T)[:, None] + np.arange(Z)[None, :]).astype(dtype)
    out = np.broadcast_to(a[:, :, None, None], (T, Z, Ly, Lx)).copy()
    out[:, :, 0, 1] += 7  # pixels are not all equal: catches transposed (Y, X)
    return out


def write_zarr(path, data, chunks=None, group_key=None):
    chunks = chunks or data.shape
    if group_key is None:
        z = zarr.create_array(str(path), shape=data.shape, chunks=chunks, dtype=data.dtype)
    else:
        g = zarr.open_group(str(path), mode="w")
        z = g.create_array(group_key, shape=data.shape, chunks=chunks, dtype=data.dtype)
    z[:] = data
    return path


def write_h5(path, datasets: dict, chunks=None):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v, chunks=chunks if v.ndim >= 3 else None)
    return path


@pytest.fixture(params=["zarr", "zarr-group", "hdf5", "hdf5-chunked"])
def volume_file(request, tmp_path):
    vol = coded_volume()
    if request.param == "zarr":
        p = write_zarr(tmp_path / "rec.zarr", vol, chunks=(5, 1, LY, LX))
    elif request.param == "zarr-group":
        p = write_zarr(tmp_path / "rec.zarr", vol, chunks=(8, Z, LY, LX), group_key="scan/mov")
    elif request.param == "hdf5":
        p = write_h5(tmp_path / "rec.h5", {"mov": vol, "meanImg": vol[0, 0].astype(float)})
    else:
        p = write_h5(tmp_path / "rec.h5", {"data": vol}, chunks=(4, 1, LY, LX))
    return request.param, p, vol


def test_inspect_4d(volume_file):
    kind, path, vol = volume_file
    info = inspect_array(path)
    assert info["format"] == kind.split("-")[0]
    assert info["shape"] == list(vol.shape) and info["ndim"] == 4
    assert (info["nframes"], info["nplanes"], info["Ly"], info["Lx"]) == (T, Z, LY, LX)
    assert info["dtype"] == "int32"
    assert info["key"] == {"zarr": None, "zarr-group": "scan/mov", "hdf5": "mov",
                           "hdf5-chunked": "data"}[kind]
    assert info["path"] == os.path.abspath(path)


@pytest.mark.parametrize("chunk", [1, 4, 5, 7, 500])
def test_every_plane_reads_its_frames_in_order(volume_file, chunk):
    _, path, vol = volume_file
    r = ArrayPlaneReader(path)
    assert (r.nframes, r.nplanes, r.Ly, r.Lx) == (T, Z, LY, LX)
    for plane in range(Z):
        parts = list(r.iter_frames(plane, chunk=chunk))
        assert all(isinstance(p, np.ndarray) and p.ndim == 3 for p in parts)
        assert [len(p) for p in parts[:-1]] == [chunk] * (len(parts) - 1)
        assert 1 <= len(parts[-1]) <= chunk
        got = np.concatenate(parts)
        assert got.dtype == vol.dtype
        assert np.array_equal(got, vol[:, plane])


@pytest.mark.parametrize("start,stop", [(0, None), (3, 20), (10, 11), (30, 1000), (20, 20)])
def test_start_stop(volume_file, start, stop):
    _, path, vol = volume_file
    parts = list(ArrayPlaneReader(path).iter_frames(2, chunk=4, start=start, stop=stop))
    want = vol[start:stop, 2]
    if len(want) == 0:
        assert parts == []
    else:
        assert np.array_equal(np.concatenate(parts), want)
        assert max(len(p) for p in parts) <= 4


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_3d_array_is_one_plane(tmp_path, fmt):
    vol = coded_volume(Z=1)[:, 0].astype(np.uint16)  # (T, Ly, Lx)
    if fmt == "zarr":
        path = write_zarr(tmp_path / "m.zarr", vol, chunks=(6, LY, LX))
    else:
        path = write_h5(tmp_path / "m.h5", {"frames": vol})
    info = inspect_array(path)
    assert (info["ndim"], info["nplanes"], info["nframes"]) == (3, 1, T)
    assert info["dtype"] == "uint16"
    r = ArrayPlaneReader(path)
    assert r.nplanes == 1
    assert np.array_equal(np.concatenate(list(r.iter_frames(0, chunk=10))), vol)
    with pytest.raises(PlaneflowError, match="plane 1 does not exist"):
        next(r.iter_frames(1))


def test_key_selects_among_several_datasets(tmp_path):
    a, b = coded_volume(), coded_volume(T=9) + 5000
    path = write_h5(tmp_path / "two.h5", {"green": a, "grp/red": b})
    with pytest.raises(PlaneflowError) as e:
        inspect_array(path)
    assert "several" in str(e.value) and "'green'" in str(e.value) and "grp/red" in str(e.value)
    info = inspect_array(path, key="grp/red")
    assert info["nframes"] == 9 and info["key"] == "grp/red"
    got = np.concatenate(list(ArrayPlaneReader(path, key="/grp/red").iter_frames(1, chunk=4)))
    assert np.array_equal(got, b[:, 1])
    # "data"/"mov" are the default names when there are several candidates
    path2 = write_h5(tmp_path / "def.h5", {"raw_backup": a, "mov": b})
    assert inspect_array(path2)["key"] == "mov"


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_missing_key_lists_the_datasets(tmp_path, fmt):
    vol = coded_volume()
    if fmt == "zarr":
        path = write_zarr(tmp_path / "g.zarr", vol, group_key="mov")
    else:
        path = write_h5(tmp_path / "f.h5", {"mov": vol})
    with pytest.raises(PlaneflowError) as e:
        inspect_array(path, key="movie")
    msg = str(e.value)
    assert str(path) in msg and "'movie'" in msg and "'mov' (37, 3, 6, 5)" in msg


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
@pytest.mark.parametrize("shape", [(8, 6), (2, 3, 4, 5, 6)])
def test_wrong_rank_is_reported(tmp_path, fmt, shape):
    data = np.zeros(shape, np.int16)
    if fmt == "zarr":
        path = write_zarr(tmp_path / "w.zarr", data)
    else:
        path = write_h5(tmp_path / "w.h5", {"data": data})
    with pytest.raises(PlaneflowError) as e:
        inspect_array(path)
    msg = str(e.value)
    assert str(path) in msg and str(shape) in msg
    assert "(frames, planes, Ly, Lx) or (frames, Ly, Lx)" in msg
    with pytest.raises(PlaneflowError):
        ArrayPlaneReader(path)


def test_files_that_are_not_hdf5_or_zarr(tmp_path):
    with pytest.raises(PlaneflowError, match="does not exist"):
        inspect_array(tmp_path / "nothing.h5")
    txt = tmp_path / "notes.h5"
    txt.write_text("not an array\n" * 100)
    with pytest.raises(PlaneflowError, match="neither an HDF5 file"):
        inspect_array(txt)
    (tmp_path / "folder").mkdir()
    with pytest.raises(PlaneflowError, match="not a zarr store"):
        inspect_array(tmp_path / "folder")
    # a truncated HDF5 file: valid signature, missing body
    good = write_h5(tmp_path / "good.h5", {"mov": coded_volume()})
    trunc = tmp_path / "trunc.h5"
    trunc.write_bytes(good.read_bytes()[:600])
    with pytest.raises(PlaneflowError, match="truncated or corrupt"):
        inspect_array(trunc)
    # a zarr store whose metadata is garbage
    bad = write_zarr(tmp_path / "bad.zarr", coded_volume())
    (bad / "zarr.json").write_text("{ not json")
    with pytest.raises(PlaneflowError, match="cannot open zarr store"):
        inspect_array(bad)


def test_corrupt_chunk_is_reported_when_read(tmp_path):
    path = write_zarr(tmp_path / "c.zarr", coded_volume(), chunks=(5, 1, LY, LX))
    # chunk files are compressed by default: garble one of them
    chunk_files = sorted(p for p in (path / "c").rglob("*") if p.is_file())
    chunk_files[0].write_bytes(b"garbage" * 3)
    r = ArrayPlaneReader(path)  # metadata alone is fine
    with pytest.raises(PlaneflowError, match="cannot read frames"):
        list(r.iter_frames(0, chunk=5))


def test_inspect_reads_metadata_only(tmp_path, monkeypatch):
    path = write_h5(tmp_path / "m.h5", {"mov": coded_volume()})
    zpath = write_zarr(tmp_path / "m.zarr", coded_volume(), chunks=(5, 1, LY, LX))

    def boom(*a, **k):
        raise AssertionError("pixel data read during inspection")

    monkeypatch.setattr(h5py.Dataset, "__getitem__", boom)
    monkeypatch.setattr(zarr.Array, "__getitem__", boom)
    assert inspect_array(path)["nframes"] == T
    assert inspect_array(zpath)["nframes"] == T
    ArrayPlaneReader(zpath)


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_reads_request_only_one_chunk_of_one_plane(tmp_path, monkeypatch, fmt):
    """Every read issued to the file covers at most ``chunk`` frames of the one plane."""
    vol = coded_volume()
    if fmt == "zarr":
        path, cls = write_zarr(tmp_path / "r.zarr", vol, chunks=(16, Z, LY, LX)), zarr.Array
    else:
        path, cls = write_h5(tmp_path / "r.h5", {"mov": vol}), h5py.Dataset
    requests = []
    orig = cls.__getitem__

    def spy(self, sel):
        out = orig(self, sel)
        requests.append(np.shape(out))
        return out

    monkeypatch.setattr(cls, "__getitem__", spy)
    got = list(ArrayPlaneReader(path).iter_frames(1, chunk=6))
    assert np.array_equal(np.concatenate(got), vol[:, 1])
    assert requests and all(np.prod(s) <= 6 * LY * LX for s in requests), requests


@pytest.mark.parametrize("fmt", ["zarr", "hdf5"])
def test_memory_is_bounded_by_the_chunk(tmp_path, fmt):
    """Streaming one plane of a 24 MB array in 0.2 MB chunks never allocates much."""
    n, z, ly, lx = 300, 4, 50, 50
    chunk = 10
    if fmt == "zarr":
        path = tmp_path / "big.zarr"
        arr = zarr.create_array(str(path), shape=(n, z, ly, lx), chunks=(chunk, 1, ly, lx),
                                dtype="float64")
        for t0 in range(0, n, 100):
            arr[t0:t0 + 100] = t0
    else:
        path = tmp_path / "big.h5"
        with h5py.File(path, "w") as f:
            d = f.create_dataset("mov", shape=(n, z, ly, lx), dtype="float64")
            for t0 in range(0, n, 100):
                d[t0:t0 + 100] = t0
    full = n * z * ly * lx * 8
    chunk_bytes = chunk * ly * lx * 8
    r = ArrayPlaneReader(path)
    next(r.iter_frames(0, chunk=chunk))  # warm imports and caches before measuring
    tracemalloc.start()
    try:
        total = 0
        for block in r.iter_frames(3, chunk=chunk):
            total += len(block)
            del block
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == n
    assert peak < 10 * chunk_bytes < full / 10, (peak, chunk_bytes, full)
