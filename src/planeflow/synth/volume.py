"""A 3-D population imaged by N planes, with the truth a volume step needs.

:func:`simulate_volume` writes a recording in the layout of
:func:`planeflow.synth.simulate.simulate_session` (multi-page int16 TIFF, volume-major,
plane index innermost; the workflow reads it unchanged) in which, unlike there, the
planes image **one** population of neurons spread in depth:

* every cell has a 3-D position ``(y, x, z_um)``: ``(y, x)`` in plane 0's un-shifted
  field of view (pixels), ``z_um`` uniform over the imaged depth
  ``[-dz/2, (nplanes - 1) * dz + dz/2]``;
* **axial profile**: in plane ``p`` (at depth ``p * dz``) a cell is drawn with brightness
  ``w = exp(-0.5 * ((z_um - p * dz) / axial_sigma_um) ** 2)`` times its resting
  brightness and activity (same footprint shape, same calcium trace). It is *visible* in
  plane ``p`` when ``w >= visible_weight``; with the defaults (dz 15 µm, sigma 7 µm,
  0.35) about 15 % of the per-plane cell views are a second view of a cell visible in the
  neighbouring plane, i.e. a per-plane analysis counts those cells twice. Cells are drawn
  (dimmer) wherever ``w >= 0.05``;
* **per-plane lateral offsets** ``offsets[p] = (dy, dx)`` (pixels, integer or subpixel,
  ``offsets[0] = (0, 0)``): a feature at plane-0 pixel ``(y, x)`` lies at
  ``(y + dy, x + dx)`` in plane ``p``. The static tissue background is half shared by
  every plane (moved by the plane's offset: vessels run through depth) and half the
  plane's own; neuropil is the plane's own;
* **crosstalk** (LBM beams leaking into each other): plane ``p + k`` receives
  ``c * `` plane ``p``'s expected photons at the *same recorded pixel* (not the same
  tissue point), for every ``p`` with ``p + k < nplanes``. A bright cell of plane ``p``
  therefore shows as a dim "ghost" in plane ``p + k`` at its recorded position;
* **motion**: one rigid trace shared by all planes (they are imaged simultaneously), as
  in ``simulate_session``; crosstalk is added after the motion window (it is a detector
  effect), before shot noise.

Background, neuropil, cell shapes, calcium, gain and noise are the primitives of
:mod:`planeflow.synth.simulate`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import shift as nd_shift

from planeflow import PlaneflowError
from planeflow.synth import simulate as sim

SHARED_BACKGROUND = 0.5   # fraction of the static background common to all planes
RENDER_WEIGHT = 0.05      # a cell is drawn in a plane where its axial weight reaches this


#: a recording as hard as light-beads data (issue 19): 6 simultaneous planes 15 µm apart, one
#: motion, 3-D cells, shared texture and vessels, subpixel plane offsets up to 8 px, crosstalk
#: into the plane 3 below at 0.15, and plane 2 about 40x dimmer than the others (about 0.2
#: photons per pixel per frame: too dim for suite2p to register alone; its ghost in plane 5 is
#: faint, so the crosstalk pair 2 -> 5 is imprecise)
HARD = dict(nplanes=6, nframes=900, Ly=160, Lx=160, cells_per_plane=30, dz_um=15.0, max_offset=8.0,
            subpixel=True, crosstalk=0.15, crosstalk_k=3, max_shift=4,
            brightness=[1.0, 1.0, 0.025, 1.0, 1.0, 1.0])
#: the dim plane of :data:`HARD`
HARD_DIM = 2


def _draw_offsets(rng, nplanes, max_offset, subpixel):
    """Offsets of plane p relative to plane 0, a random walk with steps up to max_offset/2."""
    if nplanes == 1 or max_offset <= 0:
        return np.zeros((nplanes, 2))
    steps = rng.uniform(-max_offset / 2, max_offset / 2, (nplanes - 1, 2))
    off = np.vstack([[0.0, 0.0], np.cumsum(steps, axis=0)])
    off = np.clip(off, -max_offset, max_offset)
    return off if subpixel else np.rint(off)


def _place_cells_3d(rng, n, Ly, Lx, margin, min_dist, z_lo, z_hi, z_near, max_tries=50000):
    """(y, x, z) of n cells; cells closer than ``z_near`` in depth keep ``min_dist`` laterally."""
    lo_y, hi_y, lo_x, hi_x = margin, Ly - 1 - margin, margin, Lx - 1 - margin
    if hi_y <= lo_y or hi_x <= lo_x:
        raise PlaneflowError(f"field of view {Ly}x{Lx} too small for cells with margin {margin:.0f} px "
                             "(reduce max_shift, max_offset or diameter)")
    pts = np.zeros((0, 3))
    tries = 0
    while len(pts) < n:
        tries += 1
        if tries > max_tries:
            raise PlaneflowError(f"could not place {n} cells of min distance {min_dist:.1f} px in a "
                                 f"{Ly}x{Lx} field; reduce cells_per_plane")
        p = np.array([rng.uniform(lo_y, hi_y), rng.uniform(lo_x, hi_x), rng.uniform(z_lo, z_hi)])
        near = np.abs(pts[:, 2] - p[2]) < z_near
        d2 = (pts[near, 0] - p[0]) ** 2 + (pts[near, 1] - p[1]) ** 2
        if not np.any(d2 < min_dist ** 2):
            pts = np.vstack([pts, p])
    return pts


def _given_tissue(tissue: dict, p: int, shape: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Plane ``p``'s static background and neuropil brightness from a given ``tissue``."""
    out = []
    for key in ("static", "neuropil"):
        a = np.asarray(tissue[key], dtype=float)
        if a.shape != shape:
            raise ValueError(f"tissue[{key!r}] must have shape {shape} (planes, canvas), got {a.shape}")
        out.append(np.clip(a[p], 0.0, None))
    return out[0], out[1]


