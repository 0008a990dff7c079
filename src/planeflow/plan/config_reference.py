"""Render the configuration schema as a Markdown reference (docs/configuration.md).

The page is generated, not written, so that it cannot drift from the schema the
workflow validates against: ``planeflow config-reference --out docs/configuration.md``
(``make docs``) rewrites it, and ``tests/test_docs.py`` fails when it is stale.

The renderer only reads the schema dict it is given; it never looks for files.
"""
from __future__ import annotations

import re

from planeflow.plan.config import json_type

#: where the generated page lives relative to the schemas (for its links)
SCHEMA_LINK = "../src/planeflow/plan/schemas"
CONFIG_LINK = "../config"

_HEADER = """\
# Configuration reference

<!-- Generated from src/planeflow/plan/schemas/config.schema.yaml by
     `planeflow config-reference --out docs/configuration.md` (or `make docs`).
     Do not edit by hand: change the schema's descriptions and regenerate. -->

Every key of the workflow's configuration file, [`config/config.yaml`]({config}/config.yaml),
with its type, its default and the values it accepts. This page is generated from
[the configuration schema]({schemas}/config.schema.yaml), the same file the workflow checks
your configuration against before any job runs: a wrong key or value stops it with one
line naming the setting. How to set up a configuration and the sessions sheet is in
[config/README.md]({config}/README.md).

- **default** is what the workflow uses when the key is missing from your configuration.
  The shipped `config/config.yaml` writes most keys out, and sets some to other values;
  what your file says wins.
- A dotted name is a nested key in YAML: {example}
- *null* is YAML's `null` (or `~`, or an empty value).
"""

_FREE_FORM = "Its contents are not listed in this table."

#: extra text under a section's heading, for sections the table alone cannot explain
_SECTION_NOTES = {
    "suite2p": """\
This section holds suite2p's own settings, not planeflow's, so they are not listed here.
Give any suite2p 1.x setting, nested exactly as `suite2p.default_settings()` returns them
(in Python: `import suite2p; print(suite2p.default_settings())` shows all of them with
their defaults); only the keys you give change, every other one keeps suite2p's default.
What each setting does is explained in [suite2p's documentation](https://suite2p.readthedocs.io/).
Names, nesting and types are checked against
[`src/planeflow/plan/schemas/suite2p_settings.schema.yaml`]({schemas}/suite2p_settings.schema.yaml),
which `planeflow suite2p-schema` generates from suite2p's own parameter table, so a
misspelt or misplaced key stops the workflow before any job runs. The sessions sheet's
`tau` and `diameter` columns override `suite2p.tau` and `suite2p.diameter` for their
session; with `gpu.enabled`, registration and detection run on `cuda` whatever
`suite2p.torch_device` says.""",
}

_TYPE_NAMES = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "object": "mapping",
    "array": "list",
    "null": "null",
}


def config_reference(schema: dict) -> str:
    """Markdown reference of a configuration JSON schema (as loaded from YAML).

    One section per top-level key; each has a table of that key and every key
    nested under it (dotted names) with type, default, allowed values and the
    schema's ``description``. Keys whose schema has no ``properties`` (such as
    ``suite2p``) are listed without their contents.
    """
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    out = [_HEADER.format(config=CONFIG_LINK, schemas=SCHEMA_LINK, example=_example(schema))]
    out.append("Sections: " + ", ".join(f"[`{k}`](#{_anchor(k)})" for k in props) + ".\n")
    for key, sub in props.items():
        out.append(f"## `{key}`\n")
        note = _SECTION_NOTES.get(key)
        if note:
            out.append(note.format(schemas=SCHEMA_LINK) + "\n")
        out.append("| key | type | default | allowed values | description |")
        out.append("|---|---|---|---|---|")
        for name, node, req in _rows(key, sub, key in required):
            out.append("| " + " | ".join([
                _code(name), _type(node), _default(node, req), _allowed(node),
                _text(_description(node)),
            ]) + " |")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def _rows(name: str, node: dict, required: bool):
    """(dotted name, schema node, required) for ``node`` and everything nested in it."""
    yield name, node, required
    sub_required = set(node.get("required") or [])
    for key, sub in (node.get("properties") or {}).items():
        yield from _rows(f"{name}.{key}", sub, key in sub_required)


