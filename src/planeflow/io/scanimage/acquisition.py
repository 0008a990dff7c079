"""What a ScanImage header says about the acquisition: rate, stack type (LBM / piezo /
single plane), planes, channels, mROIs and fly-to lines, pixel size, zoom."""
from __future__ import annotations

import math
from typing import Any



#: ``auto`` LBM rule: more saved channels than this means the channels are z-planes
#: (two-photon rigs record at most two colour channels in practice; LBM saves one
#: "channel" per light bead plane, typically 14 to 30).
LBM_MIN_CHANNELS = 3

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


def volume_pages(nchannels: int, nplanes: int, frames_per_slice: int = 1, flyback_frames: int = 0) -> int:
    """Pages of one time point: every channel of every frame of every slice, then the
    flyback frames (piezo fast-z stacks only; a slow stack waits instead of recording)."""
    return int(nchannels) * (int(nplanes) * int(frames_per_slice) + int(flyback_frames))


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
                      only for fast-z stacks: ``flyback_frames_per_volume``), ``nframes`` (time points in the file when
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
        pages_per_volume = volume_pages(nchannels, nplanes, fps, fb)
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
        "flyback_frames_per_volume": fb if stack_type == "piezo" else 0,
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


