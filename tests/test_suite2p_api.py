"""suite2p through its front door (issue 20, item 2): every suite2p name planeflow calls lives
in planeflow.suite2p_api; the public ones are the objects suite2p's packages export, the private
ones are checked here against the installed suite2p (they exist, with the parameters planeflow
passes); another suite2p version gives one line and the public path."""
from __future__ import annotations

import ast
import inspect
import json
import logging
import os
import subprocess
import sys

import pytest

from conftest import REPO
from planeflow import PlaneflowError
from planeflow import suite2p_api as s2p

#: how planeflow calls each private function: (positional arguments, keyword arguments)
PRIVATE_CALLS = {
    "compute_reference": (1, ["settings", "device"]),
    "compute_filters_and_norm": (1, ["norm_frames", "spatial_smooth", "spatial_taper", "block_size",
                                     "subpixel", "device"]),
    "shift_frames": (6, ["device"]),
    "compute_crop": (0, ["xoff", "yoff", "corrXY", "th_badframes", "badframes", "maxregshift", "Ly", "Lx"]),
    "registration_outputs_to_dict": (13, []),
    "rigid_phasecorr": (6, ["return_cc"]),
    "nonrigid_phasecorr": (7, []),
    "bidiphase_compute": (1, []),
    "bidiphase_shift": (2, []),
    "masks_to_stats": (2, []),
}


def test_public_names_are_what_suite2p_exports():
    """In a fresh interpreter: the package's own export (a full ``import suite2p``) and
    planeflow's name are one object."""
    code = ("import importlib, json\nfrom planeflow import suite2p_api as s2p\n"
            "ours = {n: getattr(s2p, n) for n in s2p.PUBLIC}\nimport suite2p\n"
            "print(json.dumps({n: getattr(importlib.import_module(pkg), n) is ours[n] "
            "for n, (_mod, pkg) in s2p.PUBLIC.items()}))")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    same = json.loads(proc.stdout.strip().splitlines()[-1])
    assert same == dict.fromkeys(s2p.PUBLIC, True)


def test_private_names_hold_on_the_installed_suite2p():
    assert s2p.installed_version() == s2p.TESTED_VERSION, "re-check PRIVATE against this suite2p, then bump"
    assert s2p.private_ok() and s2p.version_warning() is None
    assert set(PRIVATE_CALLS) | {"SETTINGS"} == set(s2p.PRIVATE)
    for name, (npos, keywords) in PRIVATE_CALLS.items():
        # the call binds: no parameter missing, none unknown
        inspect.signature(getattr(s2p, name)).bind(*[None] * npos, **dict.fromkeys(keywords))
    assert "registration" in s2p.SETTINGS and "description" in s2p.SETTINGS["tau"]


def test_only_suite2p_api_reaches_into_suite2p():
    """No other module of the package imports suite2p or asks _s2p_import for its modules."""
    offenders = []
    for path in (REPO / "src" / "planeflow").rglob("*.py"):
        if path.name in ("suite2p_api.py", "_s2p_import.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + ([f"{node.module}.{a.name}" for a in node.names])
            elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == \
                    "suite2p_module":
                names = ["suite2p_module()"]
            if any(n == "suite2p" or n.startswith("suite2p.") or n.endswith("suite2p_module") or
                   n == "suite2p_module()" for n in names):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, offenders


@pytest.fixture
def other_suite2p(monkeypatch):
    """As if suite2p 9.9.9 were installed."""
    monkeypatch.setattr(s2p, "installed_version", lambda: "9.9.9")
    for name in s2p.PRIVATE:
        monkeypatch.delitem(s2p.__dict__, name, raising=False)


def test_another_version_says_so_and_takes_the_public_path(other_suite2p):
    from planeflow.plan import registry

    msg = s2p.version_warning()
    assert "9.9.9" in msg and s2p.TESTED_VERSION in msg and "\n" not in msg
    with pytest.raises(PlaneflowError, match="9.9.9"):
        s2p.compute_crop  # noqa: B018
    meta = {"session_id": "s", "planes": [0, 1], "stack_type": "lbm", "channels_as_planes": True}
    config = {"registration": {"shared_motion": "on"}}
    assert not registry.enabled("shared_motion", meta, config)
    assert s2p.registration_wrapper is not None  # the public names stay


def test_registration_with_shared_motion_falls_back_to_suite2p_alone(other_suite2p, raw_plane, tmp_path,
                                                                     caplog):
    from planeflow.steps.registration import registration

    caplog.set_level(logging.WARNING, "planeflow")
    out = registration(str(raw_plane / "ops.npy"), str(raw_plane / "data_raw.bin"), str(tmp_path / "data.bin"),
                       str(tmp_path / "ops.npy"), {"torch_device": "cpu", "registration": {"block_size": [64, 64]}},
                       shared=str(tmp_path / "never_read.npz"), rigid=str(tmp_path / "never_read_either.npz"),
                       plane=0, part=0)
    assert "shared_motion" not in out and "plane_failure" not in out
    assert "9.9.9" in caplog.text
    assert abs(float(out["yoff"].mean()) - (-1.0)) < 1.5  # its own motion was measured
