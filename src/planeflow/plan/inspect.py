"""What planeflow reads and decides about a recording before any run (``planeflow inspect``).

Nothing here interprets a file on its own: the values are those of the workflow's
DAG-time code path, :func:`planeflow.plan.session.resolve_files` and
:func:`~planeflow.plan.session.build_metadata` (collecting instead of raising the
problems a run would stop on), with :func:`planeflow.io.scanimage.read_header` /
:func:`~planeflow.io.scanimage.acquisition_info` for what the header says beyond that
(mROI sizes, channels, zoom, acquisition start). Only headers are read, except for the
optional scan-phase estimate, which reads a sample of frames.
"""
from __future__ import annotations

import os
import re
import statistics
from pathlib import Path

from planeflow import PlaneflowError
from planeflow.plan.config import with_defaults
from planeflow.io.arrays import arrays_in_folder, axes_text, inspect_array
from planeflow.plan.session import ARRAY_SUFFIXES, _tiff_acquisition, build_metadata, resolve_files

#: frames per plane read for ``--bidi``, in blocks spread over the recording
BIDI_FRAMES = 200
BIDI_BLOCK = 50
#: planes sampled for ``--bidi`` (spread over the volume; the offset is the scanner's)
BIDI_PLANES = 5
#: below this many frames per plane a run works but registration/detection are weak
FEW_FRAMES = 200

_ID_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
#: where a value came from (a report's ``*_source``), as the text says it; a command-line
#: option (``--nplanes``) reads as itself
_FROM = {"sheet": "the sheet", "header": "the header", "array shape": "the array's shape"}


def safe_session_id(text: str) -> str:
    """A session_id the sessions sheet accepts (letters, digits, ``_ . -``; starts alnum)."""
    sid = _ID_BAD.sub("_", text).strip("_.-")
    return sid or "session"


def default_session_id(data_path: str) -> str:
    """The file name without suffix for a file; the folder's name for a folder or a glob;
    ``<sub>_<ses>`` for a NeuroBlueprint ``sub-*/ses-*/funcimg`` folder."""
    p = Path(os.path.abspath(str(data_path)))
    if any(ch in str(data_path) for ch in "*?["):
        p = p.parent
    elif p.suffix.lower() in (".tif", ".tiff", *ARRAY_SUFFIXES):
        return safe_session_id(p.stem)
    if p.name == "funcimg" and p.parent.name.startswith("ses-") and p.parent.parent.name.startswith("sub-"):
        return neuroblueprint_session_id(p.parent.parent.name, p.parent.name)
    return safe_session_id(p.name)


def neuroblueprint_session_id(sub: str, ses: str) -> str:
    """``sub-001``, ``ses-01`` -> ``sub-001_ses-01``."""
    return safe_session_id(f"{sub}_{ses}")


def source_text(source: str | None) -> str:
    """``"from the sheet"``, ``"from --nplanes"``, ``"from the header"``; "" for no source."""
    return f"from {_FROM.get(source, source)}" if source else ""


def describe_planes(nplanes: int | None, source: str | None) -> str:
    """``"3 planes (from --nplanes)"``, ``"1 plane (from the header)"``, or ``"planes
    unknown"`` when nothing gives the number (a plain TIFF without nplanes)."""
    if nplanes is None:
        return "planes unknown"
    text = f"{nplanes} plane" + ("" if nplanes == 1 else "s")
    return f"{text} ({source_text(source)})" if source else text


def _given_by(key: str, row_source: str) -> str:
    """Source of a value given with the row: the sheet, or the option ``--<key>``."""
    return "sheet" if row_source == "sheet" else f"--{key}"


def _source(key: str, given: dict, row_source: str, found) -> str | None:
    """Where the value of ``key`` came from: the row (sheet / option), else the header
    when it holds one (``found``), else nowhere."""
    if given.get(key) is not None:
        return _given_by(key, row_source)
    return "header" if found is not None else None


def _nplanes_source(meta: dict, si: dict, given: dict, row_source: str) -> str | None:
    if meta["stack_type"] == "array":
        return "array shape"  # a sheet value that disagrees is a problem, not a source
    return _source("nplanes", given, row_source, si.get("nplanes") if si else None)


def _stack_type(meta: dict) -> str:
    """The stack type as reported: the workflow's, except for pages that no header stack
    explains (``single_plane`` in the metadata, whatever nplanes is): ``unknown`` while
    the number of planes is unknown, ``interleaved`` when nplanes is more than one."""
    stack, n = meta["stack_type"], meta.get("nplanes")
    if stack != "single_plane" or n == 1:
        return stack
    return "unknown" if n is None else "interleaved"


