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


# --------------------------------------------------------------------------------------
# acquisition_info, piece by piece
# --------------------------------------------------------------------------------------

def _get(si: dict, key: str) -> Any:
    """The header value ``SI.<key>``, or None when absent."""
    return si.get("SI." + key)


def _frame_rate(si: dict) -> float | None:
    """Frame rate: ``scanFrameRate``, else ``1/scanFramePeriod``, else None."""
    fs = _num(_get(si, "hRoiManager.scanFrameRate"))
    if fs is None or fs <= 0:
        period = _num(_get(si, "hRoiManager.scanFramePeriod"))
        fs = 1.0 / period if period and period > 0 else None
    return fs


def _channel_layout(header: dict, saved: list[int] | None, active: list[int] | None,
                    path: str, warnings: list[str]) -> tuple[int, str]:
    """Interleaved pages per frame number and where that count came from; warns (into
    ``warnings``) when the pages disagree with ``channelSave`` (the pages then win)."""
    header_channels = saved if saved else active
    ppf_pages = header.get("pages_per_frame")
    if ppf_pages and header_channels and ppf_pages != len(header_channels):
        warnings.append(
            f"'{path}': the header saves {len(header_channels)} channel(s) "
            f"(channelSave = {saved}, channelsActive = {active}) but the pages carry "
            f"{ppf_pages} pages per frame number; using {ppf_pages} interleaved pages per "
            "frame, as the pages hold the data.")
        return int(ppf_pages), "pages"
    if header_channels:
        return len(header_channels), "header"
    if ppf_pages:
        return int(ppf_pages), "pages"
    return 1, "default"


def _num_slices(si: dict) -> int | None:
    """Slices of the z stack: ``actualNumSlices``, else ``numSlices``."""
    slices = _int(_get(si, "hStackManager.actualNumSlices"))
    if not slices or slices < 1:
        slices = _int(_get(si, "hStackManager.numSlices"))
    return slices


def _is_stacking(si: dict, slices: int | None) -> bool:
    """Whether a z stack was acquired: ``hStackManager.enable`` or ``hFastZ.enable``, or,
    with neither flag present, more than one slice."""
    stack_flag = _bool(_get(si, "hStackManager.enable"))
    fastz_flag = _bool(_get(si, "hFastZ.enable"))
    if stack_flag is None and fastz_flag is None:
        return bool(slices and slices > 1)
    return bool(stack_flag) or bool(fastz_flag)


def _is_fast_stack(si: dict) -> bool:
    """Whether the stack is a fast-z one (``hFastZ.enable`` or ``stackMode = 'fast'``)."""
    mode = _get(si, "hStackManager.stackMode")
    return bool(_bool(_get(si, "hFastZ.enable"))) or (isinstance(mode, str) and mode.lower() == "fast")


def _is_lbm(pages_per_frame: int, channels_are_planes: bool | None) -> bool:
    """Whether the saved channels are z-planes: the explicit hint, else the ``auto`` rule."""
    if channels_are_planes is None:
        return pages_per_frame >= LBM_MIN_CHANNELS
    return bool(channels_are_planes)


def _stack_layout(si: dict, pages_per_frame: int, channels_are_planes: bool | None,
                  path: str, warnings: list[str]) -> tuple[str, int, int]:
    """``(stack_type, nplanes, nchannels)``: ``"lbm"``, ``"piezo"`` or ``"single_plane"``;
    warns when LBM channels come with a z stack (its slices are ignored)."""
    slices = _num_slices(si)
    stacking = _is_stacking(si, slices)
    if _is_lbm(pages_per_frame, channels_are_planes):
        if stacking and slices and slices > 1:
            warnings.append(f"'{path}': LBM channels and a {slices}-slice z stack together "
                            "are not supported; the slices are ignored.")
        return "lbm", pages_per_frame, 1
    if stacking and slices and slices > 1:
        return "piezo", slices, pages_per_frame
    return "single_plane", 1, pages_per_frame


def _flyback_per_volume(stack_type: str, flyback: int | None, fast: bool) -> int:
    """Flyback pages saved per volume per channel: only fast-z piezo stacks save them."""
    if stack_type != "piezo":
        return 0
    return (flyback or 0) if fast else 0


def _pages_per_volume(stack_type: str, pages_per_frame: int, nchannels: int, nplanes: int,
                      frames_per_slice: int | None, flyback_per_volume: int) -> int:
    """Pages of one time point: piezo stacks count every slice's frames and the flyback."""
    if stack_type != "piezo":
        return pages_per_frame
    return volume_pages(nchannels, nplanes, frames_per_slice or 1, flyback_per_volume)


