"""Lazy zarr (v2/v3) and HDF5 array inputs, read one plane's frames at a time.

A recording stored as an array has shape ``(T, Z, Y, X)`` (frames, planes, lines,
pixels) or ``(T, Y, X)`` (one plane). :func:`inspect_array` reads only metadata;
:class:`ArrayPlaneReader` mirrors :class:`planeflow.io.raw.TiffPlaneReader`:
``iter_frames(plane, chunk, start, stop)`` yields ``(n, Ly, Lx)`` numpy arrays
through dask, each one read from disk on its own, so memory is bounded by one chunk
(plus whatever storage chunks zarr/HDF5 must decompress to serve it).

Where the array is found:

* zarr: ``path`` is an array store, or a group holding the array (named by ``key``,
  e.g. ``"mov"`` or ``"scan/0"``; without ``key``, the group's only 3-D/4-D array,
  else its ``data`` or ``mov`` array).
* HDF5: ``path`` is a file holding dataset ``key``; without ``key``, the file's only
  3-D/4-D dataset, else its ``data`` or ``mov`` dataset.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from planeflow import PlaneflowError

__all__ = ["inspect_array", "ArrayPlaneReader", "EXPECTED_SHAPES", "arrays_in_folder", "axes_text"]

EXPECTED_SHAPES = "(frames, planes, Ly, Lx) or (frames, Ly, Lx)"
#: names of the axes of a recording array, by its number of dimensions
AXES = {3: "(T, Y, X)", 4: "(T, Z, Y, X)"}
#: a zarr store is a folder named ``*.zarr``; an HDF5 recording a file with one of these suffixes
ZARR_SUFFIX = ".zarr"
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
DEFAULT_NAMES = ("data", "mov")
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


# ----------------------------------------------------------------------------- helpers
def _is_hdf5(path: str) -> bool:
    """True if ``path`` starts with an HDF5 superblock (at 0, 512, 1024, 2048, ...)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            offset = 0
            while offset + len(_HDF5_SIGNATURE) <= size:
                fh.seek(offset)
                if fh.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


def _is_zarr_dir(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, f)) for f in ("zarr.json", ".zarray", ".zgroup"))


def _detect_format(path: str) -> str:
    if not os.path.exists(path):
        raise PlaneflowError(f"'{path}' does not exist: check the data path.")
    if os.path.isdir(path):
        if _is_zarr_dir(path):
            return "zarr"
        raise PlaneflowError(
            f"'{path}' is a folder but not a zarr store (no zarr.json, .zarray or .zgroup in "
            "it): point to the zarr store itself, or to an HDF5 file."
        )
    if _is_hdf5(path):
        return "hdf5"
    raise PlaneflowError(
        f"'{path}' is neither an HDF5 file (no HDF5 signature) nor a zarr store (a folder): "
        "convert the recording to HDF5 or zarr, or check the data path."
    )


def _describe(items: list[tuple[str, tuple]]) -> str:
    if not items:
        return "none"
    return ", ".join(f"'{name}' {tuple(shape)}" for name, shape in items)


def _choose(path: str, kind: str, key: str | None, items: dict[str, tuple]) -> str:
    """Pick the array/dataset name inside a container (zarr group or HDF5 file).

    ``items`` maps every array path inside the container to its shape.
    """
    listing = _describe(sorted(items.items()))
    if key is not None:
        k = key.strip("/")
        if k not in items:
            raise PlaneflowError(
                f"'{path}' has no {kind} '{key}'; it holds: {listing}. "
                f"Set the dataset key to one of these."
            )
        return k
    candidates = [n for n, s in items.items() if len(s) in (3, 4)]
    if len(candidates) == 1:
        return candidates[0]
    for name in DEFAULT_NAMES:
        if name in candidates:
            return name
    if not candidates:
        if len(items) == 1:
            return next(iter(items))  # the rank check names its shape
        raise PlaneflowError(
            f"'{path}' holds no 3-D or 4-D {kind} (expected shape {EXPECTED_SHAPES}); "
            f"it holds: {listing}. Check that this is the recording."
        )
    raise PlaneflowError(
        f"'{path}' holds several 3-D/4-D {kind}s: "
        f"{_describe(sorted((n, items[n]) for n in candidates))}; "
        "set the dataset key to the one holding the recording."
    )


