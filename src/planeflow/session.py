"""What a session is: its raw files, planes, frames, frame shape, rate and pixel size.

This runs when Snakemake builds the DAG, so it must stay cheap: the result of
inspecting the raw files is cached per session in ``<results>/<session>/metadata.json``
and reused as long as the files (names, sizes, modification times) and the sheet's
values are unchanged. A cache hit costs one ``stat`` per raw file; no raw data is read.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from pathlib import Path

from . import PlaneflowError
from .atomic import save_json

TIFF_SUFFIXES = (".tif", ".tiff")
CACHE_NAME = "metadata.json"
#: bump when the metadata layout changes, so old caches are rebuilt
CACHE_FORMAT = 2


def natural_key(path: str):
    """Sort key so that ``run_2.tif`` comes before ``run_10.tif``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", os.fspath(path))]


def resolve_files(data_path: str, session_id: str = "") -> list[str]:
    """Raw files of a session from a file, a glob pattern or a folder, in natural order."""
    where = f"session '{session_id}': " if session_id else ""
    p = Path(data_path).expanduser()
    if any(ch in data_path for ch in "*?["):
        files = [f for f in glob.glob(os.path.expanduser(data_path)) if os.path.isfile(f)]
        if not files:
            raise PlaneflowError(
                f"{where}the pattern '{data_path}' matches no file. "
                "Check the data_path column of the sessions sheet."
            )
    elif p.is_dir():
        files = [os.fspath(f) for f in p.iterdir() if f.is_file() and f.suffix.lower() in TIFF_SUFFIXES]
        if not files:
            raise PlaneflowError(
                f"{where}the folder '{data_path}' holds no .tif/.tiff file. "
                "Point data_path at the folder with the raw TIFFs, a file, or a glob."
            )
    elif p.is_file():
        files = [os.fspath(p)]
    else:
        raise PlaneflowError(
            f"{where}data_path '{data_path}' does not exist. "
            "Fix the data_path column of the sessions sheet (paths are relative to the "
            "directory snakemake runs in; the shipped demo session is made by `make demo`)."
        )
    return sorted((os.path.abspath(f) for f in files), key=natural_key)