def _fs_per_plane(stack_type: str, fs: float | None, volume_rate: float | None, nplanes: int,
                  frames_per_slice: int | None, flyback_per_volume: int) -> float | None:
    """Per-plane rate: piezo ``volume_rate`` (else ``fs`` / frames per volume), else ``fs``."""
    if stack_type != "piezo":
        return fs
    if volume_rate is not None:
        return volume_rate
    if fs is not None:
        return fs / (nplanes * (frames_per_slice or 1) + flyback_per_volume)
    return None


def _z_step(si: dict, stack_type: str) -> float | None:
    """Piezo z step (``actualStackZStepSize``, else ``stackZStepSize``); None otherwise."""
    if stack_type != "piezo":
        return None
    dz = _num(_get(si, "hStackManager.actualStackZStepSize"))
    if dz is None:
        dz = _num(_get(si, "hStackManager.stackZStepSize"))
    return dz


def _time_points(n_pages: int | None, pages_per_volume: int, path: str, warnings: list[str]) -> int | None:
    """Complete time points in ``n_pages`` pages (None when unknown); warns about a partial one."""
    if n_pages is None:
        return None
    if n_pages % pages_per_volume:
        warnings.append(f"'{path}': {n_pages} pages is not a multiple of the "
                        f"{pages_per_volume} pages per time point; the last "
                        f"{n_pages % pages_per_volume} page(s) are an incomplete "
                        "time point.")
    return n_pages // pages_per_volume


def _page_size(header: dict, si: dict) -> tuple[int | None, int | None]:
    """``(Ly, Lx)``: the first page's shape, else ``linesPerFrame`` / ``pixelsPerLine``."""
    page_shape = header.get("page_shape")
    if page_shape:
        return int(page_shape[0]), int(page_shape[1])
    return _int(_get(si, "hRoiManager.linesPerFrame")), _int(_get(si, "hRoiManager.pixelsPerLine"))


def _header_fly_to_lines(si: dict, line_period: float | None) -> int | None:
    """Fly-to lines per the header: ``round(flytoTimePerScanfield / linePeriod)``, or None."""
    flyto_time = _num(_get(si, "hScan2D.flytoTimePerScanfield"))
    if flyto_time is None or not line_period:
        return None
    return int(round(flyto_time / line_period))


def _roi_pixel_um(roi: dict, objres: float | None) -> tuple[float | None, float | None]:
    """µm per pixel (x, y) of one ROI: ``objectiveResolution * size_deg / pixel_resolution``."""
    px, size = roi.get("pixel_resolution"), roi.get("size_deg")
    if objres is None or not px or not size or not px[0] or not px[1]:
        return None, None
    return objres * size[0] / px[0], objres * size[1] / px[1]


def _mroi_fly_to_lines(heights: list[int], Ly: int | None, fly_header: int | None,
                       path: str, warnings: list[str]) -> int | None:
    """Fly-to lines between stacked ROIs: the header's, unless the page height fits another
    whole number of lines between them (that one wins, with a warning); 0 for one ROI."""
    n = len(heights)
    if n <= 1:
        return 0
    if Ly is None:
        return fly_header
    gap = Ly - sum(heights)
    geo = gap // (n - 1) if gap >= 0 and gap % (n - 1) == 0 else None
    if fly_header is None and geo is not None:
        warnings.append(f"'{path}': fly-to time or line period missing; "
                        f"{geo} fly-to lines derived from the page height.")
        return geo
    if fly_header is not None and geo is not None and geo != fly_header:
        warnings.append(
            f"'{path}': flytoTimePerScanfield/linePeriod gives {fly_header} "
            f"fly-to lines but the {Ly}-row page fits {n} ROIs of heights "
            f"{heights} with {geo}; using {geo}.")
        return geo
    return fly_header


def _stacked_roi_rows(heights: list[int], fly_to_lines: int | None, Ly: int | None,
                      path: str, warnings: list[str]) -> list[list[int]] | None:
    """``[y0, y1)`` page rows of ROIs stacked top-down with ``fly_to_lines`` between, or
    None when unknown or (with a warning) when they do not fill the page exactly."""
    if fly_to_lines is None or Ly is None:
        return None
    rows, y = [], 0
    for h in heights:
        rows.append([y, y + h])
        y += h + fly_to_lines
    if rows[-1][1] == Ly:
        return rows
    warnings.append(
        f"'{path}': {len(heights)} ROIs of heights {heights} with {fly_to_lines} "
        f"fly-to lines need {rows[-1][1]} rows but pages have {Ly}; the "
        "ROI layout cannot be located in the page.")
    return None