def _open_zarr(path: str, key: str | None):
    """Return (zarr array, key used or None) for a zarr store."""
    import zarr

    try:
        node = zarr.open(store=path, mode="r")
    except Exception as e:  # noqa: BLE001 - any failure here means an unreadable store
        raise PlaneflowError(
            f"cannot open zarr store '{path}' ({type(e).__name__}: {e}); it may be corrupt "
            "or written by an unsupported zarr version: check or rewrite it."
        ) from e
    if isinstance(node, zarr.Array):
        if key is not None and key.strip("/"):
            raise PlaneflowError(
                f"'{path}' is a zarr array, not a group, so dataset key '{key}' does not apply: "
                "remove the key."
            )
        return node, None
    try:
        items = {name: tuple(obj.shape) for name, obj in node.members(max_depth=None)
                 if isinstance(obj, zarr.Array)}
        name = _choose(path, "array", key, items)
        return node[name], name
    except PlaneflowError:
        raise
    except Exception as e:  # noqa: BLE001
        raise PlaneflowError(
            f"cannot read zarr group '{path}' ({type(e).__name__}: {e}); it may be corrupt: "
            "check or rewrite it."
        ) from e


def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is a dependency
        raise PlaneflowError("reading HDF5 input needs the h5py package: pip install h5py") from e
    return h5py


def _open_hdf5(path: str):
    h5py = _h5py()
    try:
        return h5py.File(path, "r")
    except Exception as e:  # noqa: BLE001
        raise PlaneflowError(
            f"cannot open HDF5 file '{path}' ({type(e).__name__}: {e}); it may be truncated "
            "or corrupt: replace it with a complete copy."
        ) from e


def _hdf5_dataset_name(path: str, f, key: str | None) -> str:
    h5py = _h5py()
    items: dict[str, tuple] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            items[name] = tuple(obj.shape) if obj.shape is not None else ()

    try:
        f.visititems(visit)
    except Exception as e:  # noqa: BLE001
        raise PlaneflowError(
            f"cannot list the datasets of HDF5 file '{path}' ({type(e).__name__}: {e}); "
            "it may be corrupt: replace it with a complete copy."
        ) from e
    return _choose(path, "dataset", key, items)


def _check_layout(path: str, key: str | None, shape: tuple, dtype: np.dtype) -> None:
    where = f"'{path}'" + (f" (dataset '{key}')" if key else "")
    if len(shape) not in (3, 4):
        raise PlaneflowError(
            f"{where} has shape {tuple(shape)} ({len(shape)}-D); expected {EXPECTED_SHAPES}. "
            "Reshape the array (frames first, then planes) or choose another dataset key."
        )
    if dtype.kind not in "biuf":
        raise PlaneflowError(
            f"{where} has data type {dtype}; expected integer or float pixels."
        )
    if shape[0] == 0 or any(int(n) == 0 for n in shape[1:]):
        raise PlaneflowError(f"{where} has shape {tuple(shape)}, with an empty axis: no frames.")


# ------------------------------------------------------------------------------- API
def axes_text(ndim: int) -> str:
    """``"(T, Y, X)"`` for a 3-D array, ``"(T, Z, Y, X)"`` for a 4-D one."""
    return AXES.get(int(ndim), f"({ndim}-D)")


def arrays_in_folder(folder) -> list[str]:
    """The zarr stores (``*.zarr`` folders) and HDF5 files (``.h5``, ``.hdf5``, ``.hdf``)
    directly in ``folder``, sorted by name; hidden entries are skipped."""
    out = []
    with os.scandir(folder) as entries:
        for e in entries:
            name = e.name.lower()
            if e.name.startswith("."):
                continue
            if (e.is_dir() and name.endswith(ZARR_SUFFIX)) or (e.is_file() and name.endswith(HDF5_SUFFIXES)):
                out.append(os.path.join(os.fspath(folder), e.name))
    return sorted(out)


def inspect_array(path, key: str | None = None) -> dict:
    """Describe a zarr/HDF5 recording from its metadata only (no pixel data read).

    Returns a dict with ``format`` ("zarr" or "hdf5"), ``path`` (absolute), ``key``
    (the dataset/array used inside the container; None for a bare zarr array),
    ``shape`` and ``chunks`` (lists), ``dtype`` (str), ``ndim``, ``nframes`` (T),
    ``nplanes`` (Z, or 1 for a 3-D array), ``Ly``, ``Lx``. Raises
    :class:`~planeflow.PlaneflowError` for a missing/unreadable file, a missing key
    or an array that is not 3-D/4-D.
    """
    path = os.path.abspath(os.fspath(path))
    fmt = _detect_format(path)
    if fmt == "zarr":
        arr, used = _open_zarr(path, key)
        shape, dtype, chunks = tuple(arr.shape), np.dtype(arr.dtype), tuple(arr.chunks)
    else:
        with _open_hdf5(path) as f:
            used = _hdf5_dataset_name(path, f, key)
            obj = f[used]
            shape, dtype = tuple(obj.shape or ()), np.dtype(obj.dtype)
            chunks = tuple(obj.chunks) if obj.chunks else shape
    _check_layout(path, used, shape, dtype)
    if len(shape) == 4:
        T, Z, Ly, Lx = shape
    else:
        (T, Ly, Lx), Z = shape, 1
    return {
        "format": fmt,
        "path": path,
        "key": used,
        "shape": [int(n) for n in shape],
        "chunks": [int(n) for n in chunks],
        "dtype": str(dtype),
        "ndim": len(shape),
        "nframes": int(T),
        "nplanes": int(Z),
        "Ly": int(Ly),
        "Lx": int(Lx),
    }


