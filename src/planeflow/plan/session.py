"""What a session is: its raw files, planes, frames, frame shape, rate and pixel size.

This runs when Snakemake builds the DAG, so it must stay cheap: the result of
inspecting the raw files is cached per session in ``<results>/<session>/metadata.json``
and reused as long as the files (names, sizes, modification times) and the sheet's
values are unchanged. A cache hit costs one ``stat`` per raw file; no raw data is read.
"""
from __future__ import annotations

import glob
import hashlib
import itertools
import logging
import json
import os
import re
import sys
from pathlib import Path

from planeflow import PlaneflowError
from planeflow.io.atomic import save_json
from planeflow.io.scanimage.acquisition import volume_pages
from planeflow.plan.config import raise_problems, with_defaults
from planeflow.plan.layout import Layout

TIFF_SUFFIXES = (".tif", ".tiff")
ARRAY_SUFFIXES = (".zarr", ".h5", ".hdf5", ".hdf")
#: bump when the metadata layout changes (schemas/metadata.schema.yaml), so old caches are rebuilt
CACHE_FORMAT = 4
METADATA_SCHEMA = "metadata.schema.yaml"


def natural_key(path: str):
    """Sort key so that ``run_2.tif`` comes before ``run_10.tif``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", os.fspath(path))]


def _folder_array(folder: Path, data_path: str, where: str) -> list[str]:
    """The one zarr store or HDF5 file of a folder that holds no TIFF."""
    from planeflow.io.arrays import arrays_in_folder

    arrays = arrays_in_folder(folder)
    if len(arrays) == 1:
        return arrays
    if arrays:
        names = ", ".join(os.path.basename(a) for a in arrays)
        raise PlaneflowError(
            f"{where}the folder '{data_path}' holds no .tif/.tiff file but {len(arrays)} zarr/HDF5 "
            f"recordings ({names}). Point data_path at one of them (one session each)."
        )
    raise PlaneflowError(
        f"{where}the folder '{data_path}' holds no .tif/.tiff file, .zarr folder or HDF5 file. "
        "Point data_path at the folder with the raw recording, a file, or a glob."
    )


def resolve_files(data_path: str, session_id: str = "") -> list[str]:
    """Raw files of a session from a file, a glob pattern or a folder, in natural order.

    A folder gives its TIFFs or, when it holds none, its one zarr store or HDF5 file."""
    where = f"session '{session_id}': " if session_id else ""
    p = Path(data_path).expanduser()
    if any(ch in data_path for ch in "*?["):
        files = [f for f in glob.glob(os.path.expanduser(data_path)) if os.path.isfile(f)]
        if not files:
            raise PlaneflowError(
                f"{where}the pattern '{data_path}' matches no file. "
                "Check the data_path column of the sessions sheet."
            )
    elif p.is_dir() and p.suffix.lower() == ".zarr":
        files = [os.fspath(p)]
    elif p.is_dir():
        files = [os.fspath(f) for f in p.iterdir() if f.is_file() and f.suffix.lower() in TIFF_SUFFIXES]
        if not files:
            files = _folder_array(p, data_path, where)
    elif p.is_file():
        files = [os.fspath(p)]
    else:
        raise PlaneflowError(
            f"{where}data_path '{data_path}' does not exist. "
            "Fix the data_path column of the sessions sheet (paths are relative to the "
            "directory snakemake runs in; the shipped demo session is made by `make demo`)."
        )
    return sorted((os.path.abspath(f) for f in files), key=natural_key)


def _fingerprint(files: list[str], row: dict, stats: dict | None = None) -> str:
    """``stats``: {path: (size, mtime_ns)} to use instead of the files' own (which may be gone)."""
    h = hashlib.sha1()
    h.update(f"{CACHE_FORMAT}".encode())
    for f in files:
        if stats is None:
            st = os.stat(f)
            size, mtime_ns = st.st_size, st.st_mtime_ns
        else:
            size, mtime_ns = stats[f]
        h.update(f"{f}|{size}|{mtime_ns}\n".encode())
    h.update(json.dumps(row, sort_keys=True, default=str).encode())
    return h.hexdigest()


