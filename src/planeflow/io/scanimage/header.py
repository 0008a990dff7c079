"""Reading a ScanImage TIFF header: the first page's Software/Artist tags (via
tifffile's ``scanimage_metadata`` or our own parser), or the ImageDescription of
ScanImage 3.x/4.x (via :mod:`.legacy`), page counts and frame numbers."""
from __future__ import annotations

import json
import re
from typing import Any

from planeflow import PlaneflowError
from planeflow.io.scanimage.legacy import is_legacy_key, legacy_frame_data, legacy_si
from planeflow.io.scanimage.syntax import _norm_key, _parse_key_values, parse_si_text

#: at most this many pages' ImageDescription are read to count pages per frame number
#: (LBM recordings interleave up to ~30 planes, so 64 covers them with room to spare).
MAX_DESCRIPTION_PAGES = 64

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
                      2015/2016a), ``"legacy"`` (a ScanImage 3.x ``state.*`` or 4.x
                      ``scanimage.SI4.*`` description, its keys renamed to the modern
                      ``SI.*`` ones by :mod:`.legacy`) or None (no ScanImage header)
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
        if not si:  # ScanImage 3.x/4.x: state.* / scanimage.SI4.* lines, renamed SI.*
            si = legacy_si(page0.description or "", path, warnings)
            if si:
                source = "legacy"
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
                          if _norm_key(k) is None and not is_legacy_key(k)}
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
        if source == "legacy" and "epoch" not in frame_data:
            frame_data.update(legacy_frame_data(desc0))

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