def _description(node: dict) -> str:
    desc = " ".join(str(node.get("description") or "").split())
    if node.get("type") == "object" and "properties" not in node:
        desc = f"{desc}. {_FREE_FORM}" if desc else _FREE_FORM
    return desc


def _type(node: dict) -> str:
    types = node.get("type")
    if types is None and "enum" in node:
        types = sorted({json_type(v) for v in node["enum"]}, key=list(_TYPE_NAMES).index)
    if types is None:
        return "any"
    if isinstance(types, str):
        types = [types]
    names = []
    for t in types:
        n = _TYPE_NAMES.get(t, t)
        if t == "array" and isinstance(node.get("items"), dict) and "type" in node["items"]:
            n = f"list of {_TYPE_NAMES.get(node['items']['type'], node['items']['type'])}s"
        names.append(n)
    return " or ".join(names)


def _default(node: dict, required: bool) -> str:
    if "default" in node:
        return _code(_yaml(node["default"]))
    return "required" if required else "—"


def _allowed(node: dict) -> str:
    parts = []
    if "enum" in node:
        parts.append(", ".join(_code(_yaml(v)) for v in node["enum"]))
    parts += _bounds(node)
    items = node.get("items")
    if isinstance(items, dict):
        parts += [f"each {b}" for b in _bounds(items)]
    if "pattern" in node:
        parts.append(f"matches the regular expression {_code(node['pattern'])}")
    if "minLength" in node:
        parts.append(f"at least {node['minLength']} character(s)")
    return "; ".join(parts)


def _bounds(node: dict) -> list[str]:
    lo, hi = node.get("minimum"), node.get("maximum")
    if lo is not None and hi is not None:
        out = [f"{_yaml(lo)} to {_yaml(hi)}"]
    else:
        out = [f"≥ {_yaml(lo)}"] if lo is not None else []
        out += [f"≤ {_yaml(hi)}"] if hi is not None else []
    if node.get("exclusiveMinimum") is not None:
        out.append(f"> {_yaml(node['exclusiveMinimum'])}")
    if node.get("exclusiveMaximum") is not None:
        out.append(f"< {_yaml(node['exclusiveMaximum'])}")
    return out


def _yaml(value) -> str:
    """A value as it would be written in the YAML configuration."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    return str(value)


def _code(text: str) -> str:
    return "`" + str(text).replace("|", "\\|") + "`"


def _text(text: str) -> str:
    """Plain text for a table cell, escaped only where Markdown would misread it.

    ``|`` ends a cell, ``*`` and a ``_`` at a word's edge start emphasis, ``<name``
    starts an HTML tag (and would vanish); a ``_`` inside a word is left as it is.
    """
    text = re.sub(r"([\\`*|])", r"\\\1", text)
    text = re.sub(r"<(?=[A-Za-z/!?])", r"\\<", text)
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading that is one code span."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def _example(schema: dict) -> str:
    """A nested key of the schema written out in YAML, for the page's introduction."""
    def first_deep(node, path):
        for key, sub in (node.get("properties") or {}).items():
            if "properties" in sub:
                found = first_deep(sub, path + [key])
                if found:
                    return found
            elif len(path) >= 2 and "default" in sub:
                return path + [key], sub["default"]
        return None

    found = first_deep(schema, [])
    if not found:
        return "write each part of the name on its own, indented line."
    path, default = found
    lines = [f"{'  ' * i}{k}:" for i, k in enumerate(path)]
    lines[-1] += f" {_yaml(default)}"
    body = "\n".join("  " + ln for ln in lines)
    return f"`{'.'.join(path)}` is written\n\n  ```yaml\n{body}\n  ```"
