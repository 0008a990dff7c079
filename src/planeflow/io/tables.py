"""Tab-separated tables with a header row: the one reader and writer of planeflow's TSV outputs
(``volume_stats/*.tsv``, ``crosstalk/``, ``qc/qc.tsv``, ...).

Values are written as users read them: booleans ``true``/``false``, missing and non-finite
numbers as an empty cell, floats to 4 significant digits (one decimal from 10,000 on), lists
joined by ``; ``.
"""
from __future__ import annotations

import csv
import os

from planeflow.io.atomic import save_text


def format_value(v) -> str:
    """One cell of a table."""
    import numpy as np

    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return "; ".join(format_value(x) for x in v)
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return ""
        return f"{float(v):.4g}" if abs(v) < 1e4 else f"{float(v):.1f}"
    return str(v)


def tsv_text(rows: list[dict], columns) -> str:
    """``rows`` as a table of ``columns`` (a column a row lacks is an empty cell)."""
    return "\t".join(columns) + "\n" + "".join(
        "\t".join(format_value(r.get(c)) for c in columns) + "\n" for r in rows)


def write_tsv(path: str | os.PathLike, rows: list[dict], columns) -> None:
    """Write the table atomically (temp file + rename)."""
    save_text(path, tsv_text(rows, columns))


def read_tsv(path: str | os.PathLike) -> list[dict]:
    """The rows of a table as dicts of strings, keyed by the header."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def is_true(value) -> bool:
    """A boolean cell read back (``true``, ``1``, ``yes``)."""
    return str(value).strip().lower() in ("true", "1", "yes")
