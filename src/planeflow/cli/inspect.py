"""``planeflow inspect PATH``: what planeflow reads and decides about a recording, before
any run (the logic is :mod:`planeflow.plan.inspect`)."""
from __future__ import annotations

import json
import os
import sys

from planeflow import PlaneflowError

DEFAULT_CONFIG = os.path.join("config", "config.yaml")


def config_path(arg: str | None) -> str | None:
    """``--config``, else ``config/config.yaml`` in the current folder when it exists."""
    if arg:
        return arg
    return DEFAULT_CONFIG if os.path.isfile(DEFAULT_CONFIG) else None


def _num(v, unit: str = "", digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}{unit}"
    return f"{v}{unit}"


def _from(source: str | None) -> str:
    """`` (from the header)``, `` (from --fs)``; "" for no source."""
    from planeflow.plan.inspect import source_text

    return f" ({source_text(source)})" if source else ""


def format_report(r: dict) -> str:
    """The inspect report as text for a terminal."""
    lines = [f"{r['data_path']}  (session_id {r['session_id']})"]

    def row(label, text):
        lines.append(f"  {label:<14}{text}")

    if "stack_type" in r:
        fmt = {"scanimage-tiff": "ScanImage TIFF", "tiff": "TIFF (no ScanImage header)",
               "zarr": "zarr array", "hdf5": "HDF5 array"}.get(r["format"], r["format"])
        si = r.get("scanimage") or {}
        if si:
            fmt += f" {si.get('version') or ''}".rstrip()
            if si.get("scanner"):
                fmt += f", scanner {si['scanner']}"
        row("format", fmt)
        row("stack type", f"{r['stack_type']}: {r['stack_reason']}")
        planes = "unknown" if r["nplanes"] is None else r["planes_text"]
        if r["planes"] is not None and len(r["planes"]) != (r["nplanes"] or 0):
            planes += f" (processed: {', '.join(map(str, r['planes']))})"
        row("planes", planes)
        if r["nchannels"] > 1:
            row("channels", f"{r['nchannels']} (processing channel {r['functional_channel']})")
        frames = ("- (depends on nplanes)" if r["frames_per_plane"] is None
                  else f"{r['frames_per_plane']} per plane")
        if r["frames_per_slice"] > 1:
            frames += (f" ({r['frames_per_slice']} frames per slice, "
                       + ("averaged" if r["average_slices"] else "kept") + ")")
        if r.get("pages"):
            frames += f"; {r['pages']} pages" + (f", {r['pages_per_volume']} per volume"
                                                 if r["pages_per_volume"] else "")
        row("frames", frames)
        row("rate", "- (missing)" if r["fs"] is None else f"{_num(r['fs'], ' Hz')} per plane{_from(r['fs_source'])}")
        row("frame", f"{r['frame_shape'][0]} x {r['frame_shape'][1]} px {r['dtype']}"
            + ("" if r["plane_shape"] == r["frame_shape"]
               else f" -> plane image {r['plane_shape'][0]} x {r['plane_shape'][1]} px"))
        if len(r["rois"]) > 1:
            sizes = ", ".join(f"{x['name']} {x['width']}x{x['height']} px rows {x['rows']}" for x in r["rois"])
            row("mROIs", f"{len(r['rois'])}: {sizes}")
            row("fly-to lines", f"{r['fly_to_lines']} between ROIs"
                + (f" (header: {r['fly_to_lines_header']})" if r["fly_to_lines_header"] not in
                   (None, r["fly_to_lines"]) else ""))
            row("roi_mode", f"{r['roi_mode']} ({r['parts']} part(s) per plane)")
        pix = (f"dx {_num(r['dx'], ' µm')}, dy {_num(r['dy'], ' µm')}{_from(r.get('dx_source'))}"
               + f"; dz {_num(r['dz'], ' µm')}{_from(r.get('dz_source'))}")
        row("pixel size", pix)
        if r.get("zoom") is not None:
            row("zoom", _num(r["zoom"]))
        if r.get("bidirectional") is not None or r["bidiphase_correction"]:
            row("scan phase", ("bidirectional" if r.get("bidirectional") else "unidirectional")
                + ("; corrected while writing the binaries" if r["bidiphase_correction"] else "; not corrected"))
        est = r.get("bidiphase_estimate")
        if est:
            per = ", ".join(f"plane {p}: {_num(v, ' px')}" for p, v in est["offsets"].items())
            row("offset", f"{per} (from {est['frames_per_plane']} frames per plane)")
        if si.get("acquisition_start"):
            row("started", f"{si['acquisition_start']} (rig local time, from the header)")
    lines.append(f"  files ({len(r['files'])}, read in this order):")
    for i, f in enumerate(r["files"], 1):
        lines.append(f"    {i:>3}. {f['path']}" + (f"  ({f['pages']} pages)" if "pages" in f else ""))
    for title, items in (("warnings", r.get("warnings")), ("a run would stop", r.get("problems"))):
        if items:
            lines.append(f"  {title}:")
            lines += [f"    - {m}" for m in items]
    missing = r.get("missing") or []
    if missing:
        lines.append("  missing for a run (sessions sheet columns):")
        for m in missing:
            lines.append(f"    - {m['column']} ({'required' if m['required'] else 'recommended'}): {m['why']}")
    return "\n".join(lines)


