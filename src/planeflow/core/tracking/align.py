"""Field-of-view registration between two sessions of one subject, in 3-D.

CellReg's first stage (Sheintuch et al. 2017) registers every session's field of view onto a
reference session's with a rotation and translation, optionally followed by a non-rigid
refinement. Here the field of view is a volume: one rigid transform for the whole stack
(rotation ``theta`` about the image centre, translation ``t``, and a z shift in planes), then
a smooth non-rigid warp in the plane, estimated on every plane pair at once.

Conventions (``A`` the reference session, ``B`` the moving one, common frames of both):

* a feature at B's pixel ``p`` (plane ``i``) lies at ``F(p) = R(theta) (p - c) + c + t``
  (then the warp) in A's frame, plane ``i + z_shift`` (fractional: B's plane ``i`` images the
  depth of A's plane ``i + z_shift``);
* images are moved by sampling: ``B_in_A(q) = B(G(q))`` with ``G = F^-1``.

The rotation and z shift are found by search (every angle of a grid, every integer plane
shift up to ``max_z_shift``), the translation by phase correlation summed over the plane pairs
that the z shift pairs, the fractional z shift by a parabola through the best scores of the
neighbouring plane shifts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy.ndimage import affine_transform, gaussian_filter, map_coordinates, median_filter

#: phase correlation is smoothed by a Gaussian of this sigma (px) in the image domain
CORR_SMOOTH = 1.0


@dataclass
class Transform:
    """B's common frame -> the reference's (module docstring); ``flow`` (2, Ly, Lx) is the
    non-rigid part, a displacement on the reference grid (None: rigid only)."""

    theta_deg: float = 0.0
    ty: float = 0.0
    tx: float = 0.0
    z_shift: float = 0.0
    shape: tuple[int, int] = (0, 0)
    flow: np.ndarray | None = None
    peak: float = 1.0
    quality: float = float("nan")

    @property
    def centre(self) -> np.ndarray:
        return (np.asarray(self.shape, float) - 1) / 2

    def _rot(self) -> np.ndarray:
        a = np.deg2rad(self.theta_deg)
        return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])

    def rigid_forward(self, y, x):
        """B pixel -> reference pixel, rigid part only."""
        c = self.centre
        r = self._rot()
        dy, dx = np.asarray(y, float) - c[0], np.asarray(x, float) - c[1]
        return r[0, 0] * dy + r[0, 1] * dx + c[0] + self.ty, r[1, 0] * dy + r[1, 1] * dx + c[1] + self.tx

    def rigid_inverse(self, y, x):
        """Reference pixel -> B pixel, rigid part only."""
        c = self.centre
        r = self._rot()
        dy, dx = np.asarray(y, float) - c[0] - self.ty, np.asarray(x, float) - c[1] - self.tx
        return r[0, 0] * dy + r[1, 0] * dx + c[0], r[0, 1] * dy + r[1, 1] * dx + c[1]

    def _flow_at(self, y, x):
        if self.flow is None:
            return 0.0, 0.0
        pts = np.stack([np.asarray(y, float).ravel(), np.asarray(x, float).ravel()])
        u = [map_coordinates(f, pts, order=1, mode="nearest").reshape(np.shape(y)) for f in self.flow]
        return u[0], u[1]

    def inverse(self, y, x):
        """Reference pixel -> B pixel (where to sample B)."""
        uy, ux = self._flow_at(y, x)
        return self.rigid_inverse(np.asarray(y, float) + uy, np.asarray(x, float) + ux)

    def forward(self, y, x, iterations: int = 4):
        """B pixel -> reference pixel (the warp inverted by fixed-point iteration)."""
        y0, x0 = self.rigid_forward(y, x)
        if self.flow is None:
            return y0, x0
        qy, qx = y0, x0
        for _ in range(iterations):
            uy, ux = self._flow_at(qy, qx)
            qy, qx = y0 - uy, x0 - ux
        return qy, qx

    def warp(self, img: np.ndarray) -> np.ndarray:
        """B's image in the reference frame (0 outside B's field). A rigid transform is one
        affine resampling (no coordinate grid: the rotation search warps every plane at every
        angle); a non-rigid one samples B at :meth:`inverse` of every reference pixel."""
        if self.flow is None:
            rt = self._rot().T              # reference pixel q -> B pixel R^T (q - c - t) + c
            c = self.centre
            return affine_transform(np.asarray(img, np.float32), rt, offset=c - rt @ (c + [self.ty, self.tx]),
                                    order=1, mode="constant", cval=0.0)
        yy, xx = np.mgrid[0:self.shape[0], 0:self.shape[1]].astype(float)
        sy, sx = self.inverse(yy, xx)
        return map_coordinates(np.asarray(img, np.float32), [sy, sx], order=1, mode="constant", cval=0.0)


def identity(shape) -> Transform:
    """The reference session's own transform."""
    return Transform(shape=tuple(int(v) for v in shape), peak=1.0, quality=1.0)