def _array_reason(meta: dict, shape: list[int]) -> str:
    axes = axes_text(len(shape))
    what = f"{meta['format']} array of shape {axes} = {tuple(shape)}"
    if len(shape) == 3:
        return f"{what}: one plane"
    return f"{what}: planes are its Z axis, {describe_planes(meta['nplanes'], None)}"


def _interleaved_reason(nplanes: int | None, source: str | None) -> str:
    """How pages without a header stack become planes."""
    if nplanes is None:
        return "the number of planes is unknown until the sheet's nplanes column (or --nplanes) gives it"
    if nplanes == 1:
        return f"every page is a frame of one plane (nplanes {source_text(source)})"
    return f"pages are read as {nplanes} planes interleaved page by page (nplanes {source_text(source)})"


def _stack_reason(meta: dict, si: dict, acq: dict, nplanes_source: str | None = None,
                  shape: list[int] | None = None) -> str:
    stack = meta["stack_type"]
    if stack == "array":
        return _array_reason(meta, shape)
    if not si:
        return "plain TIFF (no ScanImage header); " + _interleaved_reason(meta.get("nplanes"), nplanes_source)
    from planeflow.io.scanimage.acquisition import LBM_MIN_CHANNELS

    nsaved = si.get("pages_per_frame")
    how = {"pages": "counted from the pages' frame numbers",
           "header": "hChannels.channelSave"}.get(si.get("channel_source"), "default")
    forced = acq.get("channels_are_planes")
    if stack == "lbm":
        if forced:
            return f"acquisition.channels_are_planes is true: the {nsaved} saved channels are planes"
        return (f"{nsaved} channels saved per frame ({how}); {LBM_MIN_CHANNELS} or more means "
                "light-bead planes (acquisition.channels_are_planes: null decides so)")
    if stack == "piezo":
        fps = si.get("frames_per_slice") or 1
        fb = si.get("flyback_frames_per_volume") or 0
        return (f"z stack enabled in the header (hStackManager/hFastZ) with {si.get('nplanes')} "
                f"slices, {fps} frame(s) per slice" + (f", {fb} flyback frame(s)" if fb else ""))
    if forced is False and (nsaved or 0) >= LBM_MIN_CHANNELS:
        why = f"acquisition.channels_are_planes is false: the {nsaved} channels are colour channels"
    else:
        why = (f"no z stack in the header and {nsaved} channel(s) per frame (fewer than "
               f"{LBM_MIN_CHANNELS}: colour channels, not planes)")
    if meta.get("nplanes") not in (None, 1):  # the sheet's nplanes overrides the header
        why += "; " + _interleaved_reason(meta["nplanes"], nplanes_source)
    return why


def _epoch(files: list[str]) -> str | None:
    """ScanImage's acquisition start (the first frame's ``epoch``, rig local time)."""
    from planeflow.io.scanimage.header import read_header

    try:
        v = read_header(files[0], count_pages=False).get("frame_data", {}).get("epoch")
        y, mo, d, h, mi, s = (list(v) + [0] * 6)[:6]
        return f"{int(y):04d}-{int(mo):02d}-{int(d):02d}T{int(h):02d}:{int(mi):02d}:{float(s):06.3f}"
    except (PlaneflowError, TypeError, ValueError):
        return None


def _missing(meta: dict | None, is_array: bool) -> list[dict]:
    """Sheet columns a run needs (``required``) or should have, with why."""
    out = []
    if meta is None:
        return out
    if meta.get("nplanes") is None:
        out.append({"column": "nplanes", "required": True,
                    "why": "number of planes: a plain TIFF does not say how its pages are interleaved"})
    if meta.get("fs") is None:
        out.append({"column": "fs", "required": True,
                    "why": "volume rate in Hz (frames per second of each plane): "
                           + ("zarr/HDF5 files carry none" if is_array else "not in the file header")})
    if meta.get("dx") is None or meta.get("dy") is None:
        out.append({"column": "dx, dy", "required": False,
                    "why": "pixel size in µm: the µm cell filters, the NWB file and the volume "
                           "summary need it"})
    if (meta.get("nplanes") or 1) > 1 and meta.get("dz") is None:
        why = ("plane spacing in µm: the LBM header does not hold the bead spacing"
               if meta.get("stack_type") == "lbm" else "plane spacing in µm")
        out.append({"column": "dz", "required": False,
                    "why": why + "; the NWB plane positions and the volume summary use it"})
    return out


