"""Install planeflow's SLURM profile as a global Snakemake profile.

The repository's ``profiles/slurm/`` reads the SLURM account, partition and QoS from
the environment (``PLANEFLOW_SLURM_ACCOUNT``, ``PLANEFLOW_SLURM_PARTITION``,
``PLANEFLOW_SLURM_QOS``). :func:`install_profile` copies it to the user's Snakemake
profile folder (``$XDG_CONFIG_HOME/snakemake/slurm``, by default
``~/.config/snakemake/slurm``) with the values given written in, so that
``snakemake --profile slurm`` works from any folder. Values not given keep reading
the environment.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from planeflow import PlaneflowError

#: the profile template inside a planeflow checkout (the workflow folder)
PROFILE_SUBDIR = Path("profiles") / "slurm"
PROFILE_NAME = "slurm"

#: names SLURM accepts for accounts, partitions and QoS (comma lists allowed for
#: accounts and partitions); anything else is refused rather than quoted
_VALUE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+@-]*(,[A-Za-z0-9_][A-Za-z0-9_.:+@-]*)*$")

#: the __definitions__ line of config.yaml that sets each value from the environment
_DEFINITION_RE = r"^(?P<indent>[ \t]*-[ \t]*){name}[ \t]*=.*$"

GPU_CONFIG = "gpu.yaml"
_GPU_TEXT = """\
# Added by `planeflow slurm-profile --gpu`: registration and detection request
# gpu.count GPUs each (sbatch --gpus) and run suite2p with torch on cuda.
# The profile passes this file as --configfile; a --configfile given on the
# command line replaces it, so then set `gpu: {enabled: true}` in your own config.
gpu:
  enabled: true
"""


def default_profile_dir() -> Path:
    """``$XDG_CONFIG_HOME/snakemake/slurm``, or ``~/.config/snakemake/slurm``.

    Snakemake looks for ``--profile NAME`` in this folder on Linux.
    """
    base = os.environ.get("XDG_CONFIG_HOME", "").strip()
    # the XDG spec says relative values are to be ignored
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".config"
    return root / "snakemake" / PROFILE_NAME


def _check_value(what: str, value) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    if not value:
        return None
    if not _VALUE_RE.match(value):
        raise PlaneflowError(
            f"SLURM {what} {value!r} is not a valid name: use letters, digits and "
            "_ . : + @ - (a comma-separated list for several)")
    return value


def _set_definition(text: str, name: str, value: str) -> str:
    """Replace the ``- name = ...`` line of the profile's __definitions__ by a literal."""
    pattern = re.compile(_DEFINITION_RE.format(name=re.escape(name)), re.MULTILINE)
    new, n = pattern.subn(lambda m: f"{m.group('indent')}{name} = {json.dumps(value)}", text)
    if n != 1:
        raise PlaneflowError(
            f"profiles/slurm/config.yaml: expected one '- {name} = ...' line under "
            f"__definitions__, found {n}; the profile template was changed")
    return new


def render_config(text: str, account: str | None = None, partition: str | None = None,
                  qos: str | None = None, gpu: bool = False) -> str:
    """The profile's config.yaml ``text`` with the given values written in."""
    filled = []
    for name, value in (("account", account), ("partition", partition), ("qos", qos)):
        if value is not None:
            text = _set_definition(text, name, value)
            filled.append(f"{name}={value}")
    header = ("# Installed by `planeflow slurm-profile`"
              + (f" with {', '.join(filled)}" if filled else "")
              + "; values not set here are read from the PLANEFLOW_SLURM_* variables.\n")
    if gpu:
        text = text.rstrip("\n") + (
            "\n\n# GPU nodes (installed with --gpu): planeflow config from gpu.yaml beside "
            "this file\n"
            f"configfile: {GPU_CONFIG}\n")
    return header + text


def _write(path: Path, text: str) -> None:
    from planeflow.io.atomic import save_text

    save_text(path, text)
    os.chmod(path, 0o644)