def prepare(img: np.ndarray, sigma: float) -> np.ndarray:
    """High-passed (Gaussian of ``sigma`` px removed), unit-variance, edge-tapered image."""
    a = np.nan_to_num(np.asarray(img, np.float64))
    a = a - gaussian_filter(a, sigma, mode="reflect")
    a = (a - a.mean()) / (a.std() + 1e-12)
    return (a * _taper(a.shape)).astype(np.float32)


def _taper(shape, frac: float = 0.1) -> np.ndarray:
    out = np.ones(shape)
    for ax, n in enumerate(shape):
        k = max(int(frac * n), 1)
        ramp = np.ones(n)
        ramp[:k] = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
        ramp[n - k:] = ramp[:k][::-1]
        out *= ramp.reshape([-1 if i == ax else 1 for i in range(len(shape))])
    return out


def _rotated(img: np.ndarray, theta_deg: float) -> np.ndarray:
    if theta_deg == 0:
        return img
    return Transform(theta_deg=theta_deg, shape=img.shape).warp(img)


def _phase_corr(fa: list, fb: list, shape: tuple | None = None) -> np.ndarray:
    """Mean phase correlation (smoothed, fft-shifted: centre = no shift) of paired spectra
    (full ones, or real-input half ones of images of ``shape``: :func:`_spectrum`); its peak at
    ``s`` means A(x) ~ B(x - s)."""
    acc = None
    for a, b in zip(fa, fb):
        x = a * np.conj(b)
        x /= np.abs(x) + 1e-6 * (np.abs(x).max() + 1e-30)
        acc = x if acc is None else acc + x
    corr = (np.real(np.fft.ifft2(acc)) if shape is None else sp_fft.irfft2(acc, s=shape)) / len(fa)
    return gaussian_filter(np.fft.fftshift(corr), CORR_SMOOTH, mode="wrap")


def _spectrum(img: np.ndarray) -> np.ndarray:
    """Half spectrum of a real image (single precision): the rotation search's FFTs."""
    return sp_fft.rfft2(np.asarray(img, np.float32))


def _peak(corr: np.ndarray, max_shift: float) -> tuple[float, float, float]:
    """(dy, dx, height) of the highest point within ``max_shift`` of the centre, subpixel."""
    H, W = corr.shape
    cy, cx = H // 2, W // 2
    m = int(np.ceil(max_shift))
    win = corr[max(cy - m, 1):min(cy + m + 1, H - 1), max(cx - m, 1):min(cx + m + 1, W - 1)]
    iy, ix = np.unravel_index(int(np.argmax(win)), win.shape)
    iy, ix = iy + max(cy - m, 1), ix + max(cx - m, 1)

    def vertex(a, b, c):
        d = a - 2 * b + c
        return 0.0 if d == 0 else float(np.clip(0.5 * (a - c) / d, -0.5, 0.5))

    dy = iy - cy + vertex(corr[iy - 1, ix], corr[iy, ix], corr[iy + 1, ix])
    dx = ix - cx + vertex(corr[iy, ix - 1], corr[iy, ix], corr[iy, ix + 1])
    return float(dy), float(dx), float(corr[iy, ix])


def _pairs(n: int, k: int) -> list[tuple[int, int]]:
    """(plane of B, plane of A) pairs for an integer z shift ``k``: B's i images A's i + k."""
    return [(i, i + k) for i in range(n) if 0 <= i + k < n]


