"""planeflow.plan.layout is the one owner of the results layout: the files a finished
session holds are exactly the ones it names, and the package's imports point downwards."""
from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import REPO


def test_layout_patterns_and_paths():
    from planeflow.plan.layout import Layout

    lay = Layout("res/")
    assert lay.part_file("registration", "bin", "{session}", "{plane}", "{part}") == \
        "res/{session}/registration/plane{plane}/part{part}/data.bin"
    assert lay.plane_dir("s", 3) == "res/s/suite2p/plane3"
    assert lay.log("detection", "s", 1, 0) == "res/s/logs/detection/plane1_part0.log"
    assert lay.log("merge", "s", 1) == "res/s/logs/merge/plane1.log"
    assert lay.log("volume_stats", "s") == "res/s/logs/volume_stats/session.log"
    assert lay.archive("s", "tar.gz") == "res/s/raw_compress/s_raw.tar.gz"
    assert lay.cellpose_export("seg", "s", 2) == "res/s/cellpose_export/plane2/plane2_seg.npy"


@pytest.mark.workflow
def test_finished_session_holds_exactly_what_the_layout_names(finished_session):
    from planeflow.plan.config import deep_merge, schema_defaults, load_schema
    from planeflow.plan.layout import Layout

    config = deep_merge(schema_defaults(load_schema("config.schema.yaml")),
                        yaml.safe_load(Path(finished_session["cfg"]).read_text()))
    res = Path(finished_session["res"])
    meta = json.loads((res / "metadata.json").read_text())
    lay = Layout(config["results_dir"])
    named = [Path(p) for p in lay.session_outputs(meta, config)]
    missing = [str(p) for p in named if not p.exists()]
    assert not missing, f"named by the layout but not written: {missing}"
    # other tests may have added the optional exports to this shared session
    named = [Path(p) for p in lay.session_outputs(meta, config, optional=True)]
    folders = [p for p in named if p.is_dir()]
    on_disk = [Path(d) / f for d, _, files in os.walk(res) for f in files]
    stray = [str(f) for f in on_disk
             if f not in named and not any(d in f.parents for d in folders)]
    assert not stray, f"written but not named by planeflow.plan.layout: {stray}"
    assert len(on_disk) > 60


#: the package's layers, top to bottom: a module may import only from its own layer or below
LAYERS = ["cli", "synth", "steps", "plan", "core", "io", "base"]


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "base"


def test_imports_point_downwards_and_never_into_the_repository():
    src = REPO / "src" / "planeflow"
    bad = []
    for f in src.rglob("*.py"):
        mod = ".".join(f.relative_to(src.parent).with_suffix("").parts).removesuffix(".__init__")
        here = LAYERS.index(_layer(mod))
        text = f.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("planeflow"):
                targets = [node.module] if node.module != "planeflow" else [f"planeflow.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("planeflow")]
            else:
                continue
            for t in targets:
                if LAYERS.index(_layer(t)) < here:
                    bad.append(f"{mod} imports {t}")
        assert "parents[" not in text, f"{mod} computes a path into the repository tree"
    assert not bad, "imports pointing upwards: " + "; ".join(bad)