def _fingerprint(files: list[str], row: dict) -> str:
    h = hashlib.sha1()
    h.update(f"{CACHE_FORMAT}".encode())
    for f in files:
        st = os.stat(f)
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    h.update(json.dumps(row, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _scanimage_header(tif) -> dict:
    """The few header values the core workflow uses, when tifffile can read them."""
    out: dict = {}
    try:
        meta = tif.scanimage_metadata
    except Exception:  # noqa: BLE001 - a header we cannot parse is just absent
        meta = None
    if not meta:
        return out
    fd = meta.get("FrameData", {}) or {}
    rate = fd.get("SI.hRoiManager.scanFrameRate")
    if rate:
        out["fs_header"] = float(rate)
    return out


def inspect_tiffs(files: list[str]) -> dict:
    """Pages, frame shape and dtype of a list of TIFF files (headers only)."""
    import tifffile

    pages_per_file = []
    shape = dtype = None
    header: dict = {}
    for i, f in enumerate(files):
        try:
            with tifffile.TiffFile(f) as tif:
                n = len(tif.pages)
                page = tif.pages.first
                fshape, fdtype = tuple(int(s) for s in page.shape), str(page.dtype)
                if i == 0:
                    header = _scanimage_header(tif)
        except PermissionError as e:
            raise PlaneflowError(f"cannot read '{f}': permission denied. Fix its permissions.") from e
        except (tifffile.TiffFileError, ValueError, OSError) as e:
            raise PlaneflowError(
                f"'{f}' is not a readable TIFF ({e}). Remove it from the session's data_path "
                "or replace it with a complete copy."
            ) from e
        if len(fshape) != 2:
            raise PlaneflowError(
                f"'{f}': pages have shape {fshape}; planeflow expects 2-D pages (one frame "
                "per page, planes interleaved), as ScanImage writes."
            )
        if shape is None:
            shape, dtype = fshape, fdtype
        elif (fshape, fdtype) != (shape, dtype):
            raise PlaneflowError(
                f"'{f}' has frames of {fshape} {fdtype} but '{files[0]}' has {shape} {dtype}; "
                "all files of a session must agree. Split them into separate sessions."
            )
        pages_per_file.append(n)
    return {
        "format": "tiff",
        "pages_per_file": pages_per_file,
        "npages": int(sum(pages_per_file)),
        "Ly": shape[0],
        "Lx": shape[1],
        "dtype": dtype,
        **header,
    }


def whole_frame_part(Ly: int, Lx: int) -> dict:
    """The one part of a plane that is not split: the whole page, one tile."""
    return {"part": 0, "shape": [Ly, Lx], "offset": [0, 0],
            "tiles": [{"src": [0, Ly, 0, Lx], "dst": [0, 0]}]}


# A plane is processed as one or more *parts*. Each part is an image of ``shape``
# assembled from ``tiles`` of the raw page (``src`` = rows y0:y1, columns x0:x1, placed
# at ``dst`` = (y, x) in the part); ``merge`` puts the part at ``offset`` in the plane
# image of ``plane_shape``. An ordinary plane is one part with one tile; multi-ROI
# stripes are either several parts of one tile each (processed separately) or one part
# of several tiles (stitched side by side before registration).


def build_metadata(row: dict, files: list[str]) -> dict:
    """Inspect the raw files and combine them with the sheet's values."""
    sid = row["session_id"]
    info = inspect_tiffs(files)
    nplanes = row.get("nplanes") or info.get("nplanes_header")
    if not nplanes:
        raise PlaneflowError(
            f"session '{sid}': the number of planes is not in the file header; "
            "set the nplanes column in the sessions sheet."
        )
    nplanes = int(nplanes)
    fs = row.get("fs") or info.get("fs_header")
    if not fs:
        raise PlaneflowError(
            f"session '{sid}': the frame rate is not in the file header; set the fs column "
            "(volume rate in Hz, i.e. frames per second of each plane) in the sessions sheet."
        )
    npages = info["npages"]
    if npages % nplanes:
        raise PlaneflowError(
            f"session '{sid}': {npages} frames in {len(files)} file(s) are not divisible by "
            f"nplanes={nplanes}. Check nplanes, or remove an incomplete last file."
        )
    nframes = npages // nplanes
    if nframes < 50:
        raise PlaneflowError(
            f"session '{sid}': only {nframes} frames per plane; suite2p needs at least 50 "
            "(200 or more for reliable registration and detection)."
        )
    Ly, Lx = info["Ly"], info["Lx"]
    return {
        "cache_format": CACHE_FORMAT,
        "session_id": sid,
        "data_path": row["data_path"],
        "files": files,
        "format": info["format"],
        "pages_per_file": info["pages_per_file"],
        "dtype": info["dtype"],
        "nplanes": nplanes,
        "nframes": nframes,
        "Ly": Ly,
        "Lx": Lx,
        "fs": float(fs),
        "dx": row.get("dx"),
        "dy": row.get("dy"),
        "dz": row.get("dz"),
        "plane_shape": [Ly, Lx],
        "parts": [whole_frame_part(Ly, Lx)],
    }


def session_metadata(row: dict, results_dir: str) -> dict:
    """Metadata for one sheet row, from the cache when it is still valid."""
    files = resolve_files(row["data_path"], row["session_id"])
    key = _fingerprint(files, row)
    cache = Path(results_dir) / row["session_id"] / CACHE_NAME
    if cache.is_file():
        try:
            meta = json.loads(cache.read_text())
            if meta.get("fingerprint") == key:
                return meta
        except (OSError, ValueError):
            pass  # unreadable cache: rebuild it
    meta = build_metadata(row, files)
    meta["fingerprint"] = key
    save_json(cache, meta)
    return meta


def metadata_path(results_dir: str, session_id: str) -> str:
    return os.path.join(results_dir, session_id, CACHE_NAME)


def load_metadata(path: str) -> dict:
    with open(path) as fh:
        return json.load(fh)