def _rigid_score(fa: list, b_prep: np.ndarray, theta: float, ks: list[int], max_shift: float) -> dict:
    """Best translation and score per plane shift k, for B rotated by ``theta``."""
    fb = [_spectrum(_rotated(img, theta)) for img in b_prep]
    shape = b_prep.shape[1:]
    out = {}
    for k in ks:
        pr = _pairs(len(fb), k)
        if not pr:
            continue
        dy, dx, h = _peak(_phase_corr([fa[j] for _, j in pr], [fb[i] for i, _ in pr], shape), max_shift)
        out[k] = (dy, dx, h)
    return out


def rigid(a_prep: np.ndarray, b_prep: np.ndarray, *, max_rotation: float, rotation_step: float,
          max_shift: float, max_z_shift: int) -> Transform:
    """The rigid transform of B onto A (prepared stacks, :func:`prepare`): coarse angle grid,
    then a finer one around the best angle; a parabola through the scores of neighbouring angles
    and plane shifts gives the subdegree angle and the fractional z shift."""
    n = len(a_prep)
    fa = [_spectrum(img) for img in a_prep]
    ks = list(range(-min(max_z_shift, n - 1), min(max_z_shift, n - 1) + 1))
    coarse = np.arange(-max_rotation, max_rotation + 1e-9, rotation_step) if max_rotation > 0 else np.array([0.0])
    scores = {float(th): _rigid_score(fa, b_prep, float(th), ks, max_shift) for th in coarse}

    def best_of(table):
        return max(((th, k, v) for th, d in table.items() for k, v in d.items()), key=lambda x: x[2][2])

    th0, k0, _ = best_of(scores)
    if max_rotation > 0:
        fine_step = rotation_step / 4
        for th in th0 + fine_step * np.array([-3, -2, -1, 1, 2, 3]):
            if abs(th) <= max_rotation + 1e-9 and float(th) not in scores:
                scores[float(th)] = _rigid_score(fa, b_prep, float(th), ks, max_shift)
    th, k, (dy, dx, h) = best_of(scores)
    thetas = sorted(scores)
    i = thetas.index(th)
    theta = th
    if 0 < i < len(thetas) - 1:
        a, c = scores[thetas[i - 1]].get(k, (0, 0, h))[2], scores[thetas[i + 1]].get(k, (0, 0, h))[2]
        step = min(th - thetas[i - 1], thetas[i + 1] - th)
        d = a - 2 * h + c
        theta = th + (0.0 if d >= 0 else float(np.clip(0.5 * (a - c) / d, -0.5, 0.5)) * step)
    here = dict(scores[th])
    if max_z_shift > 0:
        # a shift at the limit of the search: the plane shift beyond it is scored too (never
        # chosen), so that the fractional part has a neighbour on both sides
        beyond = [j for j in (k - 1, k + 1) if j not in here and abs(j) <= n - 1]
        if beyond:
            here.update(_rigid_score(fa, b_prep, th, beyond, max_shift))
    z = float(k)
    if k - 1 in here and k + 1 in here:
        a, c = here[k - 1][2], here[k + 1][2]
        d = a - 2 * h + c
        z = k + (0.0 if d >= 0 else float(np.clip(0.5 * (a - c) / d, -0.5, 0.5)))
    elif k - 1 in here or k + 1 in here:
        # at the edge of the search: lean towards the one neighbour by its share of the score
        j = k - 1 if k - 1 in here else k + 1
        other = max(here[j][2], 0.0)
        z = k + (j - k) * 0.5 * other / (other + h) if h > 0 else float(k)
    # the translation of the peak was found for the image rotated about its centre: it is t
    return Transform(theta_deg=float(theta), ty=dy, tx=dx, z_shift=float(z), shape=a_prep.shape[1:], peak=h)


def plane_pairs(n: int, z_shift: float) -> list[tuple[int, int]]:
    """(B plane, A plane) pairs the z shift rounds to."""
    return _pairs(n, int(np.round(z_shift)))