def _mroi_pixel_size(rois: list[dict], objres: float | None,
                     path: str, warnings: list[str]) -> tuple[float | None, float | None, str | None]:
    """Sets each ROI's ``dx``/``dy``; returns the first ROI's and their source, warning when
    the ROIs' pixel sizes differ."""
    for r in rois:
        r["dx"], r["dy"] = _roi_pixel_um(r, objres)
    dx, dy = rois[0]["dx"], rois[0]["dy"]
    if dx is None:
        return dx, dy, None
    if any(r["dx"] is None or not math.isclose(r["dx"], dx, rel_tol=1e-3) or
           not math.isclose(r["dy"], dy, rel_tol=1e-3) for r in rois):
        warnings.append(f"'{path}': ROIs have different pixel sizes; dx/dy are "
                        "those of the first ROI (see rois[i]['dx'/'dy']).")
    return dx, dy, "RoiGroups scanfield"


def _mroi_geometry(parsed_rois: list[dict], Ly: int | None, Lx: int | None, fly_header: int | None,
                   objres: float | None, path: str, warnings: list[str]) -> dict:
    """Multi-ROI geometry: ``rois``, ``fly_to_lines``, ``roi_rows``, ``geometry_ok``,
    ``dx``, ``dy``, ``dxdy_source`` (ROIs unknown without ``RoiGroups``)."""
    rois = [r for r in parsed_rois if r["pixel_resolution"]]
    if not rois:
        warnings.append(f"'{path}': multi-ROI imaging is on (mroiEnable) but the Artist "
                        "tag holds no imaging ROI definitions; ROI geometry is unknown.")
        return {"rois": None, "fly_to_lines": fly_header, "roi_rows": None, "geometry_ok": False,
                "dx": None, "dy": None, "dxdy_source": None}
    heights = [r["pixel_resolution"][1] for r in rois]
    fly_to_lines = _mroi_fly_to_lines(heights, Ly, fly_header, path, warnings)
    roi_rows = _stacked_roi_rows(heights, fly_to_lines, Ly, path, warnings)
    geometry_ok = roi_rows is not None
    if Lx is not None and any(r["pixel_resolution"][0] > Lx for r in rois):
        geometry_ok = False
        warnings.append(f"'{path}': an ROI is wider than the {Lx}-pixel page.")
    dx, dy, dxdy_source = _mroi_pixel_size(rois, objres, path, warnings)
    return {"rois": rois, "fly_to_lines": fly_to_lines, "roi_rows": roi_rows, "geometry_ok": geometry_ok,
            "dx": dx, "dy": dy, "dxdy_source": dxdy_source}


def _fov_center(sf: dict, si: dict) -> list[float] | None:
    """Field centre (deg): the scanfield's, else the mean of the ``imagingFovDeg`` corners."""
    center = sf.get("center_deg")
    corners = _get(si, "hRoiManager.imagingFovDeg")
    if center is None and isinstance(corners, list):
        pts = [_pair(c) for c in corners]
        if pts and all(p is not None for p in pts):
            center = [sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)]
    return center


def _single_field_pixel_size(sf: dict, si: dict, Ly: int | None, Lx: int | None,
                             objres: float | None) -> tuple[float | None, float | None, str | None]:
    """``(dx, dy, dxdy_source)`` of a single field: ``imagingFovUm``, else ``imagingFovDeg *
    objectiveResolution``, else the default scanfield, over the page size."""
    if not (Lx and Ly):
        return None, None, None
    fov_um = _extent(_get(si, "hRoiManager.imagingFovUm"))
    fov_deg = _extent(_get(si, "hRoiManager.imagingFovDeg"))
    if fov_um and fov_um[0] > 0 and fov_um[1] > 0:
        return fov_um[0] / Lx, fov_um[1] / Ly, "imagingFovUm"
    if fov_deg and objres is not None and fov_deg[0] > 0:
        return objres * fov_deg[0] / Lx, objres * fov_deg[1] / Ly, "imagingFovDeg*objectiveResolution"
    if sf:
        dx, dy = _roi_pixel_um(sf, objres)
        return dx, dy, ("RoiGroups scanfield" if dx is not None else None)
    return None, None, None


