"""The conda environment of the rules (issue 20, item 6): its packages are pyproject's job
dependencies, and its post-deploy script installs planeflow itself into the environment it
runs in (tried here in a fresh virtual environment: no conda channel is reachable here)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import yaml

from conftest import REPO

#: dependencies the Snakemake process needs, not the jobs
HOST_ONLY = {"snakemake", "snakemake-executor-plugin-slurm"}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~ ]", spec, maxsplit=1)[0].lower()


def test_environment_holds_the_job_dependencies():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "envs" / "planeflow.yaml").read_text())["dependencies"]
    conda = [d for d in env if isinstance(d, str)]
    pip = [p for d in env if isinstance(d, dict) for p in d.get("pip", [])]
    wanted = {_name(d): d.replace(" ", "") for d in deps if _name(d) not in HOST_ONLY}
    have = {_name(d): d.replace(" ", "") for d in conda + pip}
    assert set(wanted) <= set(have), f"missing from envs/planeflow.yaml: {sorted(set(wanted) - set(have))}"
    assert {k: have[k] for k in wanted} == wanted  # the same version bounds
    assert (REPO / "envs" / "planeflow.post-deploy.sh").stat().st_mode & 0o111


def test_post_deploy_installs_planeflow_into_the_environment(tmp_path):
    """The script run as Snakemake runs it (by its path, inside the environment): afterwards that
    environment imports planeflow from this checkout."""
    import setuptools

    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = next((venv / "lib").glob("python3*/site-packages"))
    # the environment's packages (pip, setuptools, the job dependencies): this interpreter's,
    # as a conda environment made from planeflow.yaml would hold them
    (site / "deps.pth").write_text(os.path.dirname(os.path.dirname(setuptools.__file__)) + "\n")
    env = {**os.environ, "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": ""}
    env.pop("PYTHONHOME", None)
    proc = subprocess.run(["bash", str(REPO / "envs" / "planeflow.post-deploy.sh")], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where = subprocess.run([str(py), "-c", "import planeflow, sys; print(planeflow.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert where.returncode == 0, where.stderr[-2000:]
    assert where.stdout.strip().startswith(str(REPO / "src" / "planeflow"))
    assert list((venv / "lib").glob("python3*/site-packages/*planeflow*"))  # installed in this env
