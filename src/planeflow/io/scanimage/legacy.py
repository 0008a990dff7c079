"""ScanImage 3.x and 4.x headers, translated into the modern ``SI.*`` keys.

ScanImage before 2015 wrote its whole header into the ImageDescription of every page:
3.x as ``state.acq.frameRate=8.138`` lines (``\\r``-separated), 4.x as
``scanimage.SI4.scanFrameRate = 7.8`` lines. :func:`legacy_si` renames what planeflow
needs into the keys of ScanImage 2016 and later (``SI.hRoiManager.scanFrameRate``...),
so that :func:`planeflow.io.scanimage.acquisition.acquisition_info` and everything
downstream read one format only.

Renames that keep the meaning and unit are in :data:`SI3_KEYS` / :data:`SI4_KEYS`; the
values that need more than a rename (the frame rate of averaged frames, the saved
channels, the version, whether a stack was acquired) have a function each below.
"""
from __future__ import annotations

import re
from typing import Any

from planeflow.io.scanimage.acquisition import _num
from planeflow.io.scanimage.syntax import _parse_key_values

SI3_PREFIX = "state."
SI4_PREFIX = "scanimage.SI4."

#: ScanImage 3.x key -> modern key (``SI.`` left out), same meaning and unit
SI3_KEYS = {
    "state.acq.numberOfZSlices": "hStackManager.numSlices",
    "state.acq.zStepSize": "hStackManager.stackZStepSize",
    "state.acq.zoomFactor": "hRoiManager.scanZoomFactor",
    "state.acq.linesPerFrame": "hRoiManager.linesPerFrame",
    "state.acq.pixelsPerLine": "hRoiManager.pixelsPerLine",
    "state.acq.bidirectionalScan": "hScan2D.bidirectional",
}

#: ScanImage 4.x key -> modern key (``SI.`` left out), same meaning and unit
SI4_KEYS = {
    "scanimage.SI4.stackNumSlices": "hStackManager.numSlices",
    "scanimage.SI4.stackZStepSize": "hStackManager.stackZStepSize",
    "scanimage.SI4.scanZoomFactor": "hRoiManager.scanZoomFactor",
    "scanimage.SI4.scanLinesPerFrame": "hRoiManager.linesPerFrame",
    "scanimage.SI4.scanPixelsPerLine": "hRoiManager.pixelsPerLine",
    "scanimage.SI4.scanLinePeriod": "hRoiManager.linePeriod",
    "scanimage.SI4.channelsSave": "hChannels.channelSave",
    "scanimage.SI4.channelsActive": "hChannels.channelsActive",
    "scanimage.SI4.fastZEnable": "hFastZ.enable",
    "scanimage.SI4.VERSION_MAJOR": "VERSION_MAJOR",
    "scanimage.SI4.VERSION_MINOR": "VERSION_MINOR",
}

#: ScanImage 3.x drove galvanometers only (resonant scanning came with 4.x/5), so its
#: files are galvo-galvo: ``GG``, as ``SI.hScan2D.scannerType`` spells it
SI3_SCANNER = "GG"

#: a header line of either version (3.x ends lines with a carriage return, 4.x with a newline)
_SI3_LINE = re.compile(r"(?:\A|[\r\n])state\.(?:acq|software)\.\w+\s*=")
_SI4_LINE = re.compile(r"(?:\A|[\r\n])scanimage\.SI4\.\w+\s*=")
_SI3_TRIGGER_TIME = re.compile(r"(\d+)/(\d+)/(\d{4})\s+(\d+):(\d+):(\d+(?:\.\d*)?)")


def legacy_version(text: str) -> str | None:
    """``"3"`` for a ScanImage 3.x header, ``"4"`` for 4.x, None for anything else."""
    if _SI3_LINE.search(text):
        return "3"
    if _SI4_LINE.search(text):
        return "4"
    return None


def is_legacy_key(key: str) -> bool:
    """Whether ``key`` is a ScanImage 3.x/4.x header key (not a per-frame value)."""
    return key.startswith((SI3_PREFIX, SI4_PREFIX))


def _positive(v: Any) -> float | None:
    """A finite number above 0, or None."""
    x = _num(v)
    return x if x is not None and x > 0 else None