def sample_bidiphase(meta: dict, bidi: dict | None = None, frames: int = BIDI_FRAMES,
                     max_planes: int = BIDI_PLANES) -> dict:
    """Scan-phase offset (px) of a few planes from ``frames`` frames each, read in blocks
    spread over the recording, with :func:`planeflow.core.bidiphase.estimate_bidiphase`
    and the session's ``max_offset`` / ``subpixel`` settings, on the raw pages as
    binary_write estimates them (before the mROI stripes are cut apart).
    """
    import numpy as np

    from planeflow.core.bidiphase import estimate_bidiphase
    from planeflow.io.raw import open_plane_reader

    bidi = {**with_defaults("acquisition", {})["bidiphase"], **(bidi or {})}
    reader = open_plane_reader(meta)
    n = reader.nframes
    planes = list(meta["planes"])
    if len(planes) > max_planes:
        idx = sorted({round(i * (len(planes) - 1) / (max_planes - 1)) for i in range(max_planes)})
        planes = [planes[i] for i in idx]
    block = min(BIDI_BLOCK, max(1, frames))
    nblocks = max(1, min(-(-frames // block), -(-n // block)))
    starts = sorted({int(round(i * max(0, n - block) / max(1, nblocks - 1))) for i in range(nblocks)})
    out = {}
    for p in planes:
        sample = [f for s in starts for f in reader.iter_frames(p, chunk=block, start=s, stop=s + block)]
        stack = np.concatenate(sample)
        out[int(p)] = float(estimate_bidiphase(stack, max_offset=int(bidi["max_offset"]),
                                               subpixel=bool(bidi["subpixel"])))
    used = min(n, len(starts) * block)
    return {"offsets": out, "frames_per_plane": int(used),
            "median": float(statistics.median(out.values())) if out else None}


def _folder_recording(data_path: str, error: PlaneflowError) -> tuple[list[str], str]:
    """A folder without TIFFs that holds one zarr store or HDF5 file: that recording, and
    what a run on the folder as data_path stops on (the workflow's ``error``). Re-raises
    ``error`` for anything else, naming the arrays of a folder that holds several."""
    arrays = arrays_in_folder(data_path) if os.path.isdir(data_path) else []
    if len(arrays) > 1:
        names = ", ".join(os.path.basename(a) for a in arrays)
        raise PlaneflowError(f"the folder '{data_path}' holds no TIFF file but {len(arrays)} zarr/HDF5 "
                             f"recordings ({names}): inspect one of them, or list them all with "
                             f"`planeflow init {data_path} --sheet SHEET.tsv`.") from error
    if not arrays:
        raise error
    found = os.path.abspath(arrays[0])
    return [found], f"{error} It holds one recording, '{found}': set data_path to that path."


def find_files(data_path: str, session_id: str = "") -> tuple[list[str], list[str]]:
    """The session's raw files as the workflow resolves ``data_path``
    (:func:`~planeflow.plan.session.resolve_files`), and what a run would stop on.

    A folder whose only recording is a zarr store or an HDF5 file gives that recording
    (as ``planeflow init`` does); while the workflow reads only TIFFs from a folder, its
    error is listed as a problem, naming the path to use instead.
    """
    try:
        return resolve_files(data_path, session_id), []
    except PlaneflowError as e:
        files, problem = _folder_recording(data_path, e)
        return files, [problem]


def inspect_session(data_path: str, *, session_id: str | None = None, row: dict | None = None,
                    acquisition: dict | None = None, bidi: bool = False,
                    bidi_frames: int = BIDI_FRAMES, row_source: str = "sheet") -> dict:
    """What planeflow makes of ``data_path`` (a file, glob or folder), as a plain dict.

    ``row``: sheet values to apply (nplanes, fs, dx, ...), as a sheet row would;
    ``row_source``: where they come from, ``"sheet"`` or ``"options"`` (the command
    line's ``--nplanes``, ``--fs``, ...; the report's ``*_source`` then names the option);
    ``acquisition``: the config's ``acquisition`` section. Raises PlaneflowError only when
    ``data_path`` names no readable recording; problems a run would stop on are listed
    under ``problems``.
    """
    data_path = str(data_path)
    sid = session_id or default_session_id(data_path)
    acq = with_defaults("acquisition", acquisition)
    files, problems = find_files(data_path, sid)
    given = {k: v for k, v in (row or {}).items() if v is not None and k not in ("session_id", "data_path")}
    sheet_row = {"session_id": sid, "data_path": data_path, **given}
    is_array = files[0].endswith(ARRAY_SUFFIXES)
    meta, si = None, {}
    try:
        meta = build_metadata(sheet_row, files, acq, problems=problems)
        if not is_array:
            si = _tiff_acquisition(files, acq)
    except PlaneflowError as e:
        problems.append(str(e))

    report: dict = {"session_id": sid, "data_path": data_path,
                    "files": [{"path": f} for f in files], "problems": problems}
    if meta is None:
        report.update(format="array" if is_array else "tiff", warnings=[], missing=[])
        return report

    for f, n in zip(report["files"], meta.get("pages_per_file") or []):
        f["pages"] = int(n)
    lay = meta.get("layout") or {}
    rois = []
    for r, rows in zip(si.get("rois") or [], si.get("roi_rows") or [None] * len(si.get("rois") or [])):
        w, h = (r.get("pixel_resolution") or [None, None])[:2]
        rois.append({"name": r.get("name"), "width": w, "height": h, "rows": rows,
                     "size_deg": r.get("size_deg"), "dx": r.get("dx"), "dy": r.get("dy")})
    warnings = list(si.get("warnings") or [])
    if meta.get("nframes") is not None and 50 <= meta["nframes"] < FEW_FRAMES:
        warnings.append(f"only {meta['nframes']} frames per plane: registration and detection are "
                        f"more reliable with {FEW_FRAMES} or more")

    def source(key, header_value):
        return _source(key, given, row_source, header_value)

    fmt = meta["format"] if is_array else ("scanimage-tiff" if si else "tiff")
    shape = inspect_array(files[0], meta.get("dataset"))["shape"] if is_array else None
    nplanes_source = _nplanes_source(meta, si, given, row_source)
    report.update({
        "format": fmt,
        "scanimage": {"version": si.get("si_version"), "scanner": si.get("scanner_type"),
                      "acquisition_start": _epoch(files)} if si else None,
        "stack_type": _stack_type(meta),
        "stack_reason": _stack_reason(meta, si, acq, nplanes_source, shape),
        "array_shape": shape,
        "array_axes": axes_text(len(shape)) if shape else None,
        "nplanes": meta["nplanes"],
        "nplanes_source": nplanes_source,
        "planes_text": describe_planes(meta["nplanes"], nplanes_source),
        "planes": meta["planes"],
        "flyback_planes": sorted(acq.get("flyback_planes") or []),
        "nchannels": lay.get("nchannels", 1),
        "functional_channel": (lay.get("channel", 0) + 1) if lay else 1,
        "frames_per_plane": meta["nframes"],
        "frames_per_slice": lay.get("frames_per_slice", 1),
        "average_slices": lay.get("average_slices", False),
        "pages": sum(meta.get("pages_per_file") or []) or None,
        "pages_per_volume": lay.get("pages_per_volume") if meta["nplanes"] is not None else None,
        "fs": meta["fs"],
        "fs_source": source("fs", si.get("fs_per_plane") or si.get("fs")),
        "frame_shape": [meta["Ly"], meta["Lx"]],
        "dtype": meta["dtype"],
        "plane_shape": meta["plane_shape"],
        "roi_mode": meta["roi_mode"],
        "parts": len(meta["parts"]),
        "rois": rois,
        "fly_to_lines": si.get("fly_to_lines") if len(rois) > 1 else 0,
        "fly_to_lines_header": si.get("fly_to_lines_header"),
        "dx": meta["dx"], "dy": meta["dy"], "dz": meta["dz"],
        "dx_source": source("dx", si.get("dx")), "dz_source": source("dz", si.get("dz")),
        "zoom": meta["zoom"],
        "bidirectional": si.get("bidirectional"),
        "bidiphase_correction": bool(meta["bidiphase"]["enabled"]),
        "warnings": warnings,
        "missing": _missing(meta, is_array),
    })
    if bidi:
        if meta.get("planes") is None:
            report["bidiphase_estimate"] = None
            problems.append("the scan-phase offset needs the number of planes (nplanes) to find "
                            "a plane's frames")
        else:
            report["bidiphase_estimate"] = sample_bidiphase(meta, meta["bidiphase"], bidi_frames)
    return report


def load_config(path: str | os.PathLike | None) -> dict:
    """The config file's settings (empty when ``path`` is None)."""
    if path is None:
        return {}
    import yaml

    try:
        with open(path) as fh:
            return yaml.safe_load(fh) or {}
    except OSError as e:
        raise PlaneflowError(f"cannot read the config '{path}' ({e.strerror}). Give an existing "
                             "config file with --config.") from e
    except yaml.YAMLError as e:
        raise PlaneflowError(f"config '{path}' is not valid YAML ({e}). Fix the file.") from e
