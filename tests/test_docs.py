"""The documentation: generated reference up to date, links that resolve, a short README."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from planeflow.plan.config_reference import config_reference

SCHEMA = REPO / "src" / "planeflow" / "plan" / "schemas" / "config.schema.yaml"
CONFIG_DOC = REPO / "docs" / "configuration.md"
REGENERATE = "regenerate it with: make docs  (or: planeflow config-reference --out docs/configuration.md)"
MARKDOWN = [REPO / "README.md", REPO / "config" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def schema_keys(node: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, sub in (node.get("properties") or {}).items():
        name = f"{prefix}{key}"
        keys.append(name)
        keys += schema_keys(sub, f"{name}.")
    return keys


def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def test_configuration_reference_is_up_to_date():
    assert CONFIG_DOC.exists(), f"docs/configuration.md is missing; {REGENERATE}"
    assert CONFIG_DOC.read_text() == config_reference(_schema()), (
        f"docs/configuration.md does not match src/planeflow/plan/schemas/config.schema.yaml; {REGENERATE}")


def test_configuration_reference_lists_every_key_with_its_description():
    schema = _schema()
    text = config_reference(schema)
    keys = schema_keys(schema)
    assert "postprocess.dff.percentile" in keys  # the walk reaches nested keys
    missing = [k for k in keys if f"`{k}`" not in text]
    assert not missing, f"keys missing from the configuration reference: {missing}"
    undocumented = [k for k in keys if not _node(schema, k).get("description")]
    assert not undocumented, f"config schema keys without a description: {undocumented}"


def _node(schema: dict, dotted: str) -> dict:
    node = schema
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


def test_configuration_reference_renders_a_small_schema():
    schema = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "description": "a | pipe and <session>_x"},
            "opts": {
                "type": "object", "default": {}, "description": "options",
                "properties": {
                    "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                    "level": {"type": "integer", "minimum": 1, "maximum": 9, "default": 1},
                    "size": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None},
                },
            },
            "free": {"type": "object", "default": {}},
        },
    }
    text = config_reference(schema)
    assert "## `name`" in text and "## `opts`" in text and "## `free`" in text
    assert "| `name` | string | required |  | a \\| pipe and \\<session>\\_x |" in text
    assert "| `opts.mode` | string | `a` | `a`, `b` |" in text
    assert "| `opts.level` | integer | `1` | 1 to 9 |" in text
    assert "| `opts.size` | number or null | `null` | > 0 |" in text
    assert "Its contents are not listed in this table." in text
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_config_reference_cli_writes_the_same_text(tmp_path):
    from planeflow.cli import main

    out = tmp_path / "configuration.md"
    assert main(["config-reference", "--schema", str(SCHEMA), "--out", str(out)]) == 0
    assert out.read_text() == config_reference(_schema())
    assert main(["config-reference", "--schema", str(tmp_path / "nope.yaml")]) == 1


# ---- links -----------------------------------------------------------------------------
_FENCE = re.compile(r"^ *```.*?^ *```", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _links(md: Path) -> list[str]:
    text = _CODE.sub("", _FENCE.sub("", md.read_text()))
    return _LINK.findall(text)


def _is_external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I))


def _anchors(md: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    text = _FENCE.sub("", md.read_text())
    seen: dict[str, int] = {}
    out = set()
    for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("md", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_to_existing_files(md):
    assert md.exists()
    broken = []
    for target in _links(md):
        if _is_external(target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if not (md.parent / path).exists():
            broken.append(target)
    assert not broken, f"{md.relative_to(REPO)}: links to files that do not exist: {broken}"


@pytest.mark.parametrize("md", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_links_to_headings_exist(md):
    broken = []
    for target in _links(md):
        if _is_external(target) or "#" not in target:
            continue
        path, anchor = target.split("#", 1)
        doc = (md.parent / path) if path else md
        if doc.suffix == ".md" and doc.exists() and anchor not in _anchors(doc):
            broken.append(target)
    assert not broken, f"{md.relative_to(REPO)}: links to headings that do not exist: {broken}"


def test_readme_is_short():
    n = len((REPO / "README.md").read_text().splitlines())
    assert n <= 220, f"README.md has {n} lines; keep it a user's guide of about 200 and move reference to docs/"


def test_readme_keeps_the_setup_commands():
    text = (REPO / "README.md").read_text()
    assert "make demo" in text and "make test" in text


#: repository folders whose paths the docs name; `plan/x.py`-style paths are inside src/planeflow
_REPO_DIRS = ("src", "workflow", "scripts", "tests", "benchmarks", "profiles", "config", "docs", "envs", ".ci")
_PKG_DIRS = ("plan", "steps", "core", "io", "cli", "synth")


def _resolves(dotted: str) -> bool:
    """Whether ``planeflow.a.b`` names a module, or an attribute of one, that exists."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_every_name_and_path_the_docs_give_exists():
    """Each ``planeflow.*`` name and repository path written in README, config/README.md and
    docs/ exists (names may end with ``()``; paths with <placeholders> or wildcards are skipped)."""
    bad = []
    for md in MARKDOWN:
        text = md.read_text()
        for name in sorted(set(re.findall(r"`(planeflow(?:\.\w+)+)(?:\(\))?`", text))):
            if not _resolves(name):
                bad.append(f"{md.relative_to(REPO)}: {name}")
        for span in sorted(set(re.findall(r"`([^`\s]+)`", text))):
            path = span.rstrip("/").split(":")[0]
            if any(c in path for c in "<>{}*$") or "/" not in path:
                continue
            top = path.split("/")[0]
            if top in _REPO_DIRS:
                ok = (REPO / path).exists()
            elif top in _PKG_DIRS and path.endswith(".py"):
                ok = (REPO / "src" / "planeflow" / path).exists()
            else:
                continue
            if not ok:
                bad.append(f"{md.relative_to(REPO)}: {path}")
    assert not bad, "the docs name what does not exist:\n" + "\n".join(bad)


def test_command_line_help_is_plain_text(capsys):
    from planeflow.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "``" not in text and "snakemake" in text and "status" in text
