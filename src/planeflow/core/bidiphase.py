"""Bidirectional (resonant) scan-phase offset: estimate, correct and plant.

In bidirectional scanning, even lines (0, 2, 4, ...) are acquired left to right and
odd lines (1, 3, 5, ...) right to left; a timing error moves every odd line
horizontally relative to the even lines by the same few pixels.

Sign convention (one number, ``offset``, in pixels along x):

* ``offset = d`` means the odd lines are displaced by ``+d`` relative to the even
  lines, i.e. ``odd_row[x] == true_row[x - d]`` (content moved towards larger x).
* :func:`plant_bidiphase` creates that displacement: odd lines shifted by ``+d``.
* :func:`estimate_bidiphase` returns ``d`` (the displacement present in the data).
* :func:`apply_bidiphase` undoes it: odd lines shifted by ``-d``, so that
  ``apply_bidiphase(plant_bidiphase(img, d), d) ≈ img`` and
  ``apply_bidiphase(x, estimate_bidiphase(x))`` corrects ``x``.

Note: suite2p's ``bidiphase`` (``suite2p.registration.bidiphase.compute`` and the
``bidiphase`` setting) is the shift applied to the odd lines, i.e. ``-offset`` here.

Even lines are never modified. Shifts use edge replication (pixels that would come
from outside the line take the nearest edge pixel); integer shifts are exact copies,
fractional shifts use linear interpolation between the two neighbouring pixels.
"""
from __future__ import annotations

import math

import numpy as np

from planeflow import PlaneflowError

__all__ = ["estimate_bidiphase", "apply_bidiphase", "plant_bidiphase"]


def _as_stack(frames) -> np.ndarray:
    a = np.asarray(frames)
    if a.ndim == 2:
        a = a[np.newaxis]
    if a.ndim != 3:
        raise PlaneflowError(
            f"bidiphase: expected frames of shape (n, Ly, Lx) or one image (Ly, Lx), "
            f"got an array of shape {a.shape}; pass one plane's frames."
        )
    return a


