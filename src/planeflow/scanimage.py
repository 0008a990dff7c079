"""ScanImage TIFF headers: read, interpret and (for synthetic data) write them.

ScanImage (2016 and later, "SI 5.x" basic included) stores three kinds of metadata in
its TIFF files:

* the frame-invariant header, ``SI.*`` lines of ``key = value`` in MATLAB syntax, in
  the TIFF Software tag (305) of every page (older releases: ``scanimage.SI.*`` lines
  in the ImageDescription tag);
* the multi-ROI (mROI) definition, JSON ``{"RoiGroups": {...}}`` in the Artist tag (315);
* per-frame values (``frameNumbers``, ``frameTimestamps_sec``, ...) in each page's
  ImageDescription tag.

tifffile parses the first two through ``TiffFile.scanimage_metadata``, but only for
ScanImage's BigTIFF layout with its private header block at byte 16; for classic TIFF
files, files rewritten by other tools and files written with tifffile it returns an
empty dict. :func:`read_header` therefore falls back to parsing tags 305/315 itself.

Public API
----------
:func:`read_header`        the raw header of one file (first page's tags only)
:func:`acquisition_info`   what the header says about the acquisition (fs, planes, ROIs,
                           pixel size, ...)
:func:`parse_matlab_value` one MATLAB value (``[1 2;3 4]``, ``{'a' 'b'}``, ``true``, ...)
:func:`parse_si_text`      all ``SI.*`` lines of a Software tag / description
:func:`format_matlab_value`, :func:`make_tags`, :func:`make_frame_description`,
:func:`write_scanimage_tiff`   realistic tags for synthetic ScanImage-like files
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from planeflow import PlaneflowError

__all__ = [
    "read_header",
    "acquisition_info",
    "parse_matlab_value",
    "parse_si_text",
    "format_matlab_value",
    "make_tags",
    "make_frame_description",
    "write_scanimage_tiff",
]

#: at most this many pages' ImageDescription are read to count pages per frame number
#: (LBM recordings interleave up to ~30 planes, so 64 covers them with room to spare).
MAX_DESCRIPTION_PAGES = 64

#: ``auto`` LBM rule: more saved channels than this means the channels are z-planes
#: (two-photon rigs record at most two colour channels in practice; LBM saves one
#: "channel" per light bead plane, typically 14 to 30).
LBM_MIN_CHANNELS = 3

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


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------

def _tag_text(page, code: int) -> str | None:
    tag = page.tags.get(code)
    if tag is None:
        return None
    val = tag.value
    if isinstance(val, bytes):
        val = val.decode("utf-8", errors="replace")
    if not isinstance(val, str):
        return None
    return val.replace("\x00", "")


def _parse_artist(text: str | None, path: str, warnings: list[str]) -> dict | None:
    if not text or "RoiGroups" not in text:
        return None
    start, end = text.find("{"), text.rfind("}")
    try:
        data = json.loads(text[start:end + 1])
    except ValueError as e:
        warnings.append(f"'{path}': the Artist tag (ScanImage ROI groups) is not valid JSON "
                        f"({e}); multi-ROI geometry is unavailable.")
        return None
    rg = data.get("RoiGroups") if isinstance(data, dict) else None
    return rg if isinstance(rg, dict) else None


def _first_frame_number(desc: str | None) -> Any:
    if not desc:
        return None
    m = re.search(r"^\s*frameNumbers\s*=\s*(\S+)", desc, re.M)
    return m.group(1) if m else None


def _pages_past_virtual_frames(tif, n_pages: int) -> int:
    """IFDs after the last page tifffile knows of (classic TIFF only; normally 0).

    For classic TIFF files with a ScanImage Software tag tifffile computes the pages
    ("virtual frames") from the file size instead of walking the IFD chain. That is
    right for ScanImage's layout but misses the last page of files whose IFDs precede
    their data (tifffile's own writer). Follow the chain from the last known IFD.
    """
    import struct

    try:
        last = tif.pages[n_pages - 1]
        off = last.offset
        if not off or hasattr(last, "description"):
            return 0  # a real, fully parsed page list: nothing to check
        fh = tif.filehandle
        bo = tif.byteorder
        size = fh.size
        extra = 0
        seen = set()
        while off and off < size and off not in seen and extra < 1_000_000:
            seen.add(off)
            fh.seek(off)
            n, first_tag = struct.unpack(bo + "HH", fh.read(4))
            if not 0 < n < 4096 or first_tag not in (254, 255, 256):
                return 0  # not an IFD: the offsets were not what they seemed
            fh.seek(off + 2 + 12 * n)
            (off,) = struct.unpack(bo + "I", fh.read(4))
            if off:
                extra += 1
        return extra
    except Exception:  # noqa: BLE001 - a best-effort check only
        return 0


def read_header(path, *, count_pages: bool = True,
                max_description_pages: int = MAX_DESCRIPTION_PAGES) -> dict:
    """The ScanImage header of one TIFF file, from its first pages' tags only.

    Returns a dict:

    ``SI``            ``{"SI.x.y": value}`` (``scanimage.SI.`` keys renamed ``SI.``);
                      ``{}`` when the file has no ScanImage header
    ``RoiGroups``     the ROI-group dict (``{"imagingRoiGroup": ...}``) or None
    ``source``        ``"tifffile"`` (tifffile's ``scanimage_metadata`` parsed it),
                      ``"tags"`` (parsed here from tags 305/315, or the description of
                      older versions) or None (no ScanImage header)
    ``n_pages``       ``len(tif.pages)``, or None with ``count_pages=False``: counting
                      walks every IFD of the file, which is slow for huge files on
                      network storage; callers that count pages themselves pass False
    ``page_shape``    (Ly, Lx) of the first page; ``dtype`` its dtype as str
    ``pages_per_frame`` how many leading pages share the first page's
                      ``frameNumbers`` in their ImageDescription (ScanImage writes one
                      page per saved channel per frame, all with the same frame number),
                      None when unknown (no per-frame data, or more than
                      ``max_description_pages`` pages share it)
    ``frame_data``    the first page's per-frame values (``frameNumbers``, ``epoch``...)
    ``path``, ``warnings`` (list of str)

    Raises PlaneflowError when the file is missing, unreadable or not a TIFF.
    """
    import tifffile

    path = str(path)
    warnings: list[str] = []
    try:
        tif = tifffile.TiffFile(path)
    except FileNotFoundError as e:
        raise PlaneflowError(f"'{path}' does not exist. Check the session's data_path.") from e
    except PermissionError as e:
        raise PlaneflowError(f"cannot read '{path}': permission denied. Fix its permissions.") from e
    except IsADirectoryError as e:
        raise PlaneflowError(f"'{path}' is a directory, not a TIFF file. Point data_path at "
                             "the TIFF files (or a glob of them).") from e
    except Exception as e:  # TiffFileError, ValueError, struct.error, OSError, ...
        raise PlaneflowError(
            f"'{path}' is not a readable TIFF ({type(e).__name__}: {e}). Remove it from the "
            "session's data_path or replace it with a complete copy."
        ) from e

    with tif:
        try:
            page0 = tif.pages.first
            page_shape = (int(page0.imagelength), int(page0.imagewidth))
            dtype = str(page0.dtype) if page0.dtype is not None else None
            n_pages = len(tif.pages) if count_pages else None
            if n_pages and n_pages > 1 and not tif.is_bigtiff:
                extra = _pages_past_virtual_frames(tif, n_pages)
                if extra:
                    warnings.append(
                        f"'{path}': tifffile counts {n_pages} pages (virtual frames from the "
                        f"file size) but the IFD chain holds {n_pages + extra}; the file was "
                        "not laid out by ScanImage. Using the IFD count; readers built on "
                        "tifffile miss the last page(s): rewrite the file as BigTIFF.")
                    n_pages += extra
        except Exception as e:
            raise PlaneflowError(
                f"'{path}': cannot read its TIFF page structure ({type(e).__name__}: {e}). "
                "The file is probably truncated; replace it with a complete copy."
            ) from e

        si: dict[str, Any] = {}
        roi_groups = None
        source = None

        # 1) tifffile's parser (ScanImage BigTIFF v3/v4 with the private header block)
        try:
            meta = tif.scanimage_metadata
        except Exception:  # noqa: BLE001 - fall back to the tags
            meta = None
        if meta and isinstance(meta.get("FrameData"), dict) and meta["FrameData"]:
            for k, v in meta["FrameData"].items():
                nk = _norm_key(k)
                if nk:
                    si[nk] = v
            rg = meta.get("RoiGroups")
            roi_groups = rg if isinstance(rg, dict) and rg else None
            if si:
                source = "tifffile"

        # 2) the tags of the first page
        if not si:
            software = _tag_text(page0, 305) or ""
            si = parse_si_text(software)
            if not si:  # ScanImage 2015/2016a: header lines in the ImageDescription
                si = parse_si_text(page0.description or "")
            if si:
                source = "tags"
        if roi_groups is None:
            roi_groups = _parse_artist(_tag_text(page0, 315), path, warnings)
            if roi_groups is not None and source is None:
                source = "tags"

        # 3) per-frame data: pages per frame number
        frame_data: dict[str, Any] = {}
        pages_per_frame = None
        desc0 = page0.description or ""
        fn0 = _first_frame_number(desc0)
        if fn0 is not None:
            frame_data = {k: v for k, v in _parse_key_values(desc0).items()
                          if _norm_key(k) is None}
            count = 1
            i = 1
            while i < max_description_pages + 1:
                try:
                    page = tif.pages[i]
                except IndexError:
                    pages_per_frame = count  # the file ended inside the first frame
                    break
                if not hasattr(page, "description"):
                    # tifffile gives classic-TIFF ScanImage files "virtual frames"
                    # (TiffFrame, no tags) computed from equidistant page offsets
                    try:
                        page = page.aspage()
                    except Exception:  # noqa: BLE001 - frame without a readable IFD
                        break
                fn = _first_frame_number(page.description or "")
                if fn != fn0:
                    pages_per_frame = count
                    break
                count += 1
                i += 1

    return {
        "SI": si,
        "RoiGroups": roi_groups,
        "source": source,
        "n_pages": n_pages,
        "page_shape": page_shape,
        "dtype": dtype,
        "pages_per_frame": pages_per_frame,
        "frame_data": frame_data,
        "path": path,
        "warnings": warnings,
    }


# --------------------------------------------------------------------------------------
# Interpretation
# --------------------------------------------------------------------------------------

def _flat(v: Any) -> list:
    if isinstance(v, (list, tuple)):
        out = []
        for x in v:
            out.extend(_flat(x))
        return out
    return [v]


def _num(v: Any) -> float | None:
    """A finite number, or None (bools, strings, empty arrays, NaN, Inf are not)."""
    if isinstance(v, list) and len(_flat(v)) == 1:
        v = _flat(v)[0]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _int(v: Any) -> int | None:
    x = _num(v)
    return int(round(x)) if x is not None else None


def _bool(v: Any) -> bool | None:
    if isinstance(v, list) and len(_flat(v)) == 1:
        v = _flat(v)[0]
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return None


def _channels(v: Any) -> list[int] | None:
    if v is None:
        return None
    vals = [_int(x) for x in _flat(v)]
    vals = [x for x in vals if x is not None]
    return vals or None


def _pair(v: Any) -> list[float] | None:
    vals = [_num(x) for x in _flat(v)] if v is not None else []
    if len(vals) >= 2 and vals[0] is not None and vals[1] is not None:
        return [vals[0], vals[1]]
    return None


def _extent(corners: Any) -> list[float] | None:
    """[width, height] of a 4x2 corner-point array ([[x y];...])."""
    if not isinstance(corners, list) or len(corners) < 2:
        return None
    pts = [_pair(c) for c in corners]
    if any(p is None for p in pts):
        return None
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return [max(xs) - min(xs), max(ys) - min(ys)]


def _as_list(v: Any) -> list:
    if v is None:
        return []
    if isinstance(v, list):
        return v
    if isinstance(v, dict):
        if "_ArrayType_" in v:  # MATLAB's encoding of an empty array
            return []
        return [v]
    return []


def _imaging_rois(roi_groups: dict | None) -> list[dict]:
    """Enabled imaging ROIs: name, pixel_resolution, size_deg, center_deg (first scanfield)."""
    if not isinstance(roi_groups, dict):
        return []
    group = roi_groups.get("imagingRoiGroup")
    if not isinstance(group, dict):
        return []
    out = []
    for i, roi in enumerate(_as_list(group.get("rois")), start=1):
        if not isinstance(roi, dict) or roi.get("enable", 1) in (0, False):
            continue
        fields = [f for f in _as_list(roi.get("scanfields")) if isinstance(f, dict)]
        if not fields:
            continue
        sf = fields[0]  # one scanfield per ROI unless it changes with z; z=0 is first
        px = _pair(sf.get("pixelResolutionXY"))
        out.append({
            "name": str(roi.get("name") or f"ROI {i}"),
            "pixel_resolution": [int(px[0]), int(px[1])] if px else None,
            "size_deg": _pair(sf.get("sizeXY")),
            "center_deg": _pair(sf.get("centerXY")),
        })
    return out


def acquisition_info(header: dict, *, channels_are_planes: bool | None = None) -> dict:
    """Interpret a :func:`read_header` result. Values the header lacks are None.

    Returned keys and how they are derived (``SI.`` prefix left out):

    ``fs``            frame rate: ``hRoiManager.scanFrameRate``, else
                      ``1/hRoiManager.scanFramePeriod``. For LBM one frame holds every
                      plane, so this is also the volume (= per-plane) rate.
    ``volume_rate``   ``hRoiManager.scanVolumeRate``
    ``fs_per_plane``  the rate suite2p needs per plane: ``volume_rate`` for piezo
                      stacks (else ``fs / pages-per-volume-in-frames``), ``fs`` otherwise
    ``stack_type``    ``"lbm"``: saved channels are z-planes (``channels_are_planes=True``,
                      or, when None, more than two saved channels); ``"piezo"``: a z
                      stack with more than one slice (``hStackManager.enable`` or
                      ``hFastZ.enable`` true, or neither flag present and
                      ``numSlices > 1``); else ``"single_plane"``
    ``nplanes``       LBM: saved channels; piezo: ``actualNumSlices`` (else
                      ``numSlices``); single plane: 1
    ``nchannels``     colour channels per plane: LBM 1, else the saved channels
    ``saved_channels`` / ``active_channels``  ``hChannels.channelSave`` /
                      ``channelsActive`` as lists of channel numbers
    ``pages_per_frame`` interleaved pages per frame number (see ``channel_source``)
    ``channel_source`` ``"header"`` (channelSave), ``"pages"`` (the per-page frame
                      numbers disagree with channelSave and are trusted: ScanImage has
                      been seen writing ``channelSave = 1`` with ``channelsActive =
                      [1;2]`` while saving both channels) or ``"default"`` (1, nothing
                      known)
    ``frames_per_slice``, ``flyback_frames`` (``hStackManager.framesPerSlice``,
                      ``hFastZ.numDiscardFlybackFrames``), ``pages_per_volume`` (pages
                      of one time point: LBM/single plane ``pages_per_frame``; piezo
                      ``nchannels * (nplanes * frames_per_slice + flyback)``, flyback
                      only for fast-z stacks), ``nframes`` (time points in the file when
                      ``n_pages`` is known)
    ``mroi``          ``hRoiManager.mroiEnable``
    ``rois``          list of ``{"name", "pixel_resolution": [w, h], "size_deg": [w, h],
                      "center_deg": [x, y], "dx", "dy"}``: the enabled imaging ROIs of
                      ``RoiGroups`` when mROI is on, else one ROI covering the page;
                      None when mROI is on but the ROI groups are missing
    ``nrois``
    ``fly_to_lines``  lines between stacked ROIs in a page: ``round(hScan2D.
                      flytoTimePerScanfield / hRoiManager.linePeriod)``
                      (``fly_to_lines_header``); when the page height disagrees and
                      ``Ly - sum(ROI heights)`` divides evenly by ``nrois - 1``, the
                      value from the page wins (a warning says so); 0 for one ROI
    ``roi_rows``      ``[y0, y1)`` page rows of each ROI, stacked top-down in ROI order
                      with ``fly_to_lines`` between; ``geometry_ok`` False (and
                      ``roi_rows`` None) when they do not fit the page
    ``dx``, ``dy``    µm per pixel. mROI: ``objectiveResolution * sizeXY /
                      pixelResolutionXY`` of the first ROI (each ROI has its own in
                      ``rois``). Single field: ``hRoiManager.imagingFovUm`` extent /
                      page size, else ``imagingFovDeg`` extent * objectiveResolution /
                      page size, else the default scanfield of ``RoiGroups``. The zoom
                      is already part of these fields (the scanner's full angle at zoom
                      1 is not in the header, so no value is derived from zoom alone).
                      ``dxdy_source`` names what was used.
    ``dz``            piezo: ``hStackManager.actualStackZStepSize`` (else
                      ``stackZStepSize``); None for LBM (the bead spacing is not in the
                      header) and single planes
    ``zoom``, ``bidirectional``, ``line_period``, ``objective_resolution``,
    ``scanner_type``, ``si_version``, ``page_shape``, ``n_pages``
    ``warnings``      list of str: inconsistencies found (header ones included)
    """
    si = header.get("SI") or {}
    warnings = list(header.get("warnings") or [])
    path = header.get("path", "<header>")

    def g(key):
        return si.get("SI." + key)

    # --- timing
    fs = _num(g("hRoiManager.scanFrameRate"))
    if fs is None or fs <= 0:
        period = _num(g("hRoiManager.scanFramePeriod"))
        fs = 1.0 / period if period and period > 0 else None
    volume_rate = _num(g("hRoiManager.scanVolumeRate"))
    line_period = _num(g("hRoiManager.linePeriod"))
    zoom = _num(g("hRoiManager.scanZoomFactor"))
    bidirectional = _bool(g("hScan2D.bidirectional"))
    objres = _num(g("objectiveResolution"))

    # --- channels (and the channelSave quirk)
    saved = _channels(g("hChannels.channelSave"))
    active = _channels(g("hChannels.channelsActive"))
    header_channels = saved if saved else active
    ppf_pages = header.get("pages_per_frame")
    if ppf_pages and header_channels and ppf_pages != len(header_channels):
        warnings.append(
            f"'{path}': the header saves {len(header_channels)} channel(s) "
            f"(channelSave = {saved}, channelsActive = {active}) but the pages carry "
            f"{ppf_pages} pages per frame number; using {ppf_pages} interleaved pages per "
            "frame, as the pages hold the data.")
        pages_per_frame, channel_source = int(ppf_pages), "pages"
    elif header_channels:
        pages_per_frame, channel_source = len(header_channels), "header"
    elif ppf_pages:
        pages_per_frame, channel_source = int(ppf_pages), "pages"
    else:
        pages_per_frame, channel_source = 1, "default"

    # --- stack type
    slices = _int(g("hStackManager.actualNumSlices"))
    if not slices or slices < 1:
        slices = _int(g("hStackManager.numSlices"))
    stack_flag = _bool(g("hStackManager.enable"))
    fastz_flag = _bool(g("hFastZ.enable"))
    if stack_flag is None and fastz_flag is None:
        stacking = bool(slices and slices > 1)
    else:
        stacking = bool(stack_flag) or bool(fastz_flag)
    if channels_are_planes is None:
        lbm = pages_per_frame >= LBM_MIN_CHANNELS
    else:
        lbm = bool(channels_are_planes)
    mode = g("hStackManager.stackMode")
    fast = bool(fastz_flag) or (isinstance(mode, str) and mode.lower() == "fast")
    frames_per_slice = _int(g("hStackManager.framesPerSlice"))
    flyback = _int(g("hFastZ.numDiscardFlybackFrames"))

    if lbm:
        stack_type, nplanes, nchannels = "lbm", pages_per_frame, 1
        if stacking and slices and slices > 1:
            warnings.append(f"'{path}': LBM channels and a {slices}-slice z stack together "
                            "are not supported; the slices are ignored.")
    elif stacking and slices and slices > 1:
        stack_type, nplanes, nchannels = "piezo", slices, pages_per_frame
    else:
        stack_type, nplanes, nchannels = "single_plane", 1, pages_per_frame

    if stack_type == "piezo":
        fps = frames_per_slice or 1
        fb = (flyback or 0) if fast else 0
        pages_per_volume = nchannels * (nplanes * fps + fb)
        frames_per_volume = nplanes * fps + fb
        if volume_rate is not None:
            fs_per_plane = volume_rate
        elif fs is not None:
            fs_per_plane = fs / frames_per_volume
        else:
            fs_per_plane = None
        dz = _num(g("hStackManager.actualStackZStepSize"))
        if dz is None:
            dz = _num(g("hStackManager.stackZStepSize"))
    else:
        pages_per_volume = pages_per_frame
        fs_per_plane = fs
        dz = None
    n_pages = header.get("n_pages")
    nframes = None
    if n_pages is not None:
        nframes = n_pages // pages_per_volume
        if n_pages % pages_per_volume:
            warnings.append(f"'{path}': {n_pages} pages is not a multiple of the "
                            f"{pages_per_volume} pages per time point; the last "
                            f"{n_pages % pages_per_volume} page(s) are an incomplete "
                            "time point.")

    # --- geometry
    page_shape = header.get("page_shape")
    if page_shape:
        Ly, Lx = int(page_shape[0]), int(page_shape[1])
    else:
        Ly, Lx = _int(g("hRoiManager.linesPerFrame")), _int(g("hRoiManager.pixelsPerLine"))
    mroi = bool(_bool(g("hRoiManager.mroiEnable")))
    flyto_time = _num(g("hScan2D.flytoTimePerScanfield"))
    fly_header = (int(round(flyto_time / line_period))
                  if flyto_time is not None and line_period else None)
    parsed_rois = _imaging_rois(header.get("RoiGroups"))

    def _pix_um(r):
        px, size = r.get("pixel_resolution"), r.get("size_deg")
        if objres is None or not px or not size or not px[0] or not px[1]:
            return None, None
        return objres * size[0] / px[0], objres * size[1] / px[1]

    rois = None
    roi_rows = None
    geometry_ok = True
    fly_to_lines = 0
    dx = dy = None
    dxdy_source = None
    if mroi:
        usable = [r for r in parsed_rois if r["pixel_resolution"]]
        if not usable:
            warnings.append(f"'{path}': multi-ROI imaging is on (mroiEnable) but the Artist "
                            "tag holds no imaging ROI definitions; ROI geometry is unknown.")
            geometry_ok = False
            fly_to_lines = fly_header
        else:
            rois = usable
            heights = [r["pixel_resolution"][1] for r in rois]
            n = len(rois)
            fly_to_lines = fly_header if n > 1 else 0
            if n > 1 and Ly is not None:
                gap = Ly - sum(heights)
                geo = gap // (n - 1) if gap >= 0 and gap % (n - 1) == 0 else None
                if fly_header is None and geo is not None:
                    fly_to_lines = geo
                    warnings.append(f"'{path}': fly-to time or line period missing; "
                                    f"{geo} fly-to lines derived from the page height.")
                elif fly_header is not None and geo is not None and geo != fly_header:
                    warnings.append(
                        f"'{path}': flytoTimePerScanfield/linePeriod gives {fly_header} "
                        f"fly-to lines but the {Ly}-row page fits {n} ROIs of heights "
                        f"{heights} with {geo}; using {geo}.")
                    fly_to_lines = geo
            if fly_to_lines is not None and Ly is not None:
                rows, y = [], 0
                for h in heights:
                    rows.append([y, y + h])
                    y += h + fly_to_lines
                if rows[-1][1] == Ly:
                    roi_rows = rows
                else:
                    geometry_ok = False
                    warnings.append(
                        f"'{path}': {n} ROIs of heights {heights} with {fly_to_lines} "
                        f"fly-to lines need {rows[-1][1]} rows but pages have {Ly}; the "
                        "ROI layout cannot be located in the page.")
            else:
                geometry_ok = False
            if Lx is not None and any(r["pixel_resolution"][0] > Lx for r in rois):
                geometry_ok = False
                warnings.append(f"'{path}': an ROI is wider than the {Lx}-pixel page.")
            for r in rois:
                r["dx"], r["dy"] = _pix_um(r)
            dx, dy = rois[0]["dx"], rois[0]["dy"]
            if dx is not None:
                dxdy_source = "RoiGroups scanfield"
                if any(r["dx"] is None or not math.isclose(r["dx"], dx, rel_tol=1e-3) or
                       not math.isclose(r["dy"], dy, rel_tol=1e-3) for r in rois):
                    warnings.append(f"'{path}': ROIs have different pixel sizes; dx/dy are "
                                    "those of the first ROI (see rois[i]['dx'/'dy']).")
    else:
        sf = parsed_rois[0] if parsed_rois else {}
        fov_deg = _extent(g("hRoiManager.imagingFovDeg"))
        fov_um = _extent(g("hRoiManager.imagingFovUm"))
        size_deg = sf.get("size_deg") or fov_deg
        center = sf.get("center_deg")
        if center is None and isinstance(g("hRoiManager.imagingFovDeg"), list):
            pts = [_pair(c) for c in g("hRoiManager.imagingFovDeg")]
            if pts and all(p is not None for p in pts):
                center = [sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)]
        if Lx and Ly:
            if fov_um and fov_um[0] > 0 and fov_um[1] > 0:
                dx, dy, dxdy_source = fov_um[0] / Lx, fov_um[1] / Ly, "imagingFovUm"
            elif fov_deg and objres is not None and fov_deg[0] > 0:
                dx, dy = objres * fov_deg[0] / Lx, objres * fov_deg[1] / Ly
                dxdy_source = "imagingFovDeg*objectiveResolution"
            elif sf:
                dx, dy = _pix_um(sf)
                dxdy_source = "RoiGroups scanfield" if dx is not None else None
        rois = [{
            "name": sf.get("name") or "page",
            "pixel_resolution": [Lx, Ly] if Lx and Ly else None,
            "size_deg": size_deg,
            "center_deg": center,
            "dx": dx, "dy": dy,
        }]
        roi_rows = [[0, Ly]] if Ly else None

    version = ".".join(str(v) for v in (g("VERSION_MAJOR"), g("VERSION_MINOR"))
                       if v not in (None, "", []))
    return {
        "fs": fs,
        "volume_rate": volume_rate,
        "fs_per_plane": fs_per_plane,
        "stack_type": stack_type,
        "nplanes": nplanes,
        "nchannels": nchannels,
        "saved_channels": saved,
        "active_channels": active,
        "pages_per_frame": pages_per_frame,
        "channel_source": channel_source,
        "frames_per_slice": frames_per_slice,
        "flyback_frames": flyback,
        "pages_per_volume": pages_per_volume,
        "nframes": nframes,
        "mroi": mroi,
        "rois": rois,
        "nrois": len(rois) if rois is not None else None,
        "fly_to_lines": fly_to_lines,
        "fly_to_lines_header": fly_header,
        "roi_rows": roi_rows,
        "geometry_ok": geometry_ok,
        "dx": dx,
        "dy": dy,
        "dxdy_source": dxdy_source,
        "dz": dz,
        "zoom": zoom,
        "bidirectional": bidirectional,
        "line_period": line_period,
        "objective_resolution": objres,
        "scanner_type": g("hScan2D.scannerType") if isinstance(g("hScan2D.scannerType"), str)
        else None,
        "si_version": version or None,
        "page_shape": (Ly, Lx) if Ly and Lx else None,
        "n_pages": n_pages,
        "warnings": warnings,
    }


# --------------------------------------------------------------------------------------
# Writing (synthetic data)
# --------------------------------------------------------------------------------------

def _uuid(*parts) -> str:
    import hashlib

    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16].upper()


def _scanfield(name: str, center, size, px) -> dict:
    sx, sy = size[0] / px[0], size[1] / px[1]
    x0, y0 = center[0] - size[0] / 2, center[1] - size[1] / 2
    return {
        "ver": 1,
        "classname": "scanimage.mroi.scanfield.fields.RotatedRectangle",
        "name": name,
        "UserData": None,
        "roiUuid": _uuid("sf", name, center, size, px),
        "centerXY": [center[0], center[1]],
        "sizeXY": [size[0], size[1]],
        "rotationDegrees": 0,
        "enable": 1,
        "pixelResolutionXY": [int(px[0]), int(px[1])],
        "pixelToRefTransform": [[sx, 0, x0 - sx / 2], [0, sy, y0 - sy / 2], [0, 0, 1]],
        "affine": [[size[0], 0, x0], [0, size[1], y0], [0, 0, 1]],
    }


def _roi(name: str, scanfield: dict) -> dict:
    return {
        "ver": 1,
        "classname": "scanimage.mroi.Roi",
        "name": name,
        "UserData": None,
        "roiUuid": _uuid("roi", name),
        "zs": 0,
        "scanfields": scanfield,
        "discretePlaneMode": 0,
        "powers": None,
        "pzAdjust": [],
        "Lzs": None,
        "interlaceDecimation": None,
        "interlaceOffset": None,
        "enable": 1,
    }


def make_tags(*, fs: float, nplanes_as_channels: int | None = None, nchannels: int = 1,
              rois: list[dict] | None = None, page_shape: tuple[int, int] = (512, 512),
              fly_to_lines: int = 0, zoom: float = 1.0, objective_resolution: float = 15.0,
              bidirectional: bool = True, line_period: float = 6.31764e-05,
              stack: dict | None = None, fov_deg: tuple[float, float] | None = None,
              version: tuple[str, str] = ("2023", "1"), extra: dict | None = None,
              ) -> tuple[str, str]:
    """Software-tag text (``SI.*`` lines) and Artist-tag JSON for a synthetic recording.

    ``fs``                  frame rate (``scanFrameRate``; ``scanFramePeriod = 1/fs``)
    ``nplanes_as_channels`` LBM: this many saved channels, each one z-plane
    ``nchannels``           colour channels saved otherwise (1 or 2)
    ``rois``                multi-ROI: list of ``{"pixel_resolution": [w, h],
                            "size_deg": [w, h], "center_deg": [x, y] (optional; default
                            side by side), "name" (optional)}``; the page then is
                            ``sum(h) + (n-1)*fly_to_lines`` rows by ``max(w)`` columns.
                            None: one field of ``page_shape`` (Ly, Lx) spanning ``fov_deg``
                            (default 18/zoom degrees wide, square pixels)
    ``fly_to_lines``        lines between stacked ROIs (``flytoTimePerScanfield =
                            fly_to_lines * line_period``)
    ``stack``               piezo/fast-z stack: ``{"nplanes", "dz", "frames_per_slice"
                            (1), "flyback" (0), "fast" (True)}``
    ``extra``               further ``{"SI.key": value}`` entries (override defaults)

    Write them with :func:`write_scanimage_tiff`, or ``tifffile.imwrite(...,
    bigtiff=True, software=software, extratags=[(315, "s", 0, artist, True)],
    metadata=None)`` (classic TIFF: see :func:`write_scanimage_tiff` for why not).
    tifffile's ``scanimage_metadata`` does not recognise such files (it needs
    ScanImage's BigTIFF private header block after the file header); it returns
    ``{}`` and :func:`read_header` reads the tags.
    """
    if fs is None or fs <= 0:
        raise ValueError("fs must be a positive frame rate")
    lbm = nplanes_as_channels is not None
    nsave = int(nplanes_as_channels) if lbm else int(nchannels)
    if nsave < 1:
        raise ValueError("need at least one saved channel")

    mroi = rois is not None and len(rois) > 0
    if mroi:
        roi_defs = []
        widths = [r["size_deg"][0] for r in rois]
        x = -sum(widths) / 2
        for i, r in enumerate(rois, start=1):
            px = [int(r["pixel_resolution"][0]), int(r["pixel_resolution"][1])]
            size = [float(r["size_deg"][0]), float(r["size_deg"][1])]
            center = r.get("center_deg")
            if center is None:
                center = [x + size[0] / 2, 0.0]
            x += size[0]
            name = r.get("name") or f"ROI {i}"
            roi_defs.append(_roi(name, _scanfield(f"{name} scanfield", center, size, px)))
        Ly = sum(int(r["pixel_resolution"][1]) for r in rois) + (len(rois) - 1) * int(fly_to_lines)
        Lx = max(int(r["pixel_resolution"][0]) for r in rois)
        xs = [c for d in roi_defs for c in (d["scanfields"]["affine"][0][2],
                                             d["scanfields"]["affine"][0][2] + d["scanfields"]["sizeXY"][0])]
        ys = [c for d in roi_defs for c in (d["scanfields"]["affine"][1][2],
                                             d["scanfields"]["affine"][1][2] + d["scanfields"]["sizeXY"][1])]
        fov = [[min(xs), min(ys)], [max(xs), min(ys)], [max(xs), max(ys)], [min(xs), max(ys)]]
    else:
        Ly, Lx = int(page_shape[0]), int(page_shape[1])
        if fov_deg is None:
            w = 18.0 / zoom
            fov_deg = (w, w * Ly / Lx)
        w, h = float(fov_deg[0]), float(fov_deg[1])
        roi_defs = [_roi("Default Imaging Roi",
                         _scanfield("Default Imaging Scanfield", [0.0, 0.0], [w, h], [Lx, Ly]))]
        fov = [[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]]
    fov_um = [[objective_resolution * a, objective_resolution * b] for a, b in fov]

    frame_period = 1.0 / fs
    chans = list(range(1, nsave + 1))
    save_val: Any = chans[0] if nsave == 1 else [[c] for c in chans]  # [1;2;...] column
    si: dict[str, Any] = {
        "SI.LINE_FORMAT_VERSION": 1,
        "SI.TIFF_FORMAT_VERSION": 4,
        "SI.VERSION_MAJOR": str(version[0]),
        "SI.VERSION_MINOR": str(version[1]),
        "SI.acqState": "grab",
        "SI.acqsPerLoop": 1,
        "SI.extTrigEnable": False,
        "SI.hBeams.powers": 20,
        "SI.hChannels.channelSave": save_val,
        "SI.hChannels.channelsActive": save_val,
        "SI.hChannels.channelsAvailable": max(nsave, 4 if not lbm else nsave),
        "SI.hChannels.channelName": [f"Channel {c}" for c in chans],
        "SI.hChannels.channelType": ["stripe"] * nsave,
        "SI.hChannels.channelOffset": [0] * nsave,
        "SI.hChannels.loggingEnable": 1,
        "SI.hFastZ.enable": False,
        "SI.hFastZ.discardFlybackFrames": False,
        "SI.hFastZ.numDiscardFlybackFrames": 0,
        "SI.hRoiManager.mroiEnable": bool(mroi),
        "SI.hRoiManager.linePeriod": float(line_period),
        "SI.hRoiManager.linesPerFrame": Ly,
        "SI.hRoiManager.pixelsPerLine": Lx,
        "SI.hRoiManager.scanFramePeriod": frame_period,
        "SI.hRoiManager.scanFrameRate": float(fs),
        "SI.hRoiManager.scanVolumeRate": float(fs),
        "SI.hRoiManager.scanZoomFactor": zoom,
        "SI.hRoiManager.imagingFovDeg": fov,
        "SI.hRoiManager.imagingFovUm": fov_um,
        "SI.hRoiManager.forceSquarePixels": True,
        "SI.hScan2D.bidirectional": bool(bidirectional),
        "SI.hScan2D.flybackTimePerFrame": 0.001,
        "SI.hScan2D.flytoTimePerScanfield": float(fly_to_lines) * float(line_period),
        "SI.hScan2D.scannerType": "RG",
        "SI.hScan2D.scanMode": "resonant",
        "SI.hScan2D.channelsDataType": "int16",
        "SI.hScan2D.logFramesPerFile": math.inf,
        "SI.hStackManager.enable": False,
        "SI.hStackManager.numSlices": 1,
        "SI.hStackManager.actualNumSlices": 1,
        "SI.hStackManager.framesPerSlice": 1,
        "SI.hStackManager.stackZStepSize": 1,
        "SI.hStackManager.actualStackZStepSize": [],
        "SI.hStackManager.numFramesPerVolume": 1,
        "SI.hStackManager.numFramesPerVolumeWithFlyback": 1,
        "SI.hStackManager.stackMode": "slow",
        "SI.hStackManager.stackActuator": "fastZ",
        "SI.imagingSystem": "ResScanner",
        "SI.objectiveResolution": objective_resolution,
    }
    if stack:
        n = int(stack["nplanes"])
        fps = int(stack.get("frames_per_slice", 1))
        fb = int(stack.get("flyback", 0))
        fast = bool(stack.get("fast", True))
        per_volume = n * fps + (fb if fast else 0)
        si.update({
            "SI.hStackManager.enable": True,
            "SI.hStackManager.numSlices": n,
            "SI.hStackManager.actualNumSlices": n,
            "SI.hStackManager.framesPerSlice": fps,
            "SI.hStackManager.stackZStepSize": stack.get("dz", 1),
            "SI.hStackManager.actualStackZStepSize": stack.get("dz", 1),
            "SI.hStackManager.numFramesPerVolume": n * fps,
            "SI.hStackManager.numFramesPerVolumeWithFlyback": per_volume,
            "SI.hStackManager.stackMode": "fast" if fast else "slow",
            "SI.hStackManager.zs": [float(i) * float(stack.get("dz", 1)) for i in range(n)],
            "SI.hFastZ.enable": fast,
            "SI.hFastZ.discardFlybackFrames": fb > 0,
            "SI.hFastZ.numDiscardFlybackFrames": fb,
            "SI.hRoiManager.scanVolumeRate": float(fs) / per_volume,
        })
    if extra:
        si.update(extra)
    software = "\n".join(f"{k} = {format_matlab_value(v)}" for k, v in sorted(si.items()))

    group_rois: Any = roi_defs if len(roi_defs) > 1 else roi_defs[0]  # MATLAB 1x1 → object
    artist = {"RoiGroups": {
        "imagingRoiGroup": {
            "ver": 1, "classname": "scanimage.mroi.RoiGroup",
            "name": "MROI Imaging ROI Group" if mroi else "Default Imaging ROI Group",
            "UserData": None, "roiUuid": _uuid("group", len(roi_defs)),
            "rois": group_rois,
        },
        "photostimRoiGroups": None,
        "integrationRoiGroup": {
            "ver": 1, "classname": "scanimage.mroi.RoiGroup", "name": "",
            "UserData": None, "roiUuid": _uuid("integration"),
            "rois": {"_ArrayType_": "double", "_ArraySize_": [1, 0], "_ArrayData_": None},
        },
    }}
    return software, json.dumps(artist, indent=2)


def make_frame_description(frame_number: int, timestamp: float, *, acquisition: int = 1) -> str:
    """Per-page ImageDescription text as ScanImage writes it (the keys used here)."""
    return (f"frameNumbers = {frame_number}\n"
            f"acquisitionNumbers = {acquisition}\n"
            f"frameNumberAcquisition = {frame_number}\n"
            f"frameTimestamps_sec = {timestamp:.9f}\n"
            "acqTriggerTimestamps_sec = \n"
            "nextFileMarkerTimestamps_sec = \n"
            "endOfAcquisition = 0\n"
            "endOfAcquisitionMode = 0\n"
            "dcOverVoltage = 0\n"
            "epoch = [2024 1 1 12 0 0]\n"
            "auxTrigger0 = []\nauxTrigger1 = []\nauxTrigger2 = []\nauxTrigger3 = []\n"
            "I2CData = {}\n")


def write_scanimage_tiff(path, pages, *, software: str, artist: str | None = None,
                         pages_per_frame: int = 1, fs: float | None = None,
                         bigtiff: bool = True, first_frame: int = 1) -> Path:
    """Write ``pages`` (n, Ly, Lx) as a TIFF with ScanImage-style tags.

    Every page gets the Software (305) and Artist (315) tags, as ScanImage writes them,
    and an ImageDescription whose ``frameNumbers`` advance every ``pages_per_frame``
    pages (the interleaved channels / LBM planes of one frame).

    BigTIFF by default, as ScanImage 2016+ writes: for a *classic* TIFF whose Software
    tag starts with ``SI.``, tifffile does not walk the IFD chain but computes "virtual
    frames" from the file size assuming ScanImage's data-before-IFD layout; tifffile's
    own writer puts the IFD first, so tifffile then reads one page fewer than written.
    """
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extratags = [(315, "s", 0, artist, True)] if artist else []
    with tifffile.TiffWriter(path, bigtiff=bigtiff) as tw:
        for i, page in enumerate(pages):
            frame = i // pages_per_frame + first_frame  # numbering continues across files
            ts = (frame - 1) / fs if fs else 0.0
            tw.write(page, description=make_frame_description(frame, ts), software=software,
                     extratags=extratags, metadata=None, photometric="minisblack",
                     contiguous=False)
    return path
