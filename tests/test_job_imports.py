"""Each job imports what its step uses and not more (issue 15: the fixed cost of a job).

Import checks run in fresh subprocesses (what a job's process imports depends on what
ran before in the same process). ``planeflow._s2p_import`` is checked against the
installed suite2p/cellpose/torchvision: the functions the steps call are the very
objects a full ``import suite2p`` exposes, and the assumptions that make deferring
safe still hold.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

#: steps that run no suite2p algorithm: their jobs import neither suite2p nor torch
PLAIN_STEPS = ("binary_write", "postprocess", "merge", "volume_stats", "nwb_export",
               "raw_compress", "cellpose_export", "crosstalk", "crosstalk_subtract")


def _script_imports(step: str) -> str:
    """What scripts/<step>.py runs before its job starts (same reading as the benchmark)."""
    spec = importlib.util.spec_from_file_location("job_overhead", REPO / "benchmarks" / "job_overhead.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.script_imports(REPO / "scripts" / f"{step}.py")


def _first_use(step: str) -> str:
    """Code that looks up the suite2p names a step calls (its registry record), as its work
    does first; registration's metrics (scikit-learn, >= 1500 frames) are left to later."""
    from planeflow.plan.registry import STEPS

    names = [n for n in STEPS[step].suite2p if n != "get_pc_metrics"]
    return f"\nfrom planeflow import suite2p_api as s2p\nfor n in {names!r}:\n    getattr(s2p, n)\n"


def _run(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON line last."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("step", PLAIN_STEPS)
def test_plain_steps_import_neither_suite2p_nor_torch(step):
    code = _script_imports(step) + (
        "\nimport json, sys\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('suite2p', 'torch', 'torchvision', 'cellpose'))))")
    assert _run(code) == [], f"the {step} job imports suite2p/torch/cellpose"


def test_suite2p_steps_import_only_the_parts_they_use():
    heavy = ("torch", "torchvision", "cellpose.models", "suite2p.detection.anatomical", "sklearn",
             "suite2p.io.tiff", "suite2p.io.nwb", "suite2p.run_s2p", "suite2p.registration.metrics",
             "suite2p.registration.zalign", "pynwb", "matplotlib", "scipy.stats")
    report = "\nimport json\nfrom planeflow._s2p_import import is_imported\n" \
             f"print(json.dumps({{m: is_imported(m) for m in {heavy!r}}}))"
    # the suite2p names each step calls (planeflow.suite2p_api imports them on first use)
    reg = _run(_script_imports("registration") + _first_use("registration") + report)
    det = _run(_script_imports("detection") + _first_use("detection") + report)
    assert reg["torch"] and det["torch"]  # suite2p 1.x registers and extracts on torch
    # scipy.stats would mean scipy.signal's whole __init__ ran (registration takes medfilt only)
    assert not any(v for k, v in reg.items() if k != "torch"), reg
    # detection classifies with scikit-learn's LogisticRegression (which imports scipy.stats)
    assert not any(v for k, v in det.items() if k not in ("torch", "sklearn", "scipy.stats")), det


def test_deferred_parts_are_the_objects_of_a_full_import():
    """After the steps' partial imports, ``import suite2p`` / ``import torchvision`` in the
    same process give the whole packages, with the very objects the steps call."""
    code = """
import json
import planeflow.steps.registration, planeflow.steps.detection
from planeflow import suite2p_api as s2p
from planeflow._s2p_import import is_imported, suite2p_module
# what registration and detection call (masks_to_stats: cellpose_import; metrics: scikit-learn)
ours = {n: getattr(s2p, n) for n in (*s2p.PUBLIC, *s2p.PRIVATE) if n not in ("masks_to_stats", "get_pc_metrics")}
before = {m: is_imported(m) for m in ("torchvision", "cellpose.models")}
import suite2p, torch, torchvision, cellpose.transforms, scipy.signal
import torchvision.transforms.functional as TF
same = {
    "registration_wrapper": suite2p.registration_wrapper is ours["registration_wrapper"],
    "detection_wrapper": suite2p.detection_wrapper is ours["detection_wrapper"],
    "extraction_wrapper": suite2p.extraction_wrapper is ours["extraction_wrapper"],
    "classify": suite2p.classify is ours["classify"],
    "BinaryFile": suite2p.io.BinaryFile is ours["BinaryFile"],
    "assign_overlaps": suite2p.detection.assign_overlaps is ours["assign_overlaps"],
    "oasis": suite2p.extraction.oasis is ours["oasis"],
    "preprocess": suite2p.extraction.preprocess is ours["preprocess"],
    "medfilt": scipy.signal.medfilt is suite2p_module("suite2p.registration.register").medfilt,
    "convolve2d": callable(scipy.signal.convolve2d),
    "default_settings": suite2p.default_settings is ours["default_settings"],
    "get_pc_metrics": (suite2p.registration.get_pc_metrics
                       is suite2p_module("suite2p.registration.metrics").get_pc_metrics),
    "builtin_classfile": suite2p.classification.builtin_classfile == ours["builtin_classfile"],
    "run_s2p": callable(suite2p.run_s2p),
    "torchvision_version": isinstance(torchvision.__version__, str),
    "torchvision_ops": callable(torchvision.ops.nms),
    "cellpose_F": cellpose.transforms.F is TF,
    "hflip": list(TF.hflip(torch.arange(4.0).reshape(1, 2, 2)).flatten().tolist()) == [1.0, 0.0, 3.0, 2.0],
}
print(json.dumps({"before": before, "same": same, "settings": suite2p.default_settings()["registration"]}, default=str))
"""
    out = _run(code)
    assert out["before"] == {"torchvision": False, "cellpose.models": False}
    assert all(out["same"].values()), out["same"]
    # and the settings equal those of a plain full import in a fresh process
    plain = _run("import json, suite2p\nprint(json.dumps(suite2p.default_settings()['registration'], default=str))")
    assert out["settings"] == plain


def test_a_moved_package_name_falls_back_to_the_real_init():
    """Should a scipy release move ``medfilt`` out of the module PACKAGE_NAMES names, the
    bare scipy.signal runs its real ``__init__`` for it: slower, the same function."""
    out = _run("""
import json
import planeflow._s2p_import as m
m.PACKAGE_NAMES["scipy.signal"] = {"medfilt": "scipy.signal._arraytools"}  # holds no medfilt
reg = m.suite2p_module("suite2p.registration.register")
import scipy.signal
print(json.dumps([reg.medfilt is scipy.signal.medfilt, m.is_imported("scipy.stats"),
                  m.is_bare(scipy.signal)]))
""")
    assert out == [True, True, False]


def _installed(package: str) -> Path:
    return Path(importlib.util.find_spec(package).submodule_search_locations[0])


def test_package_names_cover_what_suite2p_imports_from_its_package():
    """Every name a suite2p submodule takes from the bare ``suite2p`` package
    (``from .. import x`` / ``from suite2p import x``) has a cheap source in PACKAGE_NAMES;
    otherwise the first job would run suite2p's whole __init__ again."""
    from planeflow._s2p_import import PACKAGE_NAMES

    root = _installed("suite2p")
    names = set()
    for sub in ("registration", "detection", "extraction", "classification", "io/binary.py",
                "parameters.py", "logger.py"):
        for f in ([root / sub] if sub.endswith(".py") else sorted((root / sub).glob("*.py"))):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.ImportFrom) and (
                        (node.level == 2 and node.module is None) or (node.level == 0 and node.module == "suite2p")):
                    names.update(a.name for a in node.names)
    assert names and names <= set(PACKAGE_NAMES["suite2p"]), names