def install_profile(account: str | None = None, partition: str | None = None,
                    qos: str | None = None, dest: str | os.PathLike | None = None,
                    force: bool = False, gpu: bool = False,
                    workflow_dir: str | os.PathLike = ".") -> Path:
    """Copy ``profiles/slurm`` to ``dest`` (default :func:`default_profile_dir`).

    ``account``, ``partition`` and ``qos`` are written into the copy (sbatch -A, -p,
    --qos for every job); those left None keep reading ``PLANEFLOW_SLURM_ACCOUNT``,
    ``PLANEFLOW_SLURM_PARTITION`` and ``PLANEFLOW_SLURM_QOS`` when Snakemake starts.
    ``gpu=True`` adds a config file that switches on planeflow's ``gpu.enabled``.
    An existing ``dest`` is refused unless ``force``; with ``force`` the profile's
    files in it are overwritten and other files there are left alone.
    ``workflow_dir``: the planeflow checkout whose ``profiles/slurm`` is copied.
    Returns the profile folder.
    """
    account = _check_value("account", account)
    partition = _check_value("partition", partition)
    qos = _check_value("QoS", qos)

    src = Path(workflow_dir) / PROFILE_SUBDIR
    if not (src / "config.yaml").is_file():
        raise PlaneflowError(
            f"profile template {src / 'config.yaml'} not found: run this command in the "
            "planeflow folder (the one with the Snakefile), or pass --workflow FOLDER")
    dest = Path(dest).expanduser() if dest is not None else default_profile_dir()
    dest = dest.absolute()
    if dest.exists() or dest.is_symlink():
        if not force:
            raise PlaneflowError(
                f"{dest} already exists; refusing to overwrite it "
                "(pass force=True / --force to replace the profile's files there)")
        if not dest.is_dir():
            raise PlaneflowError(f"{dest} exists and is not a folder; remove it first")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.iterdir()):
            if not f.is_file() or f.name.startswith("."):
                continue
            text = f.read_text()
            if f.name == "config.yaml":
                text = render_config(text, account=account, partition=partition, qos=qos, gpu=gpu)
            _write(dest / f.name, text)
        if gpu:
            _write(dest / GPU_CONFIG, _GPU_TEXT)
        elif force and (dest / GPU_CONFIG).is_file():
            # a profile re-installed without --gpu must not keep the GPU config
            (dest / GPU_CONFIG).unlink()
    except OSError as e:
        raise PlaneflowError(f"cannot write the SLURM profile to {dest}: {e}") from e
    return dest


def _cli(args) -> int:
    dest = install_profile(account=args.account, partition=args.partition, qos=args.qos,
                           dest=args.dest, force=args.force, gpu=args.gpu,
                           workflow_dir=args.workflow)
    default = dest == default_profile_dir().absolute()
    use = "--profile slurm" if default else f"--profile {dest}"
    print(f"installed the planeflow SLURM profile in {dest}")
    print(f"use it from the planeflow folder with: snakemake {use}   "
          "(the workflow's profiles/default adds per-rule threads and resources)")
    return 0


def add_cli(subparsers) -> None:
    """Register the ``slurm-profile`` subcommand on an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "slurm-profile",
        help="install the SLURM cluster profile as a global Snakemake profile",
        description=(
            "Copy planeflow's profiles/slurm to ~/.config/snakemake/slurm (honours "
            "$XDG_CONFIG_HOME) with the SLURM account, partition and QoS filled in; "
            "then run `snakemake --profile slurm`. Values not given are read from "
            "PLANEFLOW_SLURM_ACCOUNT / _PARTITION / _QOS when Snakemake starts."))
    p.add_argument("--account", help="SLURM account for every job (sbatch -A)")
    p.add_argument("--partition", help="SLURM partition for every job (sbatch -p)")
    p.add_argument("--qos", help="SLURM quality of service (sbatch --qos)")
    p.add_argument("--gpu", action="store_true",
                   help="run registration and detection on GPUs (planeflow gpu.enabled)")
    p.add_argument("--dest", help=f"profile folder (default: {default_profile_dir()})")
    p.add_argument("--force", action="store_true",
                   help="overwrite the profile's files in an existing folder")
    p.add_argument("--workflow", default=".",
                   help="the planeflow folder holding profiles/slurm (default: the current folder)")
    p.set_defaults(func=_cli)
