"""planeflow.cli.slurm_profile: installing profiles/slurm as a global Snakemake profile.

Unit tests only: temporary folders, no SLURM, no Snakemake run.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from planeflow import PlaneflowError
from planeflow.cli import slurm_profile as sp

REPO = Path(__file__).resolve().parents[1]
PROFILE_SRC = REPO / "profiles" / "slurm"

REPO = Path(__file__).resolve().parents[1]
ENV_VARS = ("PLANEFLOW_SLURM_ACCOUNT", "PLANEFLOW_SLURM_PARTITION", "PLANEFLOW_SLURM_QOS")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    # never touch the real ~/.config
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def render(profile_dir: Path) -> dict:
    """The profile as Snakemake reads it: YAML, then YTE templating."""
    yte = pytest.importorskip("yte")
    with open(profile_dir / "config.yaml") as fh:
        return yte.process_yaml(fh, require_use_yte=True)


def test_template_is_valid_and_complete():
    text = (PROFILE_SRC / "config.yaml").read_text()
    assert isinstance(yaml.safe_load(text), dict)
    cfg = render(PROFILE_SRC)
    assert cfg["executor"] == "slurm"
    assert cfg["slurm-status-command"] == "squeue"
    assert int(cfg["slurm-init-seconds-before-status-checks"]) > 0
    assert int(cfg["jobs"]) > 0 and int(cfg["retries"]) >= 1
    assert cfg["rerun-incomplete"] is True and cfg["keep-going"] is True
    # nothing site-specific without the environment variables
    assert "slurm_account" not in cfg["default-resources"]
    assert "slurm_partition" not in cfg["default-resources"]
    assert "slurm-qos" not in cfg
    # per-rule settings belong to the workflow profile, which would replace them whole
    assert "set-resources" not in cfg and "set-threads" not in cfg
    # what each job asks for comes from the step registry: tests/test_registry.py


def test_template_reads_environment(monkeypatch):
    monkeypatch.setenv("PLANEFLOW_SLURM_ACCOUNT", "lab_acct")
    monkeypatch.setenv("PLANEFLOW_SLURM_PARTITION", "gpu,cpu")
    monkeypatch.setenv("PLANEFLOW_SLURM_QOS", "long")
    cfg = render(PROFILE_SRC)
    assert cfg["default-resources"]["slurm_account"] == "lab_acct"
    assert cfg["default-resources"]["slurm_partition"] == "gpu,cpu"
    assert cfg["slurm-qos"] == "long"


def test_install_fills_values(tmp_path):
    dest = tmp_path / "profiles" / "slurm"
    out = sp.install_profile(workflow_dir=REPO, account="acct1", partition="short", qos="normal", dest=dest)
    assert out == dest.absolute()
    text = (dest / "config.yaml").read_text()
    assert isinstance(yaml.safe_load(text), dict)
    cfg = render(dest)
    assert cfg["default-resources"]["slurm_account"] == "acct1"
    assert cfg["default-resources"]["slurm_partition"] == "short"
    assert cfg["slurm-qos"] == "normal"
    assert cfg["executor"] == "slurm"
    assert "configfile" not in cfg and not (dest / "gpu.yaml").exists()
    # the other files of the template come along
    for f in PROFILE_SRC.iterdir():
        if f.is_file() and not f.name.startswith("."):
            assert (dest / f.name).is_file()


def test_installed_values_win_over_environment(tmp_path, monkeypatch):
    dest = sp.install_profile(workflow_dir=REPO, account="fixed", dest=tmp_path / "p")
    monkeypatch.setenv("PLANEFLOW_SLURM_ACCOUNT", "from_env")
    monkeypatch.setenv("PLANEFLOW_SLURM_PARTITION", "part_env")
    cfg = render(dest)
    assert cfg["default-resources"]["slurm_account"] == "fixed"
    # values not given keep reading the environment
    assert cfg["default-resources"]["slurm_partition"] == "part_env"
    assert "slurm-qos" not in cfg


def test_numeric_account_stays_a_string(tmp_path):
    dest = sp.install_profile(workflow_dir=REPO, account="123456", dest=tmp_path / "p")
    assert render(dest)["default-resources"]["slurm_account"] == "123456"


def test_default_dest_honours_xdg(tmp_path):
    assert sp.default_profile_dir() == tmp_path / "xdg" / "snakemake" / "slurm"
    out = sp.install_profile(workflow_dir=REPO, partition="debug")
    assert out == tmp_path / "xdg" / "snakemake" / "slurm"
    assert render(out)["default-resources"]["slurm_partition"] == "debug"


def test_default_dest_without_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert sp.default_profile_dir() == tmp_path / "home" / ".config" / "snakemake" / "slurm"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")  # ignored, as the spec says
    assert sp.default_profile_dir() == tmp_path / "home" / ".config" / "snakemake" / "slurm"


def test_refuses_existing_dest(tmp_path):
    dest = sp.install_profile(workflow_dir=REPO, account="first", dest=tmp_path / "p")
    before = (dest / "config.yaml").read_text()
    with pytest.raises(PlaneflowError, match="already exists"):
        sp.install_profile(workflow_dir=REPO, account="second", dest=dest)
    assert (dest / "config.yaml").read_text() == before
    # an empty existing folder is refused too
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlaneflowError, match="already exists"):
        sp.install_profile(workflow_dir=REPO, dest=tmp_path / "empty")


def test_force_overwrites(tmp_path):
    dest = sp.install_profile(workflow_dir=REPO, account="first", qos="q1", dest=tmp_path / "p", gpu=True)
    assert (dest / "gpu.yaml").is_file()
    (dest / "notes.txt").write_text("mine")
    (dest / "config.yaml").write_text("edited: true\n")
    out = sp.install_profile(workflow_dir=REPO, account="second", dest=dest, force=True)
    assert out == dest
    cfg = render(dest)
    assert cfg["default-resources"]["slurm_account"] == "second"
    assert "slurm-qos" not in cfg
    # files the profile does not own are left alone; the GPU config goes with --gpu
    assert (dest / "notes.txt").read_text() == "mine"
    assert not (dest / "gpu.yaml").exists()


def test_force_refuses_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(PlaneflowError, match="not a folder"):
        sp.install_profile(workflow_dir=REPO, dest=f, force=True)
    assert f.read_text() == "x"


def test_gpu_profile(tmp_path):
    dest = sp.install_profile(workflow_dir=REPO, dest=tmp_path / "p", gpu=True)
    cfg = render(dest)
    assert cfg["configfile"] == "gpu.yaml"
    assert yaml.safe_load((dest / "gpu.yaml").read_text()) == {"gpu": {"enabled": True}}


@pytest.mark.parametrize("bad", ["a b", "acct;rm -rf /", "x\ny", "'q'", "a:b c", "#x"])
def test_rejects_bad_values(tmp_path, bad):
    with pytest.raises(PlaneflowError, match="not a valid name"):
        sp.install_profile(workflow_dir=REPO, account=bad, dest=tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_blank_values_are_unset(tmp_path):
    dest = sp.install_profile(workflow_dir=REPO, account="  ", partition="", dest=tmp_path / "p")
    cfg = render(dest)
    assert "slurm_account" not in cfg["default-resources"]
    assert "slurm_partition" not in cfg["default-resources"]


def test_submission_rate_is_a_key_snakemake_9_honours():
    """Snakemake 9 ignores `max-jobs-per-second` (its `max-jobs-per-timespan` default, 100/1s,
    wins; on the local SLURM 90 ready jobs went out within a second): the profile sets the
    newer key, 5 submissions per second (docs/slurm-capacity.md)."""
    types = pytest.importorskip("snakemake.settings.types")
    cfg = render(PROFILE_SRC)
    assert "max-jobs-per-second" not in cfg
    rate = types.MaxJobsPerTimespan.parse_choice(cfg["max-jobs-per-timespan"])
    assert (rate.max_jobs, rate.timespan) == (5, 1)


def test_snakemake_parses_installed_profile(tmp_path):
    """Snakemake's own profile reader turns the installed file into CLI arguments."""
    profiles = pytest.importorskip("snakemake.profiles")
    dest = sp.install_profile(workflow_dir=REPO, account="acct1", partition="short", qos="normal",
                              dest=tmp_path / "p")
    with open(dest / "config.yaml") as fh:
        args = profiles.ProfileConfigFileParser().parse(fh)
    assert args["executor"] == "slurm"
    assert args["slurm-qos"] == "normal"
    assert "slurm_account=acct1" in args["default-resources"]
    assert "slurm_partition=short" in args["default-resources"]


def test_cli(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="planeflow")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sp.add_cli(sub)
    dest = tmp_path / "cli"
    args = parser.parse_args(["slurm-profile", "--account", "a1", "--partition", "p1",
                              "--qos", "q1", "--dest", str(dest)])
    assert args.func(args) == 0
    assert str(dest) in capsys.readouterr().out
    cfg = render(dest)
    assert cfg["default-resources"]["slurm_account"] == "a1"
    assert cfg["slurm-qos"] == "q1"
    # a second run without --force is refused; with --force it replaces the values
    args = parser.parse_args(["slurm-profile", "--dest", str(dest), "--account", "a2"])
    with pytest.raises(PlaneflowError):
        args.func(args)
    args = parser.parse_args(["slurm-profile", "--dest", str(dest), "--account", "a2", "--force"])
    assert args.func(args) == 0
    assert render(dest)["default-resources"]["slurm_account"] == "a2"