def _renamed(kv: dict[str, Any], table: dict[str, str]) -> dict[str, Any]:
    """``{"SI.<modern>": value}`` for the keys of ``table`` present in ``kv``."""
    return {"SI." + new: kv[old] for old, new in table.items() if old in kv}


def _averaging(n_frames: float | None, n_avg: Any, path: str, warnings: list[str]) -> int:
    """Frames averaged into each saved frame (1 without averaging); warns when > 1, since
    the saved frames then come at the frame rate over that factor."""
    avg = int(_positive(n_avg) or 1)
    if avg > 1:
        warnings.append(f"'{path}': ScanImage averaged every {avg} frames into one saved "
                        "frame; the frame rate used is that of the saved frames.")
    if n_frames and avg > 1 and n_frames % avg:
        warnings.append(f"'{path}': {int(n_frames)} frames per slice are not a multiple of "
                        f"the {avg} averaged into each saved frame.")
    return avg


def _saved_rate(rate: Any, period: Any, avg: int) -> dict[str, Any]:
    """``scanFrameRate`` of the saved frames: ``rate`` (else ``1/period``) over ``avg``."""
    fs = _positive(rate)
    if fs is None and _positive(period):
        fs = 1.0 / _positive(period)
    return {"SI.hRoiManager.scanFrameRate": fs / avg} if fs else {}


def _si3_averaging(kv: dict[str, Any], path: str, warnings: list[str]) -> int:
    """3.8 saves ``numAvgFramesSave``-frame averages; 3.6 (no such key) with ``averaging``
    on saves one average of all ``numberOfFrames`` frames per slice."""
    frames = _positive(kv.get("state.acq.numberOfFrames"))
    if "state.acq.numAvgFramesSave" in kv:
        n_avg = kv["state.acq.numAvgFramesSave"]
    else:
        n_avg = frames if kv.get("state.acq.averaging") in (1, True) else 1
    return _averaging(frames, n_avg, path, warnings)


def _si3_channels(kv: dict[str, Any], kind: str) -> list[int] | None:
    """Channel numbers with ``state.acq.<kind>ChannelN`` = 1 (``kind``: ``saving`` or
    ``acquiring``), else channels 1..``numberOfChannelsSave``/``Acquire``, else None."""
    flags = {n: kv.get(f"state.acq.{kind}Channel{n}") for n in range(1, 5)}
    if any(v is not None for v in flags.values()):
        return [n for n, v in flags.items() if v in (1, True)] or None
    count = _positive(kv.get("state.acq.numberOfChannels" + ("Save" if kind == "saving" else "Acquire")))
    return list(range(1, int(count) + 1)) if count else None


def _si3_version(kv: dict[str, Any]) -> dict[str, Any]:
    """``state.software.version`` (``3.8``) as ``VERSION_MAJOR`` 3 / ``VERSION_MINOR`` 8."""
    v = kv.get("state.software.version")
    if v in (None, "", []):
        return {"SI.VERSION_MAJOR": 3}
    major, _, minor = str(v).partition(".")
    out: dict[str, Any] = {"SI.VERSION_MAJOR": major}
    if minor:
        out["SI.VERSION_MINOR"] = minor
    return out