class ArrayPlaneReader:
    """Frames of one plane from a (T, Z, Y, X) or (T, Y, X) zarr/HDF5 array.

    Same interface as :class:`planeflow.io.raw.TiffPlaneReader`: attributes
    ``nframes``, ``nplanes``, ``Ly``, ``Lx`` and :meth:`iter_frames`.
    """

    def __init__(self, path, key: str | None = None):
        self.meta = inspect_array(path, key)
        self.path = self.meta["path"]
        self.key = self.meta["key"]
        self.format = self.meta["format"]
        self.shape = tuple(self.meta["shape"])
        self.dtype = np.dtype(self.meta["dtype"])
        self.ndim = self.meta["ndim"]
        self.nframes = self.meta["nframes"]
        self.nplanes = self.meta["nplanes"]
        self.Ly = self.meta["Ly"]
        self.Lx = self.meta["Lx"]

    def _dask_chunk(self, source, plane: int, t0: int, t1: int):
        """Dask array of ``plane``'s frames ``t0:t1``: a single block, read on compute.

        The dask array is built per chunk with block edges at ``t0`` and ``t1`` (and
        one block per plane), so the graph stays a few tasks however long the
        recording is, and computing it reads exactly that region of the file.
        """
        import uuid

        import dask.array as da

        edges = sorted({0, t0, t1, self.nframes})
        tchunks = tuple(int(b - a) for a, b in zip(edges[:-1], edges[1:]))
        if self.ndim == 4:
            chunks = (tchunks, 1, self.Ly, self.Lx)
        else:
            chunks = (tchunks, self.Ly, self.Lx)
        name = f"planeflow-{self.format}-{uuid.uuid4().hex}"  # skip hashing the source
        if self.format == "zarr":
            x = da.from_zarr(source, chunks=chunks, name=name, inline_array=True)
        else:
            # h5py is not thread-safe: reads go through dask's lock
            x = da.from_array(source, chunks=chunks, name=name, lock=True, asarray=True,
                              inline_array=True)
        x = x[t0:t1]
        return x[:, plane] if self.ndim == 4 else x

    def iter_frames(self, plane: int, chunk: int = 500, start: int = 0, stop: int | None = None
                    ) -> Iterator[np.ndarray]:
        """Yield (n, Ly, Lx) arrays of ``plane``'s frames ``start:stop`` in order.

        Each chunk is one dask block, computed on its own: the array is never loaded
        whole. A chunk that is not aligned with the storage chunks makes zarr/HDF5
        decompress the storage chunks it overlaps, once per plane read.
        """
        plane, chunk, start = int(plane), int(chunk), int(start)
        if not 0 <= plane < self.nplanes:
            raise PlaneflowError(
                f"'{self.path}': plane {plane} does not exist; the array has "
                f"{self.nplanes} plane(s) (0..{self.nplanes - 1})."
            )
        if chunk < 1:
            raise PlaneflowError(f"chunk must be a positive number of frames, got {chunk}.")
        stop = self.nframes if stop is None else min(int(stop), self.nframes)
        start = max(start, 0)
        if start >= stop:
            return
        bounds = list(range(start, stop, chunk)) + [stop]

        h5file = None
        try:
            if self.format == "zarr":
                source, _ = _open_zarr(self.path, self.key)
            else:
                h5file = _open_hdf5(self.path)
                source = h5file[self.key]
            for t0, t1 in zip(bounds[:-1], bounds[1:]):
                try:
                    x = self._dask_chunk(source, plane, t0, t1)
                    block = x.compute(scheduler="synchronous")
                except Exception as e:  # noqa: BLE001 - any read failure is a bad file
                    raise PlaneflowError(
                        f"cannot read frames {t0}..{t1 - 1} of plane {plane} from "
                        f"'{self.path}'{f' (dataset {self.key!r})' if self.key else ''} "
                        f"({type(e).__name__}: {e}). The file may be truncated or corrupt: "
                        "replace it with a complete copy."
                    ) from e
                yield np.asarray(block)
        finally:
            if h5file is not None:
                h5file.close()
