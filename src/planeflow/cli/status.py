"""``planeflow status``: every session, plane and step of a results folder at a glance."""
from __future__ import annotations

import json
import sys


def _cli(args) -> int:
    from planeflow.cli.inspect import config_path
    from planeflow.plan.config import deep_merge, load_schema, schema_defaults
    from planeflow.plan.inspect import load_config
    from planeflow.plan.status import collect, format_table

    path = config_path(args.config)
    config = None
    if path is not None:  # which optional steps run: the workflow's config with its defaults
        config = deep_merge(schema_defaults(load_schema("config.schema.yaml")), load_config(path))
    results = args.results or (config or {}).get("results_dir") or "results"
    status = collect(results, sessions=args.session or None, workdir=args.directory, config=config)
    if args.json:
        json.dump(status, sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
    else:
        print(format_table(status))
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
                        "config/config.yaml in the current folder when it exists; without one, an "
                        "optional step is shown once its folder exists)")
    p.add_argument("--directory", "-d",
                   help="the folder Snakemake runs in, holding .snakemake (default: the current "
                        "folder or the nearest folder above the results that has one)")
    p.set_defaults(func=_cli)
