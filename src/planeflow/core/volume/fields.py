"""Scan fields and parts: multi-ROI planes made of several fields (mROI stripes), each with its own
position in the microscope and, in roi_mode separate, its own registration reference."""
from __future__ import annotations

import numpy as np

from planeflow.core.volume.rois import Rois


# ----------------------------------------------------------------------------- scan fields
def field_index(fields: list[dict], y: float, x: float) -> int | None:
    """The scan field (index into ``fields``, :func:`planeflow.plan.session.scan_fields`)
    whose rectangle of the plane image holds pixel ``(y, x)``; None outside every field
    (fly-to lines of an unstitched page)."""
    for k, f in enumerate(fields):
        y0, x0, h, w = f["rect"]
        if y0 - 0.5 <= y < y0 + h - 0.5 and x0 - 0.5 <= x < x0 + w - 0.5:
            return k
    return None


def field_um(field: dict, y: float, x: float) -> tuple[float, float]:
    """Microscope position (y_um, x_um) of plane-image pixel ``(y, x)`` (its centre; may lie
    beyond the field's edge, e.g. after a plane offset) in the scan field ``field``.

    Pixel ``(r, c)`` of a field of ``h x w`` pixels spanning ``size_um`` around ``center_um``
    is at ``center - size / 2 + (index + 0.5) * size / pixels`` per axis, as ScanImage's
    ``pixelToRefTransform`` places pixel centres."""
    y0, x0, h, w = field["rect"]
    (cy, cx), (sy, sx) = field["center_um"], field["size_um"]
    return (cy - sy / 2 + (y - y0 + 0.5) * sy / h,
            cx - sx / 2 + (x - x0 + 0.5) * sx / w)


def part_reference_shifts(parts: list[dict]) -> np.ndarray:
    """(parts, 2): where each part's registered frame lies against part 0's, for a plane
    processed in separate parts (``acquisition.roi_mode: separate``; ``parts`` = merged
    ``ops["parts"]`` with each part's rigid ``yoff``/``xoff``).

    The parts of a plane are recorded in the same frames, so they share one motion, but
    each is registered on a reference image of its own: a feature that part 0's registered
    frame shows at ``u + c_0`` its part ``k`` shows at ``u + c_k``, and
    ``c_k - c_0 = median_t(yoff_0 - yoff_k)`` (suite2p: ``yoff = motion - c``). Zeros for
    parts without offsets or with another number of frames."""
    out = np.zeros((len(parts), 2))
    if not parts or parts[0].get("yoff") is None:
        return out
    y0, x0 = np.asarray(parts[0]["yoff"], float).ravel(), np.asarray(parts[0]["xoff"], float).ravel()
    for k, q in enumerate(parts[1:], start=1):
        if q.get("yoff") is None or len(np.ravel(q["yoff"])) != len(y0) or len(y0) == 0:
            continue
        out[k] = (np.median(y0 - np.asarray(q["yoff"], float).ravel()),
                  np.median(x0 - np.asarray(q["xoff"], float).ravel()))
    return out


def realign_parts(img: np.ndarray, rects: list, shifts: np.ndarray) -> np.ndarray:
    """``img`` with each part's crop (``rects`` = [y0, x0, h, w]) moved by minus its
    :func:`part_reference_shifts` (subpixel, linear; edges repeated): every part then shows
    the plane as part 0's registered frame does."""
    from scipy.ndimage import shift

    out = np.array(img, np.float64)
    for (y0, x0, h, w), d in zip(rects, shifts):
        if np.any(d):
            out[y0:y0 + h, x0:x0 + w] = shift(out[y0:y0 + h, x0:x0 + w], (-d[0], -d[1]), order=1, mode="nearest")
    return out


def roi_fields(rois: Rois, rects: list) -> list:
    """Index of the part / field (``rects`` = [y0, x0, h, w] each) holding each ROI's centre
    (None: outside every one)."""
    fields = [{"rect": r} for r in rects]
    return [field_index(fields, *rois.med[i]) for i in range(rois.n)]


def move_part_rois(rois: Rois, parts: list, shifts: np.ndarray) -> Rois:
    """``rois`` of one plane with each ROI (in part ``parts[i]``) moved by minus its part's
    ``shifts[k]`` (:func:`part_reference_shifts`) into part 0's registered frame, as
    :func:`realign_parts` moves the images (ROI pixels by whole pixels, centres exactly).
    Brightness (contrast) stays as measured where the ROI was recorded. Returns a moved copy;
    ``rois`` itself (recorded positions, for crosstalk) is left as it is."""
    import copy

    rois = copy.copy(rois)
    rois.ypix, rois.xpix, rois.med = list(rois.ypix), list(rois.xpix), rois.med.copy()
    for i, k in enumerate(parts):
        if k is None or not np.any(shifts[k]):
            continue
        dy, dx = shifts[k]
        rois.ypix[i] = rois.ypix[i] - int(round(dy))
        rois.xpix[i] = rois.xpix[i] - int(round(dx))
        rois.med[i] = rois.med[i] - (dy, dx)
    return rois


def volume_um(y: float, x: float, field: int | None, fields: list | None, dy_um, dx_um):
    """(y_um, x_um) of a point at plane-0 pixel ``(y, x)`` recorded in scan field ``field``:
    the field's microscope position (:func:`field_um`) for a multi-ROI session with known
    fields, else the pixel times the pixel size (None where unknown)."""
    if fields:
        return field_um(fields[field], y, x) if field is not None else (None, None)
    return (y * dy_um if dy_um is not None else None, x * dx_um if dx_um is not None else None)
