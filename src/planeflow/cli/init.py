"""``planeflow init RAW_ROOT``: find the sessions under a folder and write the sessions
sheet (the logic is :mod:`planeflow.plan.discover`)."""
from __future__ import annotations

import os


DEFAULT_SHEET = os.path.join("config", "sessions.tsv")


#: a session's stack type in the one-line summary; else the type with spaces
_STACK_WORDS = {"interleaved": "plain TIFF", "unknown": "plain TIFF"}


def _summary(rep: dict) -> str:
    if "stack_type" not in rep:
        return "not readable"
    stack = rep["stack_type"]
    if stack == "array":
        parts = [f"{rep['format']} array {rep['array_axes']}"]
    else:
        parts = [_STACK_WORDS.get(stack, stack.replace("_", " "))]
    if stack != "single_plane":  # "single plane" says it
        parts.append(rep["planes_text"])
    if rep["frames_per_plane"] is not None:
        parts.append(f"{rep['frames_per_plane']} frames")
    if rep["fs"]:
        parts.append(f"{rep['fs']:.4g} Hz")
    if len(rep.get("rois") or []) > 1:
        parts.append(f"{len(rep['rois'])} mROIs")
    return ", ".join(parts)


def _cli(args) -> int:
    from planeflow.cli.inspect import DEFAULT_CONFIG, config_path
    from planeflow.plan.discover import draft_sheet, refuse_existing, write_sheet
    from planeflow.plan.inspect import load_config

    sheet = os.path.normpath(args.sheet or DEFAULT_SHEET)
    refuse_existing(sheet, args.force)  # before reading any header
    cfg_path = config_path(args.config)
    cfg = load_config(cfg_path)
    draft = draft_sheet(args.raw_root, acquisition=cfg.get("acquisition"), nwb=cfg.get("nwb_export"))
    write_sheet(sheet, draft["columns"], draft["rows"], force=args.force)

    rows = draft["rows"]
    layout = "NeuroBlueprint layout" if draft["layout"] == "neuroblueprint" else "one per recording folder"
    print(f"wrote {sheet}: {len(rows)} session(s) under {draft['root']} ({layout})")
    width = max(len(r["session_id"]) for r in rows)
    for r in rows:
        print(f"  {r['session_id']:<{width}}  {_summary(draft['reports'][r['session_id']])}  <- {r['data_path']}")
    for n in draft["notes"]:
        print(f"  note: {n}")
    problems = {sid: rep["problems"] for sid, rep in draft["reports"].items() if rep.get("problems")}
    if problems:
        print("a run would stop on these (see `planeflow inspect DATA_PATH`):")
        for _sid, msgs in problems.items():
            for m in msgs:
                print(f"  - {m}")
    if draft["to_fill"]:
        print(f"fill in before a run (empty columns of {sheet}):")
        for col, e in draft["to_fill"].items():
            who = ("all sessions" if len(e["sessions"]) == len(rows)
                   else ", ".join(e["sessions"]))
            print(f"  - {col} ({'required' if e['required'] else 'recommended'}; {who}): {e['why']}")
        starts = {sid: (rep.get("scanimage") or {}).get("acquisition_start")
                  for sid, rep in draft["reports"].items()}
        if "session_start_time" in draft["to_fill"] and any(starts.values()):
            print("  ScanImage headers give the start in the rig's local time (add its UTC offset): "
                  + ", ".join(f"{sid} {t}" for sid, t in starts.items() if t))
        if any(e["why"].startswith("NWB export") for e in draft["to_fill"].values()):
            print(f"  NWB values shared by all sessions can go under nwb_export.metadata in "
                  f"{cfg_path or DEFAULT_CONFIG} instead. A session without them gets no NWB file "
                  "(nwb_export.enabled: auto, the default); enabled: true requires them, false skips the export.")
    print("tau (s) and diameter (px) come from the config's suite2p section unless set per session.")
    configured = cfg.get("sessions")
    if configured and os.path.abspath(configured) != os.path.abspath(sheet):
        print(f"the config {cfg_path} reads '{configured}': set 'sessions: {sheet}' there to use this sheet.")
    print("then check the plan with `snakemake -n` and run `snakemake`.")
    return 0


def add_cli(subparsers) -> None:
    """Register the ``init`` subcommand on an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "init", help="find the sessions under a folder and write the sessions sheet",
        description=(
            "Find the recordings under RAW_ROOT - one session per folder of TIFFs (per "
            "ScanImage acquisition), .zarr folder or HDF5 file, or per sub-*/ses-*/funcimg/ "
            "of a NeuroBlueprint project (rawdata/) - read their headers and write the "
            "sessions sheet with session_id, data_path and the values found; the columns a "
            "run still needs are left empty and listed."))
    p.add_argument("raw_root", help="folder with the raw recordings (or a NeuroBlueprint project)")
    p.add_argument("--sheet", help=f"sheet to write (default: {DEFAULT_SHEET})")
    p.add_argument("--force", action="store_true", help="replace an existing sheet")
    p.add_argument("--config", help="config whose acquisition and nwb_export settings apply "
                                    "(default: config/config.yaml when it exists)")
    p.set_defaults(func=_cli)
