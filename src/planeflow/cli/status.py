"""``planeflow status``: every session, plane and step of a results folder at a glance."""
from __future__ import annotations

import json
import sys


def _cli(args) -> int:
    import os

    from planeflow.cli.inspect import DEFAULT_CONFIG
    from planeflow.plan.config import deep_merge, load_schema, schema_defaults
    from planeflow.plan.inspect import load_config
    from planeflow.plan.status import collect, disk_footprint, format_disk, format_table

    path, config = args.config, None
    if path is None:  # the workflow folder's config, when it is the one of these results
        found = os.path.join(args.directory or ".", DEFAULT_CONFIG)
        path = found if os.path.isfile(found) else None
    if path is not None:  # which optional steps run: the workflow's config with its defaults
        config = deep_merge(schema_defaults(load_schema("config.schema.yaml")), load_config(path))
        here = os.path.dirname(os.path.dirname(os.path.abspath(path))) if path != args.config else "."
        own = os.path.join(here, config.get("results_dir") or "results")
        if args.config is None and args.results and os.path.abspath(args.results) != os.path.abspath(own):
            config = None  # another workflow's results: its optional steps are shown once they ran
    results = args.results or (config or {}).get("results_dir") or "results"
    status = collect(results, sessions=args.session or None, workdir=args.directory, config=config)
    if args.disk:
        status["disk"] = [disk_footprint(results, s["session"]) for s in status["sessions"]]
    if args.json:
        json.dump(status, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        print(format_table(status))
        if args.disk:
            print("\n" + format_disk(status["disk"]))
    c = status["counts"]
    # exit status for scripts: 0 all done, 1 something failed, 2 otherwise not finished
    return 1 if c["failed"] else 0 if c["done"] == sum(c.values()) else 2


def add_cli(subparsers) -> None:
    """Register the ``status`` subcommand on an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "status", help="done/failed/running/incomplete/pending of every session, plane and step",
        description=(
            "Read a results folder (outputs, per-step logs, each session's metadata.json) and "
            "Snakemake's markers in .snakemake (incomplete jobs, locks); print one table of "
            "sessions x planes x steps and, for each failed or unfinished job, its log, the "
            "error and the command that reruns just that plane. Builds no DAG. Exit status: "
            "0 all done, 1 a job failed, 2 otherwise unfinished."))
    p.add_argument("results", nargs="?",
                   help="the results folder (default: results_dir of the config, else results)")
    p.add_argument("--session", "-s", action="append",
                   help="only this session (repeat for several)")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--config", "-c",
                   help="the workflow's config, which switches the optional steps on (default: "
                        "config/config.yaml in the folder Snakemake runs in (--directory, else the "
                        "current folder) when its results_dir is these results; without one, an "
                        "optional step is shown once its folder exists)")
    p.add_argument("--directory", "-d",
                   help="the folder Snakemake runs in, holding .snakemake (default: the current "
                        "folder or the nearest folder above the results that has one)")
    p.add_argument("--disk", action="store_true",
                   help="also the disk space each session's results take, against its raw files")
    p.set_defaults(func=_cli)