def _mean_image(frames: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Float64 mean over frames, accumulated in chunks (no full float copy)."""
    n = frames.shape[0]
    if n == 0:
        raise PlaneflowError("bidiphase: no frames given to estimate the offset from; "
                             "pass at least one frame.")
    acc = np.zeros(frames.shape[1:], dtype=np.float64)
    for i in range(0, n, chunk):
        acc += frames[i:i + chunk].sum(axis=0, dtype=np.float64)
    return acc / n


def _cross_power(mean_img: np.ndarray) -> np.ndarray:
    """Weighted normalised cross-power spectrum (along x) of odd rows vs even rows.

    Its inverse DFT peaks at lag ``s`` where ``odd[x] ≈ even[x - s]``. The
    cross-power is summed over the row pairs, normalised to unit magnitude (phase
    correlation) and weighted per frequency by ``g / (1 - g)``, where ``g`` is the
    magnitude-squared coherence between odd and even rows estimated over the row
    pairs (generalised cross-correlation, Hannan-Thomson weighting). Plain phase
    correlation gives equal weight to the high spatial frequencies, which in a
    smooth two-photon image hold only noise, and then fails on noisy data.
    """
    even = mean_img[0::2]
    odd = mean_img[1::2]
    if len(even) >= 2:
        # compare odd line 2k+1 with the mean of even lines 2k and 2k+2, an estimate of
        # the scene at the same height: otherwise slanted structures bias the offset
        n = min(len(even) - 1, len(odd))
        even = 0.5 * (even[:n] + even[1:n + 1])
    else:
        n = min(len(even), len(odd))
        even = even[:n]
    odd = odd[:n]
    # remove each row's mean and taper the line ends: the images are not periodic in
    # x and the wrap-around jump would otherwise pull the peak towards lag 0
    Lx = mean_img.shape[1]
    taper = np.hanning(Lx + 2)[1:-1]
    even = (even - even.mean(axis=1, keepdims=True)) * taper
    odd = (odd - odd.mean(axis=1, keepdims=True)) * taper
    fe = np.fft.fft(even, axis=1)
    fo = np.fft.fft(odd, axis=1)
    r = (fo * np.conj(fe)).sum(axis=0)
    r[0] = 0.0  # the DC term carries no position information
    mag = np.abs(r)
    top = mag.max() if mag.size else 0.0
    if top <= 0:
        return np.zeros_like(r)
    power = (np.abs(fo) ** 2).sum(axis=0) * (np.abs(fe) ** 2).sum(axis=0)
    coh = np.clip(mag ** 2 / np.maximum(power, 1e-300), 0.0, 0.999)
    return r / (mag + 1e-12 * top) * (coh / (1.0 - coh))


def _cc_at(r: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Inverse DFT of the Hermitian spectrum ``r`` evaluated at fractional lags.

    With signed frequencies the conjugate pairs sum to real values, and the Nyquist
    term (real) contributes ``r_N cos(pi * lag)``: the real part is the band-limited
    interpolation of the correlation.
    """
    Lx = r.size
    k = np.fft.fftfreq(Lx) * Lx
    ph = np.exp(2j * np.pi * np.outer(lags, k) / Lx)
    return (ph @ r).real / Lx


def estimate_bidiphase(frames, max_offset: int = 10, subpixel: bool = False,
                       upsample: int = 10) -> float:
    """Estimate the x-offset of odd lines relative to even lines.

    Parameters
    ----------
    frames : array (n, Ly, Lx) or (Ly, Lx)
        Frames of one plane (a few hundred are plenty); their mean image is used.
    max_offset : int
        Largest offset (pixels) searched for, in either direction (reduced to
        ``(Lx - 1) // 2`` for narrower images).
    subpixel : bool
        If False, return the best integer offset. If True, remove the integer offset
        from the odd lines and locate the residual peak of the correlation (evaluated
        as a band-limited function on a grid ``upsample`` times finer than a pixel
        within +-1 px, then a parabola through the best grid point and its neighbours).
    upsample : int
        Upsampling factor of the subpixel grid (>= 1).

    Returns
    -------
    float
        ``d`` such that ``odd_row[x] ≈ even_row[x - d]``; pass it to
        :func:`apply_bidiphase` to correct the frames (suite2p's ``bidiphase`` is ``-d``).
    """
    stack = _as_stack(frames)
    _, Ly, Lx = stack.shape
    if Ly < 2:
        raise PlaneflowError(f"bidiphase: frames have {Ly} line(s); at least 2 are needed "
                             "to compare odd and even lines.")
    max_offset = int(max_offset)
    if max_offset < 0:
        raise PlaneflowError(f"bidiphase: max_offset={max_offset} must be >= 0.")
    max_offset = min(max_offset, (Lx - 1) // 2)
    upsample = int(upsample)
    if upsample < 1:
        raise PlaneflowError(f"bidiphase: upsample={upsample} must be >= 1.")

    mean_img = _mean_image(stack)
    best = _integer_peak(mean_img, max_offset)
    if not subpixel:
        return float(best)
    # Remove the integer part exactly (a copy with edges replicated), then locate the
    # residual peak within +-1 px. Measuring the residual near lag 0 avoids the bias
    # towards 0 that the line-end taper gives larger lags.
    resid_img = _shift_odd_lines(mean_img, -best)
    r = _cross_power(resid_img)
    if not np.any(r):
        return float(best)
    fine = np.arange(-upsample, upsample + 1) / upsample
    fv = _cc_at(r, fine)
    i = int(np.argmax(fv))
    step = 1.0 / upsample
    frac = float(fine[i])
    if 0 < i < len(fv) - 1:
        y0, y1, y2 = fv[i - 1], fv[i], fv[i + 1]
        denom = y0 - 2 * y1 + y2
        if denom < 0:
            frac += step * 0.5 * (y0 - y2) / denom
    return float(np.clip(best + frac, -max_offset, max_offset))


def _integer_peak(mean_img: np.ndarray, max_offset: int) -> int:
    r = _cross_power(mean_img)
    if not np.any(r):
        return 0  # flat image: no information, no correction
    Lx = r.size
    cc = np.fft.ifft(r).real
    lags = np.arange(-max_offset, max_offset + 1)
    vals = cc[lags % Lx]
    # ties (e.g. a featureless image) resolve to the smallest |lag|
    order = np.argsort(np.abs(lags), kind="stable")
    return int(lags[order][int(np.argmax(vals[order]))])


def _int_shift_into(dst: np.ndarray, src: np.ndarray, s: int) -> None:
    """``dst[..., x] = src[..., clip(x - s, 0, Lx - 1)]`` by slicing (edges replicated)."""
    Lx = src.shape[-1]
    if s == 0:
        dst[...] = src
    elif abs(s) >= Lx:
        dst[...] = src[..., :1] if s > 0 else src[..., -1:]
    elif s > 0:
        dst[..., s:] = src[..., :Lx - s]
        dst[..., :s] = src[..., :1]
    else:
        s = -s
        dst[..., :Lx - s] = src[..., s:]
        dst[..., Lx - s:] = src[..., -1:]


def _shift_odd_lines(frames, shift: float) -> np.ndarray:
    """Return a copy of ``frames`` with odd lines shifted by ``shift`` along x.

    ``out[..., y_odd, x] = in[..., y_odd, x - shift]``, edges replicated; a
    fractional shift interpolates linearly between the two neighbouring pixels.
    """
    a = np.asarray(frames)
    if a.ndim < 2:
        raise PlaneflowError(f"bidiphase: expected frames (..., Ly, Lx), got shape {a.shape}.")
    shift = float(shift)
    if not math.isfinite(shift):
        raise PlaneflowError(f"bidiphase: offset {shift} is not a finite number.")
    out = a.copy()
    if shift == 0 or a.shape[-2] < 2 or a.shape[-1] == 0:
        return out
    src = a[..., 1::2, :]
    dst = out[..., 1::2, :]
    n = math.floor(shift)
    f = shift - n
    if f == 0:
        _int_shift_into(dst, src, n)
        return out

    # x - shift lies between pixels x - n - 1 (weight f) and x - n (weight 1 - f)
    # float32 is exact enough for <=16-bit integers and float32 data; else float64
    work = np.float32 if a.dtype.itemsize <= (4 if a.dtype.kind == "f" else 2) else np.float64
    lo = np.empty(src.shape, dtype=work)
    hi = np.empty(src.shape, dtype=work)
    _int_shift_into(lo, src, n)
    _int_shift_into(hi, src, n + 1)
    lo *= 1.0 - f
    hi *= f
    lo += hi
    del hi
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        np.rint(lo, out=lo)
        np.clip(lo, info.min, info.max, out=lo)
    elif a.dtype.kind == "b":
        lo = lo >= 0.5
    dst[...] = lo
    return out


def apply_bidiphase(frames, offset: float) -> np.ndarray:
    """Correct a bidirectional offset: shift odd lines (1, 3, 5, ...) by ``-offset``.

    ``frames`` is (n, Ly, Lx) or (Ly, Lx) (any leading axes work); returns a new
    array of the same shape and dtype; even lines are unchanged. ``offset`` is what
    :func:`estimate_bidiphase` returns. Integer offsets are exact copies (edges
    replicated); fractional ones use linear interpolation, rounded for integer dtypes.
    """
    return _shift_odd_lines(frames, -float(offset))


def plant_bidiphase(frames, offset: float) -> np.ndarray:
    """Create a bidirectional offset: shift odd lines by ``+offset`` (tests, simulator).

    ``estimate_bidiphase(plant_bidiphase(x, d))`` ≈ ``d`` and
    ``apply_bidiphase(plant_bidiphase(x, d), d)`` ≈ ``x`` (exact away from the
    line ends for integer ``d``).
    """
    return _shift_odd_lines(frames, float(offset))