class _TiffWarnings(logging.Handler):
    """Collect tifffile's warnings (it logs a broken page chain instead of raising)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        logging.getLogger("tifffile").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("tifffile").removeHandler(self)
        return False


def inspect_tiffs(files: list[str]) -> dict:
    """Pages, frame shape and dtype of a list of TIFF files (headers only)."""
    import tifffile

    pages_per_file = []
    shape = dtype = None
    for _i, f in enumerate(files):
        try:
            with _TiffWarnings() as warned, tifffile.TiffFile(f) as tif:
                n = len(tif.pages)
                page = tif.pages.first
                fshape, fdtype = tuple(int(s) for s in page.shape), str(page.dtype)
                last = tif.pages[-1]
                end = max((o + c for o, c in zip(last.dataoffsets, last.databytecounts)), default=0)
            broken = [m for m in warned.messages if "invalid page offset" in m or "truncat" in m.lower()]
            if broken or end > os.path.getsize(f):
                raise PlaneflowError(
                    f"'{f}' is truncated or damaged ({(broken or ['image data past the end of the file'])[0]}); "
                    f"only {n} page(s) can be read. Copy the file again from the acquisition "
                    "machine, or remove it from the session's data_path.")
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


def _stop(message: str, problems: list | None) -> None:
    """Raise ``message``, or, when collecting ``problems`` (``planeflow inspect``), note it
    and go on with what can still be worked out."""
    if problems is None:
        raise PlaneflowError(message)
    problems.append(message)


def _need(value, name: str, sid: str, hint: str, problems: list | None = None):
    if value is None:
        _stop(f"session '{sid}': {name} is not in the file header; {hint}", problems)
    return value


def _check_frames(nframes: int, sid: str, problems: list | None = None) -> int:
    if nframes < 50:
        _stop(f"session '{sid}': only {nframes} frames per plane; suite2p needs at least 50 "
              "(200 or more for reliable registration and detection).", problems)
    return nframes


def _kept_planes(acq: dict, nplanes: int, sid: str, problems: list | None = None) -> list[int]:
    """Planes to process: all but ``acquisition.flyback_planes`` (checked to exist)."""
    flyback = sorted({int(z) for z in acq.get("flyback_planes") or []})
    bad = [z for z in flyback if not 0 <= z < nplanes]
    if bad:
        _stop(f"session '{sid}': acquisition.flyback_planes {bad} are not among the "
              f"{nplanes} planes (0-based). Fix acquisition.flyback_planes in the config.", problems)
    return [z for z in range(nplanes) if z not in flyback]


def _tiff_acquisition(files: list[str], acq: dict) -> dict:
    """What the ScanImage header of the first file says (empty for a plain TIFF)."""
    from planeflow.io.scanimage.acquisition import acquisition_info
    from planeflow.io.scanimage.header import read_header

    header = read_header(files[0], count_pages=False)
    if not header.get("SI"):
        return {}
    return acquisition_info(header, channels_are_planes=acq.get("channels_are_planes"))


def _parts(Ly: int, Lx: int, si: dict, roi_mode: str, sid: str,
           problems: list | None = None) -> tuple[list[dict], list[int]]:
    """Parts of a plane and the plane image shape (see the comment above)."""
    rois, rows = si.get("rois") or [], si.get("roi_rows")
    if len(rois) <= 1 or not rows:
        if len(rois) > 1:
            _stop(f"session '{sid}': the header lists {len(rois)} ROIs but their heights and "
                  f"fly-to lines do not add up to the page height {Ly} ({'; '.join(si.get('warnings', []))}). "
                  "Check the file, or process it as one field with acquisition.roi_mode: whole.", problems)
        return [whole_frame_part(Ly, Lx)], [Ly, Lx]
    widths = [int(r["pixel_resolution"][0]) for r in rois]
    heights = [y1 - y0 for y0, y1 in rows]
    if roi_mode == "whole":
        return [whole_frame_part(Ly, Lx)], [Ly, Lx]
    plane_shape = [max(heights), sum(widths)]
    offsets = [0] + list(itertools.accumulate(widths))[:-1]
    tiles = [{"src": [y0, y1, 0, w], "dst": [0, ox]} for (y0, y1), w, ox in zip(rows, widths, offsets)]
    if roi_mode == "stitch":
        return [{"part": 0, "shape": plane_shape, "offset": [0, 0], "tiles": tiles}], plane_shape
    parts = [{"part": i, "shape": [h, w], "offset": [0, ox],
              "tiles": [{"src": t["src"], "dst": [0, 0]}]}
             for i, (t, h, w, ox) in enumerate(zip(tiles, heights, widths, offsets))]
    return parts, plane_shape


def scan_fields(si: dict, parts: list[dict], roi_mode: str) -> list[dict] | None:
    """Where each scan field (mROI) of a multi-ROI session lies, in the plane image and in
    the microscope, from the header alone (parse time).

    One dict per field: ``name``; ``rect`` = [y0, x0, height, width], its pixels in the
    plane image (stitch / separate: the stripes side by side; whole: stacked in the page
    with the fly-to lines between); ``center_um`` / ``size_um`` = [y, x] of the field in
    ScanImage's reference space (``RoiGroups`` scanfield ``centerXY`` / ``sizeXY``, degrees,
    times ``SI.objectiveResolution`` µm/degree; origin on the scanners' optical axis, x
    along the fast-scan direction = increasing pixel column, y = increasing row);
    ``center_deg`` / ``size_deg`` as in the header ([x, y]). None for a single field, or
    when the header lacks a field's centre or size or the objective resolution.
    """
    rois, objres = si.get("rois") or [], si.get("objective_resolution")
    if not objres and rois and rois[0].get("dx") and rois[0].get("size_deg") and rois[0].get("pixel_resolution"):
        # caches written before objective_resolution was kept: dx = objres * size / pixels
        objres = rois[0]["dx"] * rois[0]["pixel_resolution"][0] / rois[0]["size_deg"][0]
    if len(rois) < 2 or not objres or any(not r.get("center_deg") or not r.get("size_deg")
                                          or not r.get("pixel_resolution") for r in rois):
        return None
    if roi_mode == "whole":
        rows = si.get("roi_rows") or []
        if len(rows) != len(rois):
            return None
        rects = [[y0, 0, y1 - y0, int(r["pixel_resolution"][0])] for (y0, y1), r in zip(rows, rois)]
    else:
        tiles = [t for part in parts for t in part["tiles"]] if roi_mode == "stitch" else \
            [dict(dst=part["offset"]) for part in parts]
        if len(tiles) != len(rois):
            return None
        rects = [[int(t["dst"][0]), int(t["dst"][1]), int(r["pixel_resolution"][1]), int(r["pixel_resolution"][0])]
                 for t, r in zip(tiles, rois)]
    return [{"name": r.get("name"), "rect": rect,
             "center_um": [objres * r["center_deg"][1], objres * r["center_deg"][0]],
             "size_um": [objres * r["size_deg"][1], objres * r["size_deg"][0]],
             "center_deg": list(r["center_deg"]), "size_deg": list(r["size_deg"])}
            for r, rect in zip(rois, rects)]


def session_fields(meta: dict) -> list[dict] | None:
    """The scan fields of a session (:func:`scan_fields`) from its cached metadata; caches
    written before fields were kept get them from their ScanImage part."""
    if "fields" in meta:
        return meta["fields"]
    si = meta.get("scanimage")
    return scan_fields(si, meta.get("parts") or [], meta.get("roi_mode", "whole")) if si else None


def build_metadata(row: dict, files: list[str], acq: dict | None = None,
                   problems: list | None = None) -> dict:
    """Inspect the raw files (headers only) and combine them with the sheet's values.

    Values in the sheet win over the header; a value that is needed and found nowhere
    stops with an error naming it. ``problems``: a list to collect those errors in
    instead (``planeflow inspect``); the metadata is then worked out as far as it can
    be, with ``nplanes``/``fs`` None when unknown (frames counted as if one plane).
    An unreadable file raises either way.
    """
    acq = with_defaults("acquisition", acq)  # the config schema's, when called outside Snakemake
    sid = row["session_id"]
    if files and files[0].endswith(ARRAY_SUFFIXES):
        return _array_metadata(row, files[0], acq, problems)
    info = inspect_tiffs(files)
    si = _tiff_acquisition(files, acq)
    Ly, Lx = info["Ly"], info["Lx"]
    stack = si.get("stack_type") or "single_plane"
    given_planes = _need(row.get("nplanes") or (si.get("nplanes") if si else None), "the number of planes",
                         sid, "set the nplanes column in the sessions sheet.", problems)
    nplanes = int(given_planes or 1)
    fs = _need(row.get("fs") or si.get("fs_per_plane") or si.get("fs"), "the frame rate", sid,
               "set the fs column (volume rate in Hz, i.e. frames per second of each plane) "
               "in the sessions sheet.", problems)
    nch = int(si.get("nchannels") or 1) if stack != "lbm" else 1
    fps = int(si.get("frames_per_slice") or 1) if stack == "piezo" else 1
    # flyback frames are saved only by fast-z piezo stacks: the interpreter's count per volume
    flyback_frames = int(si.get("flyback_frames_per_volume") or 0)
    channel = int(acq["functional_channel"]) - 1
    if not 0 <= channel < nch:
        _stop(f"session '{sid}': acquisition.functional_channel={channel + 1} but the files hold "
              f"{nch} channel(s). Set it between 1 and {nch}.", problems)
        channel = 0
    layout = {"pages_per_volume": volume_pages(nch, nplanes, fps, flyback_frames), "nchannels": nch,
              "channel": channel, "frames_per_slice": fps,
              "average_slices": bool(acq["piezo_average"]) and fps > 1}
    npages = info["npages"]
    ppv = layout["pages_per_volume"]
    if npages % ppv and given_planes:
        _stop(f"session '{sid}': {npages} frames in {len(files)} file(s) are not divisible by "
              f"the {ppv} frames of one volume (nplanes={nplanes}"
              + (f", channels={nch}" if nch > 1 else "") + (f", frames per slice={fps}" if fps > 1 else "")
              + "). Check nplanes, or remove an incomplete last file.", problems)
    nframes = npages // ppv * (1 if layout["average_slices"] else fps)
    if given_planes:
        _check_frames(nframes, sid, problems)
    planes = _kept_planes(acq, nplanes, sid, problems)
    parts, plane_shape = _parts(Ly, Lx, si, acq["roi_mode"], sid, problems)
    bidi = dict(acq["bidiphase"])
    if bidi["enabled"] == "auto":
        bidi["enabled"] = bool(si.get("bidirectional")) or stack == "lbm"
    return {
        "cache_format": CACHE_FORMAT,
        "session_id": sid,
        "data_path": row["data_path"],
        "files": files,
        "format": info["format"],
        "pages_per_file": info["pages_per_file"],
        "dataset": None,
        "dtype": info["dtype"],
        "stack_type": stack,
        "nplanes": nplanes if given_planes else None,
        "planes": planes if given_planes else None,
        "nframes": nframes if given_planes else None,
        "layout": layout,
        "Ly": Ly,
        "Lx": Lx,
        "fs": float(fs) if fs is not None else None,
        "dx": row.get("dx") or si.get("dx"),
        "dy": row.get("dy") or si.get("dy"),
        "dz": row.get("dz") or si.get("dz"),
        "zoom": si.get("zoom"),
        "bidiphase": bidi,
        "roi_mode": acq["roi_mode"],
        "nrois": len(si.get("rois") or []) or 1,
        "plane_shape": plane_shape,
        "parts": parts,
        "fields": scan_fields(si, parts, acq["roi_mode"]) if si else None,
        "scanimage": {k: si.get(k) for k in ("si_version", "scanner_type", "fly_to_lines", "rois",
                                              "roi_rows", "line_period", "objective_resolution",
                                              "warnings")} if si else None,
    }


def _array_metadata(row: dict, path: str, acq: dict, problems: list | None = None) -> dict:
    """zarr / HDF5 arrays of shape (T, Z, Y, X) or (T, Y, X)."""
    from planeflow.io.arrays import axes_text, inspect_array

    sid = row["session_id"]
    info = inspect_array(path)
    fs = _need(row.get("fs"), "the frame rate", sid,
               "zarr/HDF5 inputs carry none: set the fs column in the sessions sheet.", problems)
    nplanes = int(info["nplanes"])
    if row.get("nplanes") and int(row["nplanes"]) != nplanes:
        _stop(f"session '{sid}': the sheet says nplanes={row['nplanes']} but '{path}' has shape "
              f"{tuple(info['shape'])} {axes_text(len(info['shape']))} with {nplanes} plane(s). Fix the sheet.",
              problems)
    nframes = _check_frames(int(info["nframes"]), sid, problems)
    Ly, Lx = int(info["Ly"]), int(info["Lx"])
    bidi = dict(acq["bidiphase"])
    bidi["enabled"] = bidi["enabled"] is True
    return {
        "cache_format": CACHE_FORMAT, "session_id": sid, "data_path": row["data_path"],
        "files": [path], "format": info["format"], "pages_per_file": None, "layout": None,
        "dataset": info.get("key"),
        "dtype": info["dtype"], "stack_type": "array", "nplanes": nplanes,
        "planes": _kept_planes(acq, nplanes, sid, problems), "nframes": nframes,
        "Ly": Ly, "Lx": Lx, "fs": float(fs) if fs is not None else None,
        "dx": row.get("dx"), "dy": row.get("dy"),
        "dz": row.get("dz"), "zoom": None, "bidiphase": bidi, "roi_mode": "whole", "nrois": 1,
        "plane_shape": [Ly, Lx], "parts": [whole_frame_part(Ly, Lx)], "fields": None, "scanimage": None,
    }


def session_metadata(row: dict, results_dir: str, acquisition: dict | None = None,
                     problems: list | None = None, unsaved: list | None = None) -> dict | None:
    """Metadata for one sheet row, from the cache when it is still valid.

    ``acquisition``: the config's ``acquisition`` section (roi_mode, flyback planes, ...).
    Everything a run would stop on is found (one line each): raised together, or appended to
    ``problems``, and then None is returned. ``unsaved``: a list that receives ``(cache path,
    metadata)`` of a rebuilt cache instead of writing it (the caller writes it once every session
    is known to be good, so that a run that stops leaves nothing behind).
    """
    if problems is None:
        return _session_metadata(row, results_dir, acquisition, None, unsaved)
    try:
        return _session_metadata(row, results_dir, acquisition, problems, unsaved)
    except PlaneflowError as e:
        problems.append(str(e))
        return None


def _session_metadata(row: dict, results_dir: str, acquisition: dict | None, problems: list | None,
                      unsaved: list | None):
    try:
        files = resolve_files(row["data_path"], row["session_id"])
    except PlaneflowError:
        meta = _archived_metadata(row, results_dir, acquisition)
        if meta is None:
            raise
        return meta
    key = _fingerprint(files, {"row": row, "acquisition": acquisition or {}})
    cache = Path(Layout(results_dir).metadata(row["session_id"]))
    if cache.is_file():
        try:
            meta = json.loads(cache.read_text())
            if meta.get("fingerprint") == key and metadata_problems(meta) is None:
                return meta
        except (OSError, ValueError):
            pass  # unreadable or outdated cache: rebuild it
    meta = _archived_metadata(row, results_dir, acquisition)  # some raw files deleted
    if meta is not None:
        return meta
    found: list[str] = []
    meta = build_metadata(row, files, acquisition, found)
    if found and problems is not None:
        problems.extend(found)
        return None
    raise_problems(found)
    meta["fingerprint"] = key
    wrong = metadata_problems(meta)
    if wrong:  # a planeflow bug, not the user's: say so before anything depends on it
        raise PlaneflowError(f"session '{row['session_id']}': the metadata read from its raw files does "
                             f"not match {METADATA_SCHEMA}: {wrong}. Please report this with the "
                             "output of `planeflow inspect` for the session.")
    if unsaved is None:
        save_json(cache, meta)
    else:
        unsaved.append((cache, meta))
    return meta


def _archived_metadata(row: dict, results_dir: str, acquisition: dict | None) -> dict | None:
    """The cached metadata of a session whose raw files raw_compress archived and deleted.

    None when the session's manifest records no deletion, or when every archived file is
    back in place (then the metadata is rebuilt from them as usual). The cache is used
    only if its fingerprint matches the files as they were when archived (sizes and
    modification times from the manifest) and the current sheet row and acquisition settings.
    """
    from planeflow.core.archive import load_manifest

    sid = row["session_id"]
    layout = Layout(results_dir)
    manifest = load_manifest(layout.manifest(sid))
    if not manifest or not (manifest.get("deletion") or {}).get("requested"):
        return None
    root = manifest.get("data_root") or ""
    gone = (any(not os.path.exists(s.get("path", "")) for s in manifest.get("sources", []))
            or any(not os.path.exists(os.path.join(root, f.get("name", ""))) for f in manifest.get("files", [])))
    if not gone:
        return None
    cache = Path(layout.metadata(sid))
    archive = os.path.join(layout.step_dir("raw_compress", sid), (manifest.get("archive") or {}).get("file", "?"))
    try:
        stats = {s["path"]: (s["size"], s["mtime_ns"]) for s in manifest.get("sources", [])}
        meta = json.loads(cache.read_text())
        ok = meta.get("files") == list(stats) and meta.get("fingerprint") == _fingerprint(
            meta["files"], {"row": row, "acquisition": acquisition or {}}, stats)
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise PlaneflowError(
            f"session '{sid}': its raw files were archived in '{archive}' and deleted, and '{cache}' "
            "is missing or no longer matches them with the current sessions sheet row and acquisition "
            "settings; without the raw files it cannot be rebuilt. Undo the change to the sheet or "
            f"config, or unpack the archive into '{manifest.get('data_root')}' and rerun.")
    print(f"planeflow: session '{sid}': raw files archived in '{archive}' and deleted; "
          f"using the cached '{cache}'", file=sys.stderr)
    return meta


def metadata_problems(meta: dict) -> str | None:
    """Why ``meta`` does not match the metadata schema (the first few errors), or None."""
    import jsonschema

    from planeflow.plan.config import load_schema

    schema = load_schema(METADATA_SCHEMA)
    errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(meta),
                    key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    return "; ".join(f"{'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors[:3])


def load_metadata(path: str) -> dict:
    """A session's metadata.json, checked against the schema (the contract every job reads)."""
    try:
        with open(path) as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as e:
        raise PlaneflowError(f"cannot read the session metadata '{path}' ({e}). Delete it and run "
                             "snakemake again: it is rebuilt from the raw files.") from e
    problems = metadata_problems(meta)
    if problems:
        raise PlaneflowError(f"the session metadata '{path}' does not match {METADATA_SCHEMA} (written by "
                             f"another planeflow version?): {problems}. Delete it and run snakemake again: it "
                             "is rebuilt from the raw files.")
    return meta