def _single_field_geometry(parsed_rois: list[dict], si: dict, Ly: int | None, Lx: int | None,
                           objres: float | None) -> dict:
    """Geometry without mROI: one ROI covering the page, pixel size from the field of view."""
    sf = parsed_rois[0] if parsed_rois else {}
    dx, dy, dxdy_source = _single_field_pixel_size(sf, si, Ly, Lx, objres)
    rois = [{
        "name": sf.get("name") or "page",
        "pixel_resolution": [Lx, Ly] if Lx and Ly else None,
        "size_deg": sf.get("size_deg") or _extent(_get(si, "hRoiManager.imagingFovDeg")),
        "center_deg": _fov_center(sf, si),
        "dx": dx, "dy": dy,
    }]
    return {"rois": rois, "fly_to_lines": 0, "roi_rows": [[0, Ly]] if Ly else None, "geometry_ok": True,
            "dx": dx, "dy": dy, "dxdy_source": dxdy_source}


def _si_version(si: dict) -> str | None:
    """``VERSION_MAJOR.VERSION_MINOR`` (the parts present), or None."""
    version = ".".join(str(v) for v in (_get(si, "VERSION_MAJOR"), _get(si, "VERSION_MINOR"))
                       if v not in (None, "", []))
    return version or None


def _scanner_type(si: dict) -> str | None:
    """``hScan2D.scannerType`` when it is a string, else None."""
    scanner = _get(si, "hScan2D.scannerType")
    return scanner if isinstance(scanner, str) else None


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

    fs = _frame_rate(si)
    volume_rate = _num(_get(si, "hRoiManager.scanVolumeRate"))
    line_period = _num(_get(si, "hRoiManager.linePeriod"))
    objres = _num(_get(si, "objectiveResolution"))

    saved = _channels(_get(si, "hChannels.channelSave"))
    active = _channels(_get(si, "hChannels.channelsActive"))
    pages_per_frame, channel_source = _channel_layout(header, saved, active, path, warnings)

    stack_type, nplanes, nchannels = _stack_layout(si, pages_per_frame, channels_are_planes, path, warnings)
    frames_per_slice = _int(_get(si, "hStackManager.framesPerSlice"))
    flyback = _int(_get(si, "hFastZ.numDiscardFlybackFrames"))
    flyback_per_volume = _flyback_per_volume(stack_type, flyback, _is_fast_stack(si))
    pages_per_volume = _pages_per_volume(stack_type, pages_per_frame, nchannels, nplanes,
                                         frames_per_slice, flyback_per_volume)
    n_pages = header.get("n_pages")
    nframes = _time_points(n_pages, pages_per_volume, path, warnings)

    Ly, Lx = _page_size(header, si)
    mroi = bool(_bool(_get(si, "hRoiManager.mroiEnable")))
    fly_header = _header_fly_to_lines(si, line_period)
    parsed_rois = _imaging_rois(header.get("RoiGroups"))
    if mroi:
        geo = _mroi_geometry(parsed_rois, Ly, Lx, fly_header, objres, path, warnings)
    else:
        geo = _single_field_geometry(parsed_rois, si, Ly, Lx, objres)
    rois = geo["rois"]

    return {
        "fs": fs,
        "volume_rate": volume_rate,
        "fs_per_plane": _fs_per_plane(stack_type, fs, volume_rate, nplanes, frames_per_slice, flyback_per_volume),
        "stack_type": stack_type,
        "nplanes": nplanes,
        "nchannels": nchannels,
        "saved_channels": saved,
        "active_channels": active,
        "pages_per_frame": pages_per_frame,
        "channel_source": channel_source,
        "frames_per_slice": frames_per_slice,
        "flyback_frames": flyback,
        "flyback_frames_per_volume": flyback_per_volume,
        "pages_per_volume": pages_per_volume,
        "nframes": nframes,
        "mroi": mroi,
        "rois": rois,
        "nrois": len(rois) if rois is not None else None,
        "fly_to_lines": geo["fly_to_lines"],
        "fly_to_lines_header": fly_header,
        "roi_rows": geo["roi_rows"],
        "geometry_ok": geo["geometry_ok"],
        "dx": geo["dx"],
        "dy": geo["dy"],
        "dxdy_source": geo["dxdy_source"],
        "dz": _z_step(si, stack_type),
        "zoom": _num(_get(si, "hRoiManager.scanZoomFactor")),
        "bidirectional": _bool(_get(si, "hScan2D.bidirectional")),
        "line_period": line_period,
        "objective_resolution": objres,
        "scanner_type": _scanner_type(si),
        "si_version": _si_version(si),
        "page_shape": (Ly, Lx) if Ly and Lx else None,
        "n_pages": n_pages,
        "warnings": warnings,
    }