def _frames_per_slice(frames: Any, avg: int) -> dict[str, Any]:
    """``framesPerSlice``: the saved frames of one slice (``frames`` over the averaging)."""
    n = _positive(frames)
    return {"SI.hStackManager.framesPerSlice": max(1, int(n) // avg)} if n else {}


def _stack_enabled(slices: Any) -> dict[str, Any]:
    """``hStackManager.enable``: old versions had no flag; more than one slice is a stack."""
    n = _num(slices)
    return {"SI.hStackManager.enable": bool(n and n > 1)} if n is not None else {}


def _si3(kv: dict[str, Any], path: str, warnings: list[str]) -> dict[str, Any]:
    """The modern ``SI.*`` keys of a ScanImage 3.x header (``state.*`` keys)."""
    si = _renamed(kv, SI3_KEYS)
    avg = _si3_averaging(kv, path, warnings)
    si.update(_saved_rate(kv.get("state.acq.frameRate"), None, avg))
    si.update(_frames_per_slice(kv.get("state.acq.numberOfFrames"), avg))
    si.update(_stack_enabled(kv.get("state.acq.numberOfZSlices")))
    ms_per_line = _positive(kv.get("state.acq.msPerLine"))
    if ms_per_line:
        si["SI.hRoiManager.linePeriod"] = ms_per_line / 1000.0
    for kind, key in (("saving", "channelSave"), ("acquiring", "channelsActive")):
        channels = _si3_channels(kv, kind)
        if channels:
            si[f"SI.hChannels.{key}"] = channels
    si.update(_si3_version(kv))
    si["SI.hScan2D.scannerType"] = SI3_SCANNER
    return si


def _si4_bidirectional(kv: dict[str, Any]) -> dict[str, Any]:
    """``hScan2D.bidirectional``: ``scanMode = 'bidirectional'`` (or ``bidirectionalScan``)."""
    mode = kv.get(SI4_PREFIX + "scanMode")
    if isinstance(mode, str) and mode:
        return {"SI.hScan2D.bidirectional": mode.lower().startswith("bidi")}
    flag = kv.get(SI4_PREFIX + "bidirectionalScan")
    return {"SI.hScan2D.bidirectional": bool(flag)} if isinstance(flag, (bool, int, float)) else {}


def _si4_fast_z(kv: dict[str, Any]) -> dict[str, Any]:
    """Fast-z stacks: volume rate (``1/fastZPeriod``) and the flyback frames saved per volume
    (``fastZNumDiscardFrames`` when ``fastZDiscardFlybackFrames``); one frame per slice."""
    if kv.get(SI4_PREFIX + "fastZEnable") not in (1, True):
        return {}
    out: dict[str, Any] = {"SI.hStackManager.framesPerSlice": 1}
    period = _positive(kv.get(SI4_PREFIX + "fastZPeriod"))
    if period:
        out["SI.hRoiManager.scanVolumeRate"] = 1.0 / period
    discard = kv.get(SI4_PREFIX + "fastZDiscardFlybackFrames") in (1, True)
    out["SI.hFastZ.numDiscardFlybackFrames"] = int(_positive(kv.get(SI4_PREFIX + "fastZNumDiscardFrames")) or 0) \
        if discard else 0
    return out


def _si4(kv: dict[str, Any], path: str, warnings: list[str]) -> dict[str, Any]:
    """The modern ``SI.*`` keys of a ScanImage 4.x header (``scanimage.SI4.*`` keys)."""
    si = _renamed(kv, SI4_KEYS)
    avg = _averaging(_positive(kv.get(SI4_PREFIX + "acqNumFrames")),
                     kv.get(SI4_PREFIX + "acqNumAveragedFrames"), path, warnings)
    si.update(_saved_rate(kv.get(SI4_PREFIX + "scanFrameRate"), kv.get(SI4_PREFIX + "scanFramePeriod"), avg))
    si.update(_frames_per_slice(kv.get(SI4_PREFIX + "acqNumFrames"), avg))
    si.update(_stack_enabled(kv.get(SI4_PREFIX + "stackNumSlices")))
    si.update(_si4_bidirectional(kv))
    si.update(_si4_fast_z(kv))
    si.setdefault("SI.VERSION_MAJOR", 4)
    return si


def legacy_si(text: str, path: str = "<header>", warnings: list[str] | None = None) -> dict[str, Any]:
    """``{"SI.x.y": value}`` (modern keys) from a ScanImage 3.x/4.x ImageDescription;
    ``{}`` when ``text`` is not one. Notes on the translation go into ``warnings``."""
    version = legacy_version(text or "")
    if version is None:
        return {}
    kv = _parse_key_values(text)
    notes = warnings if warnings is not None else []
    return _si3(kv, path, notes) if version == "3" else _si4(kv, path, notes)


def legacy_frame_data(text: str) -> dict[str, Any]:
    """Per-acquisition values of a 3.x header in the per-frame form of newer versions:
    ``epoch`` ([y m d h mi s], rig local time) from ``state.internal.triggerTimeString``
    (``'7/30/2014 21:10:00.731'``); ``{}`` when absent or not a 3.x header."""
    if legacy_version(text or "") != "3":
        return {}
    when = _parse_key_values(text).get("state.internal.triggerTimeString")
    t = _SI3_TRIGGER_TIME.match(when.strip()) if isinstance(when, str) else None
    if not t:
        return {}
    mo, d, y, h, mi = (int(t.group(i)) for i in range(1, 6))
    return {"epoch": [y, mo, d, h, mi, float(t.group(6))]}
