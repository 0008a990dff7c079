"""Synthetic volumetric two-photon calcium-imaging sessions with planted ground truth.

:func:`simulate_session` writes a ScanImage-like recording (multi-page int16 TIFF,
planes interleaved with the plane index innermost) together with a
``ground_truth.npz`` describing exactly what was planted: cell masks and
footprints, noise-free calcium traces, spikes and the rigid motion of every volume.

Image model, per plane (all intensities in expected photons per pixel per frame)::

    lam(t, y, x) = S(y, x) + N(y, x) * (1 + a_0(t) + sum_k a_k(t) * P_k(y, x))
                   + sum_c F0_c * A_c(y, x) * (1 + dff_c * C_c(t))

* ``S`` static background: fine and coarse tissue texture darkened by a few blood
  vessels (gives registration something to lock onto),
* ``N`` neuropil brightness (smooth, shadowed by vessels), modulated slowly (seconds)
  by a spatially uniform component ``a_0`` and a few weak components ``a_k`` with
  smooth zero-mean spatial weights ``P_k``,
* ``A_c`` soft elliptical soma footprint (peak 1), ``F0_c`` its resting brightness,
  ``dff_c`` the dF/F of a single spike and ``C_c`` the calcium trace: spike counts
  convolved with ``exp(-t / tau)`` (one spike adds 1). Spikes come in sparse events
  (Poisson, 0.03-0.15 Hz per cell, at least ``MIN_EVENTS`` per cell) of
  ``MIN_BURST + Poisson(BURST_EXTRA)`` spikes, i.e. every planted cell is an active,
  detectable neuron.

The data written are ``round(GAIN * Poisson(lam) + ReadNoise)`` (or
``round(GAIN * lam)`` with ``noise=False``), stored as int16.

Motion: the planes are rendered on a canvas ``max_shift`` pixels larger on every
side, and volume ``v`` is the window ``canvas[m - dy : m - dy + Ly, m - dx : m - dx + Lx]``
with ``m = max_shift`` and ``(dy, dx) = shifts[v]``. Hence a feature at ``(y, x)`` of
the un-shifted field of view (the ``shifts == 0`` window, in which ``labels``,
``footprints`` and ``centers`` are given) appears at ``(y + dy, x + dx)`` in the
frames of volume ``v``: ``shifts`` is the displacement of the image content,
positive ``dy`` = content moved down (towards larger row index), positive ``dx`` =
moved right. All planes of a volume share the shift; no wrap-around occurs.

Brightness and activity were tuned against suite2p 1.1.0 (sparsery detection) so that,
with ``fs``, ``tau`` and ``diameter`` matching the simulation, suite2p finds the planted
cells (recall and precision >= 0.9 per plane) and recovers the motion exactly. For
128 x 128 frames with ~20 cells, two suite2p settings need attention:
``registration.block_size`` should be below the frame size (planeflow otherwise adapts
it, see ``planeflow.steps.registration.fit_blocks``), and
sparsery's automatic spatial-scale estimate is unreliable with so few cells, so
``detection.sparsery_settings.spatial_scale = 2`` (12 px, for diameter ~10) is advised.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from planeflow import PlaneflowError

# ----------------------------------------------------------------------------- model constants
GAIN = 2.0                 # digitiser counts per detected photon
READ_NOISE = 1.0           # std of additive electronic noise, in counts
BACKGROUND = 5.0           # mean static background, photons/pixel/frame
TEXTURE_FINE = 0.4         # relative std of the fine static texture of the background
TEXTURE_FINE_SIGMA = 1.5   # its spatial scale (gaussian sigma, px)
TEXTURE_COARSE = 0.2       # relative std of the coarse (sigma 8 px) static texture
NEUROPIL = 4.0             # mean neuropil, photons/pixel/frame
NEUROPIL_MOD = 0.2         # std of the slow, spatially uniform neuropil modulation (relative)
NEUROPIL_LOCAL = 0.08      # std of the slow, spatially varying part (relative)
NEUROPIL_NCOMP = 3         # number of slow spatially varying components per plane
NEUROPIL_SCALE = 25.0      # spatial scale (gaussian sigma, px) of neuropil structure
NEUROPIL_CONTRAST = 0.3    # relative std of the static neuropil brightness field
NEUROPIL_VESSEL = 0.5      # fraction of neuropil light blocked by vessels
NEUROPIL_TIMESCALE = 3.0   # seconds
CELL_F0 = (6.0, 10.0)      # resting soma brightness at the footprint peak (uniform range)
CELL_DFF = (0.6, 1.0)      # dF/F per spike (uniform range)
RATE = (0.03, 0.15)        # mean event rate per cell in Hz (log-uniform range)
MIN_EVENTS = 3             # at least this many events per cell (fewer if nframes < 3)
MIN_BURST = 2              # spikes per event: MIN_BURST + Poisson(BURST_EXTRA)
BURST_EXTRA = 1.0
LABEL_FRACTION = 0.5       # label pixels where footprint > LABEL_FRACTION * its peak
MIN_DIST_FACTOR = 1.3      # minimum centre distance, in diameters
FOOTPRINT_MAX_BYTES = 64 * 2**20   # save footprints in the npz only when this small
BATCH_PIXELS = 4 * 2**20           # float64 pixels rendered per batch (about 32 MB)


def _smooth_field(rng, shape, sigma):
    """Zero-mean, unit-std spatially smooth random field."""
    f = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-12)


def _vessels(rng, shape, nvessels):
    """A map in [0, 1] of a few smooth curvilinear dark structures (blood vessels)."""
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W].astype(float)
    out = np.zeros(shape)
    for _ in range(nvessels):
        # a wavy line crossing the field: y = y0 + slope*x + A sin(...) in a random rotation
        theta = rng.uniform(0, np.pi)
        c, s = np.cos(theta), np.sin(theta)
        u = (xx - W / 2) * c + (yy - H / 2) * s       # along the vessel
        v = -(xx - W / 2) * s + (yy - H / 2) * c      # across
        off = rng.uniform(-0.35, 0.35) * min(H, W)
        amp = rng.uniform(2, 6)
        per = rng.uniform(30, 80)
        ph = rng.uniform(0, 2 * np.pi)
        width = rng.uniform(1.5, 3.0)
        d = v - off - amp * np.sin(2 * np.pi * u / per + ph)
        out = np.maximum(out, np.exp(-0.5 * (d / width) ** 2))
    return out


def _place_cells(rng, n, Ly, Lx, margin, min_dist, max_tries=20000):
    """Centres (y, x) in un-shifted FOV coordinates with a minimum pairwise distance."""
    lo_y, hi_y = margin, Ly - 1 - margin
    lo_x, hi_x = margin, Lx - 1 - margin
    if hi_y <= lo_y or hi_x <= lo_x:
        raise PlaneflowError(f"field of view {Ly}x{Lx} too small for cells with margin {margin}; "
                             "reduce max_shift or diameter")
    pts: list[tuple[float, float]] = []
    tries = 0
    while len(pts) < n:
        tries += 1
        if tries > max_tries:
            raise PlaneflowError(f"could not place {n} non-overlapping cells of min distance "
                                 f"{min_dist:.1f} px in a {Ly}x{Lx} field; reduce cells_per_plane")
        p = (rng.uniform(lo_y, hi_y), rng.uniform(lo_x, hi_x))
        if all((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2 >= min_dist ** 2 for q in pts):
            pts.append(p)
    return np.array(pts, dtype=float).reshape(n, 2)


def _footprint(rng, center, radius, shape, edge=0.12):
    """Soft ellipse (peak 1) around ``center``; returns (patch, y0, x0) on ``shape``."""
    H, W = shape
    ecc = rng.uniform(0.0, 0.15)
    a, b = radius * (1 + ecc), radius * (1 - ecc)          # semi-axes
    phi = rng.uniform(0, np.pi)
    ext = int(np.ceil(max(a, b) * 1.6)) + 1
    cy, cx = center
    y0, y1 = max(int(np.floor(cy)) - ext, 0), min(int(np.floor(cy)) + ext + 2, H)
    x0, x1 = max(int(np.floor(cx)) - ext, 0), min(int(np.floor(cx)) + ext + 2, W)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(float)
    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(phi) + dy * np.sin(phi)
    v = -dx * np.sin(phi) + dy * np.cos(phi)
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    patch = 1.0 / (1.0 + np.exp((rho - 1.0) / edge))
    # mild intracellular brightness texture, kept smooth
    tex = 1.0 + 0.1 * gaussian_filter(rng.standard_normal(patch.shape), 1.0)
    patch = patch * tex
    patch /= patch.max()
    patch[patch < 1e-3] = 0.0
    return patch, y0, x0


def _spikes_and_calcium(rng, ncells, nframes, fs, tau):
    """Spike counts per frame and calcium (spikes * exp(-t/tau), one spike adds 1)."""
    rates = np.exp(rng.uniform(np.log(RATE[0]), np.log(RATE[1]), ncells))      # events / s
    events = rng.random((ncells, nframes)) < (rates[:, None] / fs)
    # every planted cell is an active neuron: guarantee a few events per cell
    need = min(MIN_EVENTS, nframes)
    for c in range(ncells):
        short = need - int(events[c].sum())
        if short > 0:
            events[c, rng.choice(np.flatnonzero(~events[c]), short, replace=False)] = True
    burst = MIN_BURST + rng.poisson(BURST_EXTRA, (ncells, nframes))
    spikes = np.where(events, burst, 0).astype(np.float32)
    decay = np.exp(-1.0 / (tau * fs))
    calcium = np.zeros_like(spikes)
    acc = np.zeros(ncells, dtype=np.float64)
    for t in range(nframes):
        acc = acc * decay + spikes[:, t]
        calcium[:, t] = acc
    return spikes, calcium


class _Plane:
    """Everything needed to render one plane, on the canvas."""

    def __init__(self, rng, *, Ly, Lx, m, ncells, diameter, nframes, fs, tau):
        H, W = Ly + 2 * m, Lx + 2 * m
        self.m = m
        radius = diameter / 2.0
        # static background: smooth texture (two scales) darkened by vessels
        tex = (1.0 + TEXTURE_FINE * _smooth_field(rng, (H, W), TEXTURE_FINE_SIGMA)
               + TEXTURE_COARSE * _smooth_field(rng, (H, W), 8.0))
        ves = _vessels(rng, (H, W), nvessels=int(rng.integers(2, 4)))
        self.static = BACKGROUND * np.clip(tex, 0.2, None) * (1.0 - 0.75 * ves)
        # neuropil: smooth field with slow components
        self.npil = NEUROPIL * np.clip(1.0 + NEUROPIL_CONTRAST *
                                       _smooth_field(rng, (H, W), NEUROPIL_SCALE), 0.2, None)
        self.npil *= (1.0 - NEUROPIL_VESSEL * ves)
        # component 0 is spatially uniform, the others vary smoothly (zero-mean maps)
        maps = [np.ones((H, W))] + [_smooth_field(rng, (H, W), NEUROPIL_SCALE)
                                    for _ in range(NEUROPIL_NCOMP)]
        self.npil_maps = np.stack(maps)
        w = gaussian_filter1d(rng.standard_normal((NEUROPIL_NCOMP + 1, nframes)),
                              NEUROPIL_TIMESCALE * fs, axis=1, mode="reflect")
        w = (w - w.mean(axis=1, keepdims=True)) / (w.std(axis=1, keepdims=True) + 1e-12)
        amp = np.r_[NEUROPIL_MOD, np.full(NEUROPIL_NCOMP, NEUROPIL_LOCAL / np.sqrt(NEUROPIL_NCOMP))]
        self.npil_t = amp[:, None] * w                                       # (K, T)
        # cells
        margin = m + radius * 1.15 + 1.0            # max semi-axis is radius * 1.15
        self.centers = _place_cells(rng, ncells, Ly, Lx, margin, MIN_DIST_FACTOR * diameter)
        self.patches = []
        for c in self.centers:
            patch, y0, x0 = _footprint(rng, c + m, radius, (H, W))
            self.patches.append((patch, y0, x0))
        self.f0 = rng.uniform(*CELL_F0, ncells)
        self.dff = rng.uniform(*CELL_DFF, ncells)
        self.spikes, self.calcium = _spikes_and_calcium(rng, ncells, nframes, fs, tau)
        self.Ly, self.Lx = Ly, Lx

    def footprint(self, k):
        """Footprint of cell k (peak 1) in un-shifted FOV coordinates, (Ly, Lx)."""
        H, W = self.Ly + 2 * self.m, self.Lx + 2 * self.m
        canvas = np.zeros((H, W), dtype=np.float32)
        patch, y0, x0 = self.patches[k]
        canvas[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]] = patch
        return canvas[self.m:self.m + self.Ly, self.m:self.m + self.Lx]

    def render(self, t0, t1):
        """Expected photons on the canvas for volumes t0:t1, shape (t1-t0, H, W)."""
        K = self.npil_maps.shape[0]
        mod = 1.0 + np.tensordot(self.npil_t[:, t0:t1].T, self.npil_maps.reshape(K, -1), axes=1)
        np.clip(mod, 0.1, None, out=mod)
        out = self.static[None] + self.npil[None] * mod.reshape(t1 - t0, *self.static.shape)
        for k, (patch, y0, x0) in enumerate(self.patches):
            amp = self.f0[k] * (1.0 + self.dff[k] * self.calcium[k, t0:t1])
            out[:, y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]] += amp[:, None, None] * patch
        return np.clip(out, 0.0, None, out=out)


def _draw_shifts(rng, nframes, max_shift, fs):
    """Integer (dy, dx) per volume: bounded slow drift plus jitter, |shift| <= max_shift."""
    if max_shift <= 0:
        return np.zeros((nframes, 2), dtype=np.int64)
    drift = gaussian_filter1d(rng.standard_normal((2, nframes)), 2.0 * fs, axis=1, mode="reflect")
    drift -= drift.mean(axis=1, keepdims=True)
    drift = drift / (drift.std(axis=1, keepdims=True) + 1e-12) * (0.4 * max_shift)
    jitter = rng.normal(0.0, 0.35 * max_shift, (2, nframes))
    # occasional brief larger displacements (e.g. animal movement)
    jumps = rng.random(nframes) < 0.02
    jitter[:, jumps] += rng.choice([-1, 1], (2, int(jumps.sum()))) * max_shift
    s = np.clip(np.rint(drift + jitter), -max_shift, max_shift).astype(np.int64)
    return s.T.copy()


def simulate_session(out_dir, *, nplanes=3, nframes=600, Ly=128, Lx=128, cells_per_plane=20,
                     diameter=10, fs=15.0, tau=1.0, max_shift=3, nfiles=1, seed=0,
                     name="synthetic", noise=True, brightness=None) -> dict:
    """Write a synthetic volumetric recording and its ground truth into ``out_dir``.

    Parameters
    ----------
    out_dir : path-like
        Folder to write into (created if needed).
    nplanes, nframes : int
        Number of planes and of volumes (``nframes`` = frames per plane).
    Ly, Lx : int
        Frame size in pixels.
    cells_per_plane : int
        Number of planted neurons in every plane.
    diameter : float
        Approximate soma diameter in pixels (elliptical, +-15 %).
    fs, tau : float
        Volume rate (frames per second per plane) and calcium decay time in s.
    max_shift : int
        Bound on the rigid integer motion, ``|dy|, |dx| <= max_shift``.
    nfiles : int
        Number of TIFF files; volumes are split as evenly as possible, whole volumes
        per file, files named ``f"{name}_{k:05d}.tif"`` for k = 1..nfiles.
    seed : int
        Seed; the output is fully determined by the seed and the parameters.
    noise : bool
        With False, write the rounded expected intensities (no shot/read noise).
    brightness : sequence of float, optional
        One factor per plane on that plane's expected photons (default: 1 for every
        plane). At 1 a plane has about 9 photons per pixel per frame on average
        (background + neuropil + cells); e.g. 0.035 gives a dim plane of about 0.3
        (a deep plane, or a beam with low power). Motion, cells and activity stay the
        same; only the light and hence the shot noise change. Recorded in the ground
        truth as ``brightness`` and ``mean_photons`` (per plane) when given.

    Files
    -----
    TIFF pages: page ``i`` (counted over all files in order) is plane ``i % nplanes``
    of volume ``i // nplanes`` (ScanImage order), int16, no metadata.

    ``ground_truth.npz`` keys:
    ``nplanes, Ly, Lx, nframes, fs, tau, diameter, max_shift, seed, gain``
    (scalars); ``labels`` int32 (nplanes, Ly, Lx), 0 = background, k = cell k
    (1-based, per plane), pixels where the footprint exceeds ``LABEL_FRACTION`` of
    its peak; ``footprints`` float32 (nplanes, ncells, Ly, Lx), peak 1 (only if
    smaller than 64 MiB); ``centers`` float64 (nplanes, ncells, 2) as (y, x);
    ``traces`` float32 (nplanes, ncells, nframes) noise-free calcium (one spike
    adds 1, decays with ``tau``); ``spikes`` float32 (nplanes, ncells, nframes)
    spike counts per volume; ``f0``, ``dff`` float64 (nplanes, ncells) resting
    brightness (photons/frame at the footprint peak) and dF/F per spike;
    ``shifts`` float64 (nframes, 2) as (dy, dx).

    Coordinates and sign convention: ``labels``, ``footprints`` and ``centers``
    are in the un-shifted field of view. ``shifts[v] = (dy, dx)`` is the
    displacement of the image content in volume ``v`` relative to it: whatever
    lies at ``(y, x)`` in the un-shifted field lies at ``(y + dy, x + dx)`` in
    every plane's frame of volume ``v`` (frame ``= canvas[m-dy : m-dy+Ly,
    m-dx : m-dx+Lx]`` of a canvas with margin ``m = max_shift``). suite2p's rigid
    offsets ``yoff, xoff`` follow the same sign (content displacement relative to
    its reference image) up to a constant, see
    :func:`planeflow.synth.groundtruth.registration_error`.

    Returns
    -------
    dict with ``files`` (list of str, in page order), ``ground_truth`` (str) and
    the parameters.
    """
    import tifffile

    nplanes, nframes, Ly, Lx = int(nplanes), int(nframes), int(Ly), int(Lx)
    ncells, m, nfiles = int(cells_per_plane), int(max_shift), int(nfiles)
    if nplanes < 1 or nframes < 1 or ncells < 0 or m < 0:
        raise ValueError("nplanes and nframes must be >= 1, cells_per_plane and max_shift >= 0")
    if not 1 <= nfiles <= nframes:
        raise ValueError(f"nfiles must be between 1 and nframes ({nframes}), got {nfiles}")
    scale = np.ones(nplanes) if brightness is None else np.asarray(brightness, dtype=float).ravel()
    if scale.shape != (nplanes,) or not np.all(scale > 0):
        raise ValueError(f"brightness must give one factor > 0 per plane ({nplanes}), got {brightness}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    ss = np.random.SeedSequence(int(seed))
    s_motion, s_noise, *s_planes = ss.spawn(2 + nplanes)
    shifts = _draw_shifts(np.random.default_rng(s_motion), nframes, m, fs)
    planes = [_Plane(np.random.default_rng(s), Ly=Ly, Lx=Lx, m=m, ncells=ncells,
                     diameter=float(diameter), nframes=nframes, fs=float(fs), tau=float(tau))
              for s in s_planes]

    def noise_rng(v, p):
        # one stream per (volume, plane): the noise does not depend on batching or nfiles
        return np.random.default_rng(np.random.SeedSequence(
            s_noise.entropy, spawn_key=tuple(s_noise.spawn_key) + (int(v), int(p))))

    # whole volumes per file, as even as possible
    bounds = np.linspace(0, nframes, nfiles + 1).round().astype(int)
    files = [out_dir / f"{name}_{k + 1:05d}.tif" for k in range(nfiles)]
    H, W = Ly + 2 * m, Lx + 2 * m
    batch = max(1, BATCH_PIXELS // (H * W))
    bigtiff = nframes * nplanes * Ly * Lx * 2 / nfiles > 3.5e9
    photon_sum = np.zeros(nplanes)

    for k, path in enumerate(files):
        with tifffile.TiffWriter(path, bigtiff=bigtiff) as tw:
            for t0 in range(bounds[k], bounds[k + 1], batch):
                t1 = min(t0 + batch, bounds[k + 1])
                vol = np.empty((t1 - t0, nplanes, Ly, Lx), dtype=np.int16)
                for p, pl in enumerate(planes):
                    lam = pl.render(t0, t1)
                    if brightness is not None:
                        lam *= scale[p]
                    for i, (dy, dx) in enumerate(shifts[t0:t1]):
                        win = lam[i, m - dy:m - dy + Ly, m - dx:m - dx + Lx]
                        photon_sum[p] += win.mean()
                        if noise:
                            rng = noise_rng(t0 + i, p)
                            val = GAIN * rng.poisson(win) + READ_NOISE * rng.standard_normal(win.shape)
                        else:
                            val = GAIN * win
                        vol[i, p] = np.clip(np.rint(val), -32768, 32767)
                    del lam
                # pages in ScanImage order: volume-major, plane innermost
                for page in vol.reshape(-1, Ly, Lx):
                    tw.write(page, photometric="minisblack", contiguous=False, metadata=None)

    # ground truth
    labels = np.zeros((nplanes, Ly, Lx), dtype=np.int32)
    save_fp = nplanes * ncells * Ly * Lx * 4 <= FOOTPRINT_MAX_BYTES
    footprints = np.zeros((nplanes, ncells, Ly, Lx), dtype=np.float32) if save_fp else None
    for p, pl in enumerate(planes):
        for c in range(ncells):
            fp = pl.footprint(c)
            labels[p][fp > LABEL_FRACTION * fp.max()] = c + 1
            if save_fp:
                footprints[p, c] = fp
    gt = dict(
        nplanes=nplanes, Ly=Ly, Lx=Lx, nframes=nframes, fs=float(fs), tau=float(tau),
        diameter=float(diameter), max_shift=m, seed=int(seed), gain=GAIN,
        labels=labels,
        centers=np.stack([pl.centers for pl in planes]).reshape(nplanes, ncells, 2),
        traces=np.stack([pl.calcium for pl in planes]).astype(np.float32).reshape(nplanes, ncells, nframes),
        spikes=np.stack([pl.spikes for pl in planes]).astype(np.float32).reshape(nplanes, ncells, nframes),
        f0=np.stack([pl.f0 for pl in planes]).reshape(nplanes, ncells),
        dff=np.stack([pl.dff for pl in planes]).reshape(nplanes, ncells),
        shifts=shifts.astype(np.float64),
    )
    if save_fp:
        gt["footprints"] = footprints
    if brightness is not None:
        gt["brightness"] = scale
        gt["mean_photons"] = photon_sum / nframes
    gt_path = out_dir / "ground_truth.npz"
    np.savez_compressed(gt_path, **gt)

    return dict(files=[str(f) for f in files], ground_truth=str(gt_path), nplanes=nplanes,
                nframes=nframes, Ly=Ly, Lx=Lx, cells_per_plane=ncells, diameter=diameter,
                fs=fs, tau=tau, max_shift=m, nfiles=nfiles, seed=seed, name=name, noise=noise,
                brightness=None if brightness is None else scale.tolist())
