"""Realistic ScanImage tags and TIFF files for synthetic recordings (simulator and tests)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from planeflow.io.scanimage.syntax import format_matlab_value

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