def simulate_volume(out_dir, *, nplanes=4, nframes=500, Ly=128, Lx=128, cells_per_plane=25,
                    diameter=10, dz_um=15.0, dx_um=1.0, axial_sigma_um=7.0, visible_weight=0.35,
                    offsets=None, max_offset=4.0, subpixel=False, crosstalk=0.0, crosstalk_k=1,
                    fs=15.0, tau=1.0, max_shift=3, nfiles=1, seed=0, name="volume",
                    noise=True, brightness=None, cells=None, tissue=None) -> dict:
    """Write a synthetic 3-D population imaged by ``nplanes`` planes, and its truth.

    Parameters (besides those of :func:`~planeflow.synth.simulate.simulate_session`)
    ----------
    cells_per_plane : int
        Cells per ``dz`` of depth: ``cells_per_plane * nplanes`` cells in all (each
        visible in one plane, some in two, a few in none).
    dz_um, dx_um : float
        Plane spacing and pixel size (µm); dx_um only converts positions for the truth.
    axial_sigma_um, visible_weight : float
        Axial profile (Gaussian sigma) and the weight from which a cell counts as
        visible in a plane.
    offsets : (nplanes, 2) array-like or None
        Planted lateral offsets ``(dy, dx)`` of each plane relative to plane 0 (first row
        must be zero); None draws a random walk bounded by ``max_offset`` (integer pixels
        unless ``subpixel``).
    crosstalk, crosstalk_k : float, int
        Plane ``p + k`` receives ``crosstalk`` times plane ``p``'s light at the same
        recorded pixel (0 = none).
    brightness : sequence of float, optional
        One factor per plane on the light of that plane's own beam (a dim plane: 0.02-0.05,
        as when a beam's power drops deep in the tissue); crosstalk a plane receives is
        ``crosstalk`` times its source's light as recorded (source factor applied), so a dim
        plane receives full-strength ghosts of its bright neighbours.
    cells : dict, optional
        A given population instead of a drawn one (several sessions of one subject,
        :mod:`planeflow.synth.subject`): ``pos`` (n, 3) = (y px, x px in plane 0's frame,
        z µm from plane 0), ``f0``, ``dff`` (n,) resting brightness and dF/F per spike,
        ``shape_seeds`` (n,) int seeds of the footprint shapes. Activity is drawn as usual;
        ``cells_per_plane`` is then ignored.
    tissue : dict, optional
        A given static tissue instead of a drawn one: ``static`` and ``neuropil``, each
        (nplanes, Ly + 2 * max_shift, Lx + 2 * max_shift), the static background and the
        neuropil's resting brightness (photons/pixel/frame) of every plane on its canvas
        (canvas pixel ``(y + max_shift, x + max_shift)`` is pixel ``(y, x)`` of the plane,
        its offset applied). None: the default texture, vessels and neuropil.

    Files
    -----
    ``<name>_00001.tif`` ...: as ``simulate_session`` (page ``i`` = plane ``i % nplanes``
    of volume ``i // nplanes``). ``ground_truth.npz``: ``nplanes, Ly, Lx, nframes, fs,
    tau, diameter, max_shift, seed, gain, dz_um, dx_um, axial_sigma_um, visible_weight,
    crosstalk, crosstalk_k`` (scalars); ``brightness``, ``mean_photons`` (nplanes,): the
    factors and each plane's recorded photons per pixel per frame; ``offsets`` (nplanes, 2) planted (dy, dx);
    ``cell_pos`` (ncells, 3) = (y px, x px in plane 0, z µm); ``cell_weight`` (ncells,
    nplanes) axial weights; ``cell_visible`` (ncells, nplanes) bool; ``labels`` int32
    (nplanes, Ly, Lx): 1-based cell id (row of ``cell_pos`` + 1) of the cells visible in
    the plane, in that plane's un-shifted field of view (offset applied); ``ghost_labels``
    int32 (nplanes, Ly, Lx): where plane ``p`` holds the crosstalk ghost of a cell
    visible in plane ``p - k``, or of one drawn there whose ghost is as bright as a visible
    cell of plane ``p`` (``c * brightness[p - k] * w >= visible_weight * brightness[p]``: a dim
    plane's ghosts) (its id; zeros without crosstalk); ``traces``, ``spikes``
    (ncells, nframes); ``f0``, ``dff`` (ncells,); ``shifts`` (nframes, 2) shared motion.
    A suite2p ROI is compared with ``labels[p]`` after moving it by the plane's reference
    offset (:func:`planeflow.synth.groundtruth.reference_offset`).
    """
    import tifffile

    nplanes, nframes, Ly, Lx = int(nplanes), int(nframes), int(Ly), int(Lx)
    m, nfiles, k = int(max_shift), int(nfiles), int(crosstalk_k)
    if nplanes < 1 or nframes < 1 or cells_per_plane < 0 or m < 0:
        raise ValueError("nplanes and nframes must be >= 1, cells_per_plane and max_shift >= 0")
    if not 1 <= nfiles <= nframes:
        raise ValueError(f"nfiles must be between 1 and nframes ({nframes}), got {nfiles}")
    if crosstalk and not 1 <= k < nplanes:
        raise ValueError(f"crosstalk_k must be between 1 and nplanes - 1, got {k}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    ss = np.random.SeedSequence(int(seed))
    s_motion, s_noise, s_cells, s_off, *s_planes = ss.spawn(4 + nplanes)
    rng_c = np.random.default_rng(s_cells)
    if offsets is None:
        offsets = _draw_offsets(np.random.default_rng(s_off), nplanes, float(max_offset), subpixel)
    offsets = np.asarray(offsets, dtype=float)
    if offsets.shape != (nplanes, 2) or np.any(offsets[0] != 0):
        raise PlaneflowError(f"offsets must be {nplanes} pairs (dy, dx), the first (0, 0) (offsets are "
                             f"relative to plane 0); got {offsets.tolist()}")
    scale = np.ones(nplanes) if brightness is None else np.asarray(brightness, dtype=float).ravel()
    if scale.shape != (nplanes,) or np.any(scale <= 0):
        raise ValueError(f"brightness must give one factor > 0 per plane ({nplanes}), got {brightness}")
    M = int(np.ceil(np.abs(offsets).max())) + 1          # room for the offsets on the canvas
    shifts = sim._draw_shifts(np.random.default_rng(s_motion), nframes, m, fs)

    planes = [sim._Plane(np.random.default_rng(s), Ly=Ly, Lx=Lx, m=m, ncells=0,
                         diameter=float(diameter), nframes=nframes, fs=float(fs), tau=float(tau))
              for s in s_planes]
    H, W = Ly + 2 * m, Lx + 2 * m
    # a static background shared by every plane (moved by its offset), half of each plane's
    rs = np.random.default_rng(s_cells.spawn(1)[0])
    tex = (1.0 + sim.TEXTURE_FINE * sim._smooth_field(rs, (H + 2 * M, W + 2 * M), sim.TEXTURE_FINE_SIGMA)
           + sim.TEXTURE_COARSE * sim._smooth_field(rs, (H + 2 * M, W + 2 * M), 8.0))
    ves = sim._vessels(rs, (H + 2 * M, W + 2 * M), nvessels=3)
    shared = sim.BACKGROUND * np.clip(tex, 0.2, None) * (1.0 - 0.75 * ves)
    for p, pl in enumerate(planes):
        if tissue is not None:
            pl.static, pl.npil = _given_tissue(tissue, p, (nplanes, H, W))
            continue
        moved = nd_shift(shared, offsets[p], order=3, mode="nearest")[M:M + H, M:M + W]
        pl.static = (1 - SHARED_BACKGROUND) * pl.static + SHARED_BACKGROUND * np.clip(moved, 0, None)

    # the population
    dz = float(dz_um)
    sig = float(axial_sigma_um)
    ncells = int(cells_per_plane) * nplanes if cells is None else len(cells["pos"])
    radius = float(diameter) / 2.0
    z_vis = sig * np.sqrt(2 * np.log(1 / float(visible_weight)))   # visible up to this far
    margin = m + M + radius * 1.15 + 1.0
    if cells is None:
        pos = _place_cells_3d(rng_c, ncells, Ly, Lx, margin, sim.MIN_DIST_FACTOR * float(diameter),
                              -dz / 2, (nplanes - 1) * dz + dz / 2, 2 * z_vis)
    else:
        pos = np.asarray(cells["pos"], dtype=float).reshape(ncells, 3)
    weight = np.exp(-0.5 * ((pos[:, 2:3] - dz * np.arange(nplanes)[None]) / sig) ** 2)
    visible = weight >= float(visible_weight)
    if cells is None:
        f0 = rng_c.uniform(*sim.CELL_F0, ncells)
        dff = rng_c.uniform(*sim.CELL_DFF, ncells)
    else:
        f0, dff = (np.asarray(cells[k], dtype=float).reshape(ncells) for k in ("f0", "dff"))
    spikes, calcium = sim._spikes_and_calcium(rng_c, ncells, nframes, float(fs), float(tau))
    shape_seeds = (rng_c.integers(0, 2**63 - 1, ncells) if cells is None
                   else np.asarray(cells["shape_seeds"], dtype=np.int64).reshape(ncells))
    for p, pl in enumerate(planes):
        pl.patches, cells = [], []
        for c in np.flatnonzero(weight[:, p] >= RENDER_WEIGHT):
            centre = pos[c, :2] + offsets[p] + m
            pl.patches.append(sim._footprint(np.random.default_rng(shape_seeds[c]), centre, radius, (H, W)))
            cells.append(c)
        pl.cells = np.array(cells, dtype=np.int64)
        pl.f0 = f0[pl.cells] * weight[pl.cells, p]
        pl.dff = dff[pl.cells]
        pl.calcium = calcium[pl.cells]

    def noise_rng(v, p):
        return np.random.default_rng(np.random.SeedSequence(
            s_noise.entropy, spawn_key=tuple(s_noise.spawn_key) + (int(v), int(p))))

    bounds = np.linspace(0, nframes, nfiles + 1).round().astype(int)
    files = [out_dir / f"{name}_{i + 1:05d}.tif" for i in range(nfiles)]
    batch = max(1, sim.BATCH_PIXELS // (H * W * nplanes))
    bigtiff = nframes * nplanes * Ly * Lx * 2 / nfiles > 3.5e9
    c_x = float(crosstalk)
    photon_sum = np.zeros(nplanes)
    for i, path in enumerate(files):
        with tifffile.TiffWriter(path, bigtiff=bigtiff) as tw:
            for t0 in range(bounds[i], bounds[i + 1], batch):
                t1 = min(t0 + batch, bounds[i + 1])
                lam = np.empty((t1 - t0, nplanes, Ly, Lx))
                for p, pl in enumerate(planes):
                    canvas = pl.render(t0, t1)
                    for j, (dy, dx) in enumerate(shifts[t0:t1]):
                        lam[j, p] = scale[p] * canvas[j, m - dy:m - dy + Ly, m - dx:m - dx + Lx]
                    del canvas
                if c_x:
                    lam[:, k:] += c_x * lam[:, :nplanes - k].copy()
                photon_sum += lam.mean(axis=(2, 3)).sum(axis=0)
                vol = np.empty(lam.shape, dtype=np.int16)
                for j in range(t1 - t0):
                    for p in range(nplanes):
                        if noise:
                            rng = noise_rng(t0 + j, p)
                            val = sim.GAIN * rng.poisson(lam[j, p]) + sim.READ_NOISE * rng.standard_normal((Ly, Lx))
                        else:
                            val = sim.GAIN * lam[j, p]
                        vol[j, p] = np.clip(np.rint(val), -32768, 32767)
                for page in vol.reshape(-1, Ly, Lx):
                    tw.write(page, photometric="minisblack", contiguous=False, metadata=None)

    def label_image(p: int, keep: np.ndarray) -> np.ndarray:
        """Plane p's footprints (1-based cell id) of the cells where ``keep``."""
        out = np.zeros((Ly, Lx), dtype=np.int32)
        for (patch, y0, x0), c in zip(planes[p].patches, planes[p].cells):
            if not keep[c]:
                continue
            canvas = np.zeros((H, W), dtype=np.float32)
            canvas[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]] = patch
            fp = canvas[m:m + Ly, m:m + Lx]
            out[fp > sim.LABEL_FRACTION * fp.max()] = c + 1
        return out

    labels = np.stack([label_image(p, visible[:, p]) for p in range(nplanes)]).astype(np.int32)
    ghost = np.zeros_like(labels)
    if c_x:
        for p in range(k, nplanes):
            # the ghosts of the cells visible in the source plane, and of those whose ghost is as
            # bright as a visible cell of this plane's own (a dim plane: a source cell's view too
            # faint to count as visible there still outshines the dim plane's own cells)
            src = p - k
            seen = visible[:, src] | (c_x * scale[src] * weight[:, src] >= float(visible_weight) * scale[p])
            ghost[p] = labels[src] if np.array_equal(seen, visible[:, src]) else label_image(src, seen)
    gt = dict(
        nplanes=nplanes, Ly=Ly, Lx=Lx, nframes=nframes, fs=float(fs), tau=float(tau),
        diameter=float(diameter), max_shift=m, seed=int(seed), gain=sim.GAIN, dz_um=dz,
        dx_um=float(dx_um), axial_sigma_um=sig, visible_weight=float(visible_weight),
        crosstalk=c_x, crosstalk_k=k, brightness=scale, mean_photons=photon_sum / nframes, offsets=offsets,
        cell_pos=pos, cell_weight=weight,
        cell_visible=visible, labels=labels, ghost_labels=ghost,
        traces=calcium.astype(np.float32), spikes=spikes.astype(np.float32), f0=f0, dff=dff,
        shifts=shifts.astype(np.float64))
    gt_path = out_dir / "ground_truth.npz"
    np.savez_compressed(gt_path, **gt)
    return dict(files=[str(f) for f in files], ground_truth=str(gt_path), nplanes=nplanes,
                nframes=nframes, Ly=Ly, Lx=Lx, ncells=ncells, diameter=diameter, fs=fs, tau=tau,
                dz_um=dz, dx_um=dx_um, offsets=offsets.tolist(), crosstalk=c_x, crosstalk_k=k,
                max_shift=m, nfiles=nfiles, seed=seed, name=name, noise=noise, brightness=scale.tolist())


def score_volume(session_dir, ground_truth) -> dict:
    """Score rule volume_stats' tables of a finished session against :func:`simulate_volume`'s truth.

    Accepted ROIs of each plane are matched one to one to the planted cells visible in it
    (:func:`~planeflow.synth.groundtruth.match_rois`, after the plane's reference offset);
    accepted ROIs left over are matched to the crosstalk ghosts (``ghost_labels``), or the ghosts
    first where they are brighter than the plane's own cells (crosstalk times the source plane's
    ``brightness`` above the plane's own).
    Returns ``offset_err_px`` (largest error of plane_offsets.tsv against the planted offsets
    carried into the registered frames), ``duplicates_before`` (share of matched ROIs that
    are a second view of a cell), ``residual_duplicates`` (the same among primary matched
    ROIs), ``wrong_merges`` (share of matched ROIs whose cell_id also holds a matched ROI of
    another planted cell), ``recall_all``/``recall_primary`` (planted visible cells found by
    any matched ROI / by a primary one), ``n_ghost_rois``, ``ghosts_primary``,
    ``ghosts_flagged`` and ``crosstalk`` (separation -> coefficient of crosstalk.tsv).
    """
    from planeflow.io.tables import read_tsv
    from planeflow.plan.layout import Layout
    from planeflow.synth.groundtruth import load_ground_truth, match_rois, reference_offset

    gt = load_ground_truth(ground_truth)
    session_dir = Path(session_dir)
    n = int(gt["nplanes"])
    lay, sid = Layout(session_dir.parent), session_dir.name
    offs, rois, xt = (read_tsv(lay.volume_file(k, sid)) for k in ("offsets", "rois", "crosstalk"))
    ref, cell_of, ghost_of = [], {}, {}
    for p in range(n):
        d = session_dir / "suite2p" / f"plane{p}"
        ops = np.load(d / "ops.npy", allow_pickle=True).item()
        stat = np.load(d / "stat.npy", allow_pickle=True)
        acc = np.flatnonzero(np.load(d / "iscell.npy")[:, 0] > 0.5)
        c = reference_offset(ops["yoff"], ops["xoff"], gt["shifts"])
        ref.append(c)
        # an ROI is matched first to the brighter light: the plane's own cells, or the ghosts of
        # the plane k above when those outshine them (a dim plane receiving crosstalk: its ROIs
        # there are ghosts, though its own faint cells lie under them)
        k = int(gt.get("crosstalk_k", 1))
        b = np.asarray(gt.get("brightness", np.ones(n)), float)
        ghost_first = bool(gt["crosstalk"]) and p >= k and float(gt["crosstalk"]) * b[p - k] > b[p]
        order = [("ghost", gt["ghost_labels"][p]), ("cell", gt["labels"][p])] if ghost_first else \
            [("cell", gt["labels"][p])] + ([("ghost", gt["ghost_labels"][p])] if gt["crosstalk"] else [])
        rest = [int(i) for i in acc]
        for kind, labels in order:
            if not rest:
                break
            found = {rest[r]: int(lab) for r, lab in match_rois([stat[i] for i in rest], labels, offset=c)["matches"]}
            (ghost_of if kind == "ghost" else cell_of).update({(p, i): lab for i, lab in found.items()})
            rest = [i for i in rest if i not in found]
    ref = np.array(ref)
    true_off = gt["offsets"] + ref - ref[0]
    est = np.array([[float(r["dy_px"]), float(r["dx_px"])] for r in offs])
    row = {(int(r["plane"]), int(r["roi"])): r for r in rois}
    prim = [cell_of[k] for k in cell_of if row[k]["primary"] == "true"]
    cells_in = {}
    for k, lab in cell_of.items():
        cells_in.setdefault(row[k]["cell_id"], set()).add(lab)
    visible = set((np.flatnonzero(gt["cell_visible"].any(axis=1)) + 1).tolist())
    nm = max(len(cell_of), 1)
    return dict(
        offset_err_px=float(np.abs(est - true_off).max()), true_offsets=true_off.tolist(),
        est_offsets=est.tolist(), n_matched=len(cell_of),
        duplicates_before=(len(cell_of) - len(set(cell_of.values()))) / nm,
        residual_duplicates=(len(prim) - len(set(prim))) / max(len(prim), 1),
        wrong_merges=sum(len(cells_in[row[k]["cell_id"]]) > 1 for k in cell_of) / nm,
        recall_all=len(set(cell_of.values()) & visible) / len(visible),
        recall_primary=len(set(prim) & visible) / len(visible),
        n_ghost_rois=len(ghost_of), ghosts_primary=sum(row[k]["primary"] == "true" for k in ghost_of),
        ghosts_flagged=sum(row[k]["duplicate_of_reason"] == "crosstalk" for k in ghost_of),
        crosstalk={int(r["separation"]): float(r["coefficient"]) if r["coefficient"] else float("nan")
                   for r in xt})