def _cli(args) -> int:
    from planeflow.plan.inspect import inspect_session, load_config

    cfg = load_config(config_path(args.config))
    row = {"nplanes": args.nplanes, "fs": args.fs, "dz": args.dz}
    try:
        report = inspect_session(args.path, row=row, acquisition=cfg.get("acquisition"),
                                 bidi=args.bidi, bidi_frames=args.bidi_frames, row_source="options")
    except PlaneflowError as e:
        if os.path.isdir(args.path) and any(os.scandir(args.path)):
            raise PlaneflowError(f"{e} To list the sessions in the folders below it, run "
                                 f"`planeflow init {args.path} --sheet SHEET.tsv`.") from e
        raise
    text = json.dumps(report, indent=2, default=str) if args.json else format_report(report)
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `planeflow inspect ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1 if report["problems"] else 0


def add_cli(subparsers) -> None:
    """Register the ``inspect`` subcommand on an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "inspect", help="show what planeflow reads from a recording and what a run still needs",
        description=(
            "Read the headers of a recording (a TIFF file, a glob such as 'raw/run1_*.tif', a "
            "folder of TIFFs, a .zarr folder or an HDF5 file, or a folder holding one of these) and "
            "show what the workflow will use: format, stack type (LBM / piezo / single plane / "
            "interleaved pages of a plain TIFF / array) and why, planes and where their number "
            "comes from, channels, "
            "frames per plane, rate, mROIs and fly-to lines, pixel size, zoom, the files in "
            "the order they are read, warnings, and what the sessions sheet still has to give. "
            "Exit status 1 when a run on it would stop."))
    p.add_argument("path", help="a file, a glob pattern (quote it) or a folder: a data_path of the sheet")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--bidi", action="store_true",
                   help="also estimate the bidirectional scan-phase offset from a sample of frames")
    p.add_argument("--bidi-frames", type=int, default=200,
                   help="--bidi: frames per plane to read (default 200)")
    p.add_argument("--nplanes", type=int, help="as the sheet's nplanes column (plain TIFFs need it)")
    p.add_argument("--fs", type=float, help="as the sheet's fs column: volume rate in Hz")
    p.add_argument("--dz", type=float, help="as the sheet's dz column: plane spacing in µm")
    p.add_argument("--config", help=f"config whose acquisition settings apply (default: {DEFAULT_CONFIG} "
                                    "when it exists)")
    p.set_defaults(func=_cli)