def test_cellpose_uses_torchvision_only_for_training_augmentation():
    """torchvision is deferred because cellpose.transforms uses it (F, F_t) only in
    random_rotate_and_resize, which planeflow never calls."""
    src = (_installed("cellpose") / "transforms.py").read_text()
    users = set()
    for fn in ast.walk(ast.parse(src)):
        if isinstance(fn, ast.FunctionDef):
            if any(isinstance(n, ast.Name) and n.id in ("F", "F_t") for n in ast.walk(fn)):
                users.add(fn.name)
    assert users == {"random_rotate_and_resize"}, users
    # ... which only cellpose's training code calls, and neither suite2p nor planeflow
    callers = [p for root in (_installed("cellpose"), _installed("suite2p"), REPO / "src")
               for p in root.rglob("*.py") if "random_rotate_and_resize(" in p.read_text()
               and p.name not in ("transforms.py", "train.py")]
    assert callers == [], callers


@pytest.mark.workflow
def test_jobs_log_their_fixed_cost_and_heavy_imports(finished_session):
    """The real jobs of a finished session: each log says when work started and what the
    job imported; plain steps never imported suite2p or torch, suite2p steps not
    torchvision nor cellpose's models."""
    logs = finished_session["res"] / "logs"
    seen = set()
    for log in sorted(logs.glob("*/*.log")):
        step, text = log.parent.name, log.read_text()
        if "[ERROR]" in text:  # a job another test made fail on purpose (e.g. a bad cellpose file)
            continue
        start = re.search(r"work starts ([\d.]+) s and (\d+) MB after process start", text)
        done = re.search(r"peak RSS (\d+) MB; imported (.*) \(of ", text)
        assert start and done, f"{log}:\n{text[-2000:]}"
        imported = set(done.group(2).split(", ")) - {"none"}
        if step in PLAIN_STEPS and step != "cellpose_export":  # its work writes with cellpose (torch)
            assert not imported & {"suite2p", "torch", "torchvision", "cellpose"}, (log, imported)
        elif step in ("registration", "detection"):
            assert "torch" in imported and not imported & {"torchvision", "cellpose.models", "pynwb"}, (log, imported)
        seen.add(step)
    assert {"binary_write", "registration", "detection", "postprocess", "merge"} <= seen, seen
