"""ScanImage header syntax: MATLAB values (``[1 2;3 4]``, ``{'a' 'b'}``, ``true``) and
``SI.key = value`` lines, parsed and formatted."""
from __future__ import annotations

import math
import re
from typing import Any

_SI_PREFIXES = ("SI.", "scanimage.SI.")

# --------------------------------------------------------------------------------------
# MATLAB value syntax
# --------------------------------------------------------------------------------------

_INT_RE = re.compile(r"[+-]?\d+\Z")
_FLOAT_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
_SPECIAL_FLOATS = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "nan": math.nan,
                   "+nan": math.nan, "-nan": math.nan}
_SHAPE_FN_RE = re.compile(r"(zeros|ones|nan|NaN|inf|Inf)\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)\Z")


class _Unparsable(Exception):
    pass


def _atom(tok: str) -> Any:
    """Python value of one unquoted MATLAB token."""
    if tok in ("true", "True"):
        return True
    if tok in ("false", "False"):
        return False
    low = tok.lower()
    if low in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[low]
    if _INT_RE.match(tok):
        return int(tok)
    if _FLOAT_RE.match(tok):
        return float(tok)
    m = _SHAPE_FN_RE.match(tok)
    if m:
        fill = {"zeros": 0.0, "ones": 1.0}.get(m.group(1), _SPECIAL_FLOATS.get(m.group(1).lower()))
        rows = int(m.group(2))
        cols = int(m.group(3)) if m.group(3) is not None else rows
        if rows == 0 or cols == 0:
            return []
        if rows == 1:
            return [fill] * cols
        return [[fill] * cols for _ in range(rows)]
    return tok  # function handles (@pkg.fn), class names, '<1x1 struct>', ...


def _tokenize(text: str) -> list[tuple[str, Any]]:
    """Tokens: ('open', '['|'{'), ('close', ']'|'}'), ('row', None), ('sep', None),
    ('str', value), ('atom', text)."""
    tokens: list[tuple[str, Any]] = []
    i, n = 0, len(text)
    depth = 0
    while i < n:
        c = text[i]
        if c in "[{":
            tokens.append(("open", c))
            depth += 1
            i += 1
        elif c in "]}":
            tokens.append(("close", c))
            depth -= 1
            i += 1
        elif c == ";" or (c == "\n" and depth > 0):
            tokens.append(("row", None))
            i += 1
        elif c == ",":
            tokens.append(("sep", None))
            i += 1
        elif c.isspace():
            i += 1
        elif c in "'\"":
            # quoted string; a doubled quote is an escaped quote
            j = i + 1
            buf = []
            while True:
                if j >= n:
                    raise _Unparsable("unterminated string")
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:
                        buf.append(c)
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            tokens.append(("str", "".join(buf)))
            i = j + 1
        elif c == "<":
            j = text.find(">", i + 1)
            j = n - 1 if j < 0 else j
            tokens.append(("atom", text[i:j + 1]))
            i = j + 1
        else:
            j = i
            paren = 0
            while j < n:
                d = text[j]
                if d == "(":
                    paren += 1
                elif d == ")":
                    paren -= 1
                elif paren <= 0 and (d.isspace() or d in "[]{};,'\""):
                    break
                j += 1
            tokens.append(("atom", text[i:j]))
            i = j
    return tokens


def _shape(rows: list[list[Any]]) -> list[Any]:
    rows = [r for r in rows if r]
    if not rows:
        return []
    if len(rows) == 1:
        return rows[0]
    return rows


def _parse_tokens(tokens: list[tuple[str, Any]], pos: int, closer: str) -> tuple[list, int]:
    """Parse the inside of a bracket starting at ``pos`` up to ``closer``."""
    rows: list[list[Any]] = [[]]
    in_cell = closer == "}"
    while pos < len(tokens):
        kind, val = tokens[pos]
        if kind == "close":
            if val != closer:
                raise _Unparsable("mismatched bracket")
            return _shape(rows), pos + 1
        if kind == "row":
            rows.append([])
            pos += 1
        elif kind == "sep":
            pos += 1
        elif kind == "open":
            inner, pos = _parse_tokens(tokens, pos + 1, "]" if val == "[" else "}")
            if not in_cell and val == "[" and isinstance(inner, list) and \
                    all(not isinstance(x, list) for x in inner):
                rows[-1].extend(inner)  # [[1 2] 3] is horizontal concatenation
            else:
                rows[-1].append(inner)
        elif kind == "str":
            rows[-1].append(val)
            pos += 1
        else:
            rows[-1].append(_atom(val))
            pos += 1
    raise _Unparsable("unterminated bracket")