def nonrigid(a_prep: np.ndarray, b_prep: np.ndarray, t: Transform, *, block: int, max_shift: float) -> np.ndarray:
    """The non-rigid flow (2, Ly, Lx) after the rigid ``t``: blocks of ``block`` px at half-block
    steps, each block's displacement by phase correlation summed over the paired planes, weak
    blocks (peak below half the median) and outliers (3 x 3 median) replaced, then interpolated
    smoothly to every pixel."""
    Ly, Lx = t.shape
    pr = plane_pairs(len(a_prep), t.z_shift)
    warped = {i: t.warp(b_prep[i]) for i, _ in pr}
    block = int(min(block, Ly, Lx))
    step = max(block // 2, 1)
    ys = list(range(0, max(Ly - block, 0) + 1, step))
    xs = list(range(0, max(Lx - block, 0) + 1, step))
    win = _taper((block, block), 0.25)
    u = np.zeros((2, len(ys), len(xs)))
    h = np.zeros((len(ys), len(xs)))
    for iy, y0 in enumerate(ys):
        for ix, x0 in enumerate(xs):
            fa, fb = [], []
            for i, j in pr:
                a = a_prep[j][y0:y0 + block, x0:x0 + block] * win
                b = warped[i][y0:y0 + block, x0:x0 + block] * win
                fa.append(np.fft.fft2(a))
                fb.append(np.fft.fft2(b))
            dy, dx, hh = _peak(_phase_corr(fa, fb), max_shift)
            u[:, iy, ix] = (-dy, -dx)      # A(q) ~ B_rigid(q + u)
            h[iy, ix] = hh
    ok = h >= 0.5 * np.median(h)
    for c in range(2):
        filled = np.where(ok, u[c], np.nan)
        med = median_filter(np.nan_to_num(filled, nan=np.nanmedian(filled) if ok.any() else 0.0), size=3,
                            mode="nearest")
        bad = ~ok | (np.abs(u[c] - med) > 1.5)
        u[c][bad] = med[bad]
    u = np.clip(u, -max_shift, max_shift)
    cy = (np.asarray(ys, float) + (block - 1) / 2)
    cx = (np.asarray(xs, float) + (block - 1) / 2)
    yy, xx = np.mgrid[0:Ly, 0:Lx].astype(float)
    gy = np.interp(yy[:, 0], cy, np.arange(len(cy)))
    gx = np.interp(xx[0], cx, np.arange(len(cx)))
    GY, GX = np.meshgrid(gy, gx, indexing="ij")
    return np.stack([map_coordinates(gaussian_filter(u[c], 0.5, mode="nearest"), [GY, GX], order=1,
                                     mode="nearest") for c in range(2)]).astype(np.float32)


def quality(a_prep: np.ndarray, b_prep: np.ndarray, t: Transform) -> float:
    """Mean Pearson correlation of the paired prepared planes after the transform, over the
    pixels both sessions imaged."""
    vals = []
    for i, j in plane_pairs(len(a_prep), t.z_shift):
        b = t.warp(b_prep[i])
        cover = t.warp(np.ones(t.shape, np.float32)) > 0.99
        a = a_prep[j]
        if cover.sum() < 16:
            continue
        va, vb = a[cover], b[cover]
        vals.append(float(np.corrcoef(va, vb)[0, 1]))
    return float(np.mean(vals)) if vals else float("nan")


def register(a_means: np.ndarray, b_means: np.ndarray, *, sigma: float, max_rotation: float,
             rotation_step: float, max_shift: float, max_z_shift: int, nonrigid_on: bool,
             block: int, max_nonrigid: float) -> Transform:
    """B's mean-image stack onto A's: rigid (:func:`rigid`), then non-rigid (:func:`nonrigid`)."""
    a_prep = np.stack([prepare(m, sigma) for m in a_means])
    b_prep = np.stack([prepare(m, sigma) for m in b_means])
    t = rigid(a_prep, b_prep, max_rotation=max_rotation, rotation_step=rotation_step, max_shift=max_shift,
              max_z_shift=max_z_shift)
    if nonrigid_on and max_nonrigid > 0:
        t.flow = nonrigid(a_prep, b_prep, t, block=block, max_shift=max_nonrigid)
    t.quality = quality(a_prep, b_prep, t)
    return t