def parse_matlab_value(text: str) -> Any:
    """Python value of a MATLAB value as ScanImage writes it (``mat2str``-like).

    * ``1`` → int, ``2.5`` / ``1e-05`` / ``Inf`` / ``NaN`` → float, ``true`` → bool;
    * ``'text'`` (``''`` escapes a quote) and ``"text"`` → str;
    * ``[]`` / ``{}`` / ``zeros(0,2)`` → ``[]``;
    * a one-row array or cell ``[1 2 3]`` / ``{16 16}`` → flat list ``[1, 2, 3]``;
    * several rows ``[1 2;3 4]`` → list of rows ``[[1, 2], [3, 4]]``, so a column
      vector ``[1;2]`` is ``[[1], [2]]`` (as tifffile's own parser returns it);
    * cells nest: ``{[-1 1] [-1 1]}`` → ``[[-1, 1], [-1, 1]]``;
    * anything else (``@pkg.fn`` handles, ``<1x1 struct>``) is returned as its text.

    Never raises: text that is not valid MATLAB syntax (unbalanced brackets or quotes)
    comes back stripped, as a str.
    """
    s = text.strip()
    if not s:
        return ""
    try:
        tokens = _tokenize(s)
        if len(tokens) == 1 and tokens[0][0] in ("str", "atom"):
            kind, val = tokens[0]
            return val if kind == "str" else _atom(val)
        if tokens and tokens[0][0] == "open":
            closer = "]" if tokens[0][1] == "[" else "}"
            value, pos = _parse_tokens(tokens, 1, closer)
            if pos == len(tokens):
                return value
    except _Unparsable:
        pass
    return s


def format_matlab_value(value: Any) -> str:
    """MATLAB text of a Python value, the inverse of :func:`parse_matlab_value`.

    bool → ``true``/``false``; int; float → shortest round-tripping repr (``Inf``,
    ``NaN``); str → quoted; None → ``[]``; a flat list → ``[a b c]`` (``{...}`` when it
    holds strings or lists that are not rows of a matrix); a list of equal-length rows
    → ``[a b;c d]``.
    """
    if value is None:
        return "[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Inf" if value > 0 else "-Inf"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        items = list(value)
        if not items:
            return "[]"
        numeric = (int, float)
        if all(isinstance(x, numeric) for x in items):
            return "[" + " ".join(format_matlab_value(x) for x in items) + "]"
        if all(isinstance(r, (list, tuple)) and r and all(isinstance(x, numeric) for x in r)
               for r in items) and len({len(r) for r in items}) == 1:
            return "[" + ";".join(" ".join(format_matlab_value(x) for x in r) for r in items) + "]"
        return "{" + " ".join(format_matlab_value(x) for x in items) + "}"
    try:  # numpy scalars / arrays
        return format_matlab_value(value.tolist())
    except AttributeError:
        raise TypeError(f"cannot write {type(value).__name__} as a MATLAB value") from None


_LINE_RE = re.compile(r"\s*([A-Za-z_][\w.]*)\s*=(.*)\Z")


def _norm_key(key: str) -> str | None:
    if key.startswith("scanimage.SI."):
        return key[len("scanimage."):]
    if key.startswith("SI."):
        return key
    return None


def parse_si_text(text: str) -> dict[str, Any]:
    """``{"SI.x.y": value}`` from ``SI.x.y = value`` lines (Software tag or description).

    Keys with the older ``scanimage.SI.`` prefix are returned as ``SI.``; lines that are
    not ``SI`` keys (per-frame values, blank lines) are skipped. A value that continues
    on the next line (an unclosed bracket) is joined before parsing.
    """
    out: dict[str, Any] = {}
    key = None
    raw = ""

    def flush():
        if key is not None:
            out[key] = parse_matlab_value(raw)

    for line in text.replace("\r\n", "\n").replace("\x00", "").split("\n"):
        m = _LINE_RE.match(line)
        if m and raw.count("[") <= raw.count("]") and raw.count("{") <= raw.count("}"):
            flush()
            key = _norm_key(m.group(1))
            raw = m.group(2) if key else ""
        elif key is not None:
            raw += "\n" + line
    flush()
    return out


def _parse_key_values(text: str) -> dict[str, Any]:
    """All ``key = value`` lines of a per-frame ImageDescription, keys as written."""
    out: dict[str, Any] = {}
    for line in text.replace("\x00", "").splitlines():
        m = _LINE_RE.match(line)
        if m:
            out[m.group(1)] = parse_matlab_value(m.group(2))
    return out


