"""Several sessions (days) of one subject: the same 3-D population, imaged again each time.

:func:`simulate_subject` draws one population of neurons in a tissue block larger than the
field of view (positions, footprint shapes, brightness; a 3-D static texture and vessels that
run through depth) and writes one recording per session with
:func:`planeflow.synth.volume.simulate_volume`, each in its own folder and readable as volume
truth by :func:`~planeflow.synth.volume.score_volume`. Between sessions the field of view moves:

* a translation up to ``max_translation`` px and a rotation up to ``max_rotation`` degrees
  about the image centre, plus a smooth non-rigid warp up to ``warp_px``;
* a z shift up to ``max_z_shift`` plane spacings (session plane ``i`` images the depth of the
  first session's plane ``i + z_shift``);
* a share ``silent`` of the cells is silent in each session (not drawn: no activity, no
  resting light), and a share ``new`` appears only from a later session on.

The first session is the reference frame of the subject (no movement). Activity, motion and
noise are drawn anew for each session. ``subject_truth.npz`` maps each session's planted cells
(rows of its ``ground_truth.npz``'s ``cell_pos``, label ``k`` = row ``k - 1``) to population ids.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from planeflow.synth import simulate as sim
from planeflow.synth.volume import RENDER_WEIGHT, simulate_volume


def _rotation(theta_deg: float) -> np.ndarray:
    a = np.deg2rad(theta_deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


class SessionMove:
    """How one session's field of view sits in the subject: session plane-0 pixel ``p`` ->
    subject pixel ``R (p - c) + c + t + warp(p)``; depth = plane depth + ``z_shift * dz``."""

    def __init__(self, theta_deg, ty, tx, z_shift, warp, shape):
        self.theta_deg, self.ty, self.tx, self.z_shift = float(theta_deg), float(ty), float(tx), float(z_shift)
        self.warp = warp                  # (2, Ly, Lx) or None
        self.c = (np.asarray(shape, float) - 1) / 2

    def _warp_at(self, y, x):
        if self.warp is None:
            return 0.0, 0.0
        pts = np.stack([np.ravel(y), np.ravel(x)])
        return tuple(map_coordinates(w, pts, order=1, mode="nearest").reshape(np.shape(y)) for w in self.warp)

    def to_subject(self, y, x):
        r = _rotation(self.theta_deg)
        dy, dx = np.asarray(y, float) - self.c[0], np.asarray(x, float) - self.c[1]
        wy, wx = self._warp_at(y, x)
        return (r[0, 0] * dy + r[0, 1] * dx + self.c[0] + self.ty + wy,
                r[1, 0] * dy + r[1, 1] * dx + self.c[1] + self.tx + wx)

    def to_session(self, Y, X, iterations: int = 5):
        """Inverse of :meth:`to_subject` (fixed-point iteration over the warp)."""
        r = _rotation(self.theta_deg)
        Y, X = np.asarray(Y, float), np.asarray(X, float)
        y, x = Y, X
        for _ in range(iterations):
            wy, wx = self._warp_at(y, x)
            ay, ax = Y - self.c[0] - self.ty - wy, X - self.c[1] - self.tx - wx
            y, x = r[0, 0] * ay + r[1, 0] * ax + self.c[0], r[0, 1] * ay + r[1, 1] * ax + self.c[1]
        return y, x

    def params(self) -> list[float]:
        return [self.theta_deg, self.ty, self.tx, self.z_shift]


def _smooth_warp(rng, shape, amplitude):
    if amplitude <= 0:
        return None
    w = np.stack([sim._smooth_field(rng, shape, max(shape) / 3.0) for _ in range(2)])
    return amplitude * w / (np.abs(w).max() + 1e-12)


def draw_moves(rng, nsessions, shape, *, max_translation, max_rotation, warp_px, max_z_shift, z_shifts=None,
               at_limits=False):
    """One :class:`SessionMove` per session, the first the identity. ``at_limits``: every move at
    its limit instead of drawn up to it (a translation of ``max_translation`` px in a random
    direction, a rotation of ±``max_rotation``, a z shift of ±``max_z_shift`` unless ``z_shifts``
    gives them; the signs drawn)."""
    moves = [SessionMove(0, 0, 0, 0, None, shape)]
    for s in range(1, nsessions):
        if at_limits:
            a = rng.uniform(0, 2 * np.pi)
            t = max_translation * np.array([np.sin(a), np.cos(a)])
            theta = max_rotation * rng.choice([-1.0, 1.0])
            z = max_z_shift * rng.choice([-1.0, 1.0])
        else:       # (this order of draws keeps the moves of a seed as they were)
            t = rng.uniform(-1, 1, 2) * max_translation / np.sqrt(2)
            z = rng.uniform(-max_z_shift, max_z_shift) if z_shifts is None else 0.0
            theta = rng.uniform(-max_rotation, max_rotation)
        if z_shifts is not None:
            z = float(z_shifts[s])
        moves.append(SessionMove(theta, t[0], t[1], z, _smooth_warp(rng, shape, warp_px), shape))
    return moves


class _Tissue:
    """A 3-D static texture and 2-D vessels (through depth) over the subject's block."""

    def __init__(self, rng, ny, nx, z_lo, z_hi, dz):
        self.pad_y, self.pad_x = ny, nx
        self.z_lo, self.step = z_lo, dz / 3.0
        nz = int(np.ceil((z_hi - z_lo) / self.step)) + 2
        shape = (nz, ny, nx)

        def field(sigma_xy):
            f = gaussian_filter(rng.standard_normal(shape), (2.0, sigma_xy, sigma_xy), mode="wrap")
            return (f - f.mean()) / (f.std() + 1e-12)

        self.tex = 1.0 + sim.TEXTURE_FINE * field(sim.TEXTURE_FINE_SIGMA) + sim.TEXTURE_COARSE * field(8.0)
        self.npil = 1.0 + sim.NEUROPIL_CONTRAST * field(sim.NEUROPIL_SCALE)
        self.ves = sim._vessels(rng, (ny, nx), nvessels=4)

    def sample(self, Y, X, Z, origin):
        """Static background and neuropil brightness at subject points (px, px, µm)."""
        iy, ix = Y + origin[0], X + origin[1]
        iz = (np.full_like(Y, Z) - self.z_lo) / self.step
        tex = map_coordinates(self.tex, [iz, iy, ix], order=1, mode="nearest")
        npil = map_coordinates(self.npil, [iz, iy, ix], order=1, mode="nearest")
        ves = map_coordinates(self.ves, [iy, ix], order=1, mode="nearest")
        static = sim.BACKGROUND * np.clip(tex, 0.2, None) * (1.0 - 0.75 * ves)
        neuropil = sim.NEUROPIL * np.clip(npil, 0.2, None) * (1.0 - sim.NEUROPIL_VESSEL * ves)
        return static, neuropil


def _session_tissue(tissue, origin, move, offsets, nplanes, Ly, Lx, m, dz):
    """``simulate_volume``'s ``tissue`` argument of one session."""
    H, W = Ly + 2 * m, Lx + 2 * m
    ii, jj = np.mgrid[0:H, 0:W].astype(float)
    static = np.empty((nplanes, H, W))
    npil = np.empty((nplanes, H, W))
    for p in range(nplanes):
        y0, x0 = ii - m - offsets[p][0], jj - m - offsets[p][1]
        Y, X = move.to_subject(y0, x0)
        static[p], npil[p] = tissue.sample(Y, X, (p + move.z_shift) * dz, origin)
    return dict(static=static, neuropil=npil)


def simulate_subject(out_dir, *, nsessions=3, nplanes=4, nframes=600, Ly=128, Lx=128, cells_per_plane=25,
                     diameter=10, dz_um=15.0, dx_um=1.0, max_translation=20.0, max_rotation=5.0, warp_px=1.5,
                     max_z_shift=1.0, z_shifts=None, at_limits=False, silent=0.15, new=0.1, offsets=None,
                     max_offset=4.0, max_shift=3, seed=0, noise=True, name="subject") -> dict:
    """Write ``nsessions`` recordings of one subject into ``out_dir/<name>_s<k>/`` (module
    docstring) and ``out_dir/subject_truth.npz``: ``pop_pos`` (N, 3) population positions
    (y, x px in the first session's plane-0 frame, z µm from its plane 0), ``present``
    (nsessions, N) bool, ``moves`` (nsessions, 4) = (rotation deg, ty, tx px, z shift planes),
    ``ids_<k>`` (cells of session k,) population id of each planted cell, ``offsets`` (the plane
    offsets, shared by every session), ``sessions`` (names). ``z_shifts``: one z shift per session
    (planes, the first 0) instead of drawn ones; ``at_limits``: every move at its limit
    (:func:`draw_moves`). Returns the sessions' folders, names and
    ``simulate_volume`` results and the truth path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ss = np.random.SeedSequence(int(seed))
    s_pop, s_move, s_tissue, s_present, *s_sessions = ss.spawn(4 + nsessions)
    rng = np.random.default_rng(s_pop)
    dz = float(dz_um)
    m = int(max_shift)
    if offsets is None:
        from planeflow.synth.volume import _draw_offsets
        offsets = _draw_offsets(rng, nplanes, float(max_offset), False)
    offsets = np.asarray(offsets, float)
    moves = draw_moves(np.random.default_rng(s_move), nsessions, (Ly, Lx), max_translation=max_translation,
                       max_rotation=max_rotation, warp_px=warp_px, max_z_shift=max_z_shift, z_shifts=z_shifts,
                       at_limits=at_limits)
    # the block: the field of view with room for every move
    pad = int(np.ceil(max_translation + 0.5 * max(Ly, Lx) * np.deg2rad(max_rotation) * 1.5 + warp_px
                      + np.abs(offsets).max() + m + diameter))
    z_lo, z_hi = -dz / 2 - max_z_shift * dz, (nplanes - 1) * dz + dz / 2 + max_z_shift * dz
    area = (Ly + 2 * pad) * (Lx + 2 * pad) / (Ly * Lx) * (z_hi - z_lo) / (nplanes * dz)
    n = int(round(cells_per_plane * nplanes * area))
    sig = 7.0
    z_vis = sig * np.sqrt(2 * np.log(1 / 0.35))
    from planeflow.synth.volume import _place_cells_3d
    pos = _place_cells_3d(rng, n, Ly + 2 * pad, Lx + 2 * pad, 0, sim.MIN_DIST_FACTOR * diameter, z_lo, z_hi,
                          2 * z_vis, max_tries=400000)
    pos[:, :2] -= pad
    f0 = rng.uniform(*sim.CELL_F0, n)
    dff = rng.uniform(*sim.CELL_DFF, n)
    shape_seeds = rng.integers(0, 2**63 - 1, n)
    rp = np.random.default_rng(s_present)
    present = rp.random((nsessions, n)) >= silent
    born = np.where(rp.random(n) < new, rp.integers(1, max(nsessions, 2), n), 0)
    present &= np.arange(nsessions)[:, None] >= born[None]
    tissue = _Tissue(np.random.default_rng(s_tissue), Ly + 2 * pad + 2 * m + 8, Lx + 2 * pad + 2 * m + 8,
                     z_lo - dz, z_hi + dz, dz)
    origin = (pad + m + 4, pad + m + 4)
    margin = m + int(np.ceil(np.abs(offsets).max())) + 1 + diameter / 2 * 1.15 + 1.0
    sessions, truth = [], dict(pop_pos=pos, present=present, moves=np.array([mv.params() for mv in moves]),
                               offsets=offsets, nsessions=nsessions, dz_um=dz, dx_um=float(dx_um))
    names = []
    for s, mv in enumerate(moves):
        y, x = mv.to_session(pos[:, 0], pos[:, 1])
        z = pos[:, 2] - mv.z_shift * dz
        w = np.exp(-0.5 * ((z[:, None] - dz * np.arange(nplanes)[None]) / sig) ** 2)
        keep = (present[s] & (y >= margin) & (y <= Ly - 1 - margin) & (x >= margin) & (x <= Lx - 1 - margin)
                & (w.max(axis=1) >= RENDER_WEIGHT))
        ids = np.flatnonzero(keep)
        cells = dict(pos=np.stack([y[ids], x[ids], z[ids]], axis=1), f0=f0[ids], dff=dff[ids],
                     shape_seeds=shape_seeds[ids])
        sname = f"{name}_s{s}"
        folder = out_dir / sname
        res = simulate_volume(folder, nplanes=nplanes, nframes=nframes, Ly=Ly, Lx=Lx, diameter=diameter, dz_um=dz,
                              dx_um=dx_um, axial_sigma_um=sig, offsets=offsets, max_shift=m, noise=noise,
                              seed=int(s_sessions[s].generate_state(1)[0]), name=sname, cells=cells,
                              tissue=_session_tissue(tissue, origin, mv, offsets, nplanes, Ly, Lx, m, dz))
        truth[f"ids_{s}"] = ids
        names.append(sname)
        sessions.append({**res, "name": sname, "folder": str(folder)})
    truth["sessions"] = np.array(names)
    path = out_dir / "subject_truth.npz"
    np.savez_compressed(path, **truth)
    return dict(sessions=sessions, truth=str(path), nsessions=nsessions, nplanes=nplanes, Ly=Ly, Lx=Lx,
                dz_um=dz, dx_um=dx_um, moves=truth["moves"].tolist())


def load_truth(path) -> dict:
    """``subject_truth.npz`` as a dict (``ids`` a list per session)."""
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["ids"] = [out[f"ids_{s}"] for s in range(int(out["nsessions"]))]
    return out


def mean_images(session_dir, nplanes: int, Ly: int, Lx: int) -> np.ndarray:
    """Each plane's mean of a simulated session's raw pages (plane index innermost)."""
    import tifffile

    acc = np.zeros((nplanes, Ly, Lx))
    count = 0
    for f in sorted(Path(session_dir).glob("*.tif")):
        with tifffile.TiffFile(f) as tf:
            pages = tf.asarray().reshape(-1, nplanes, Ly, Lx)
        acc += pages.sum(axis=0)
        count += len(pages)
    return (acc / max(count, 1)).astype(np.float32)


def truth_session(session_dir, name: str | None = None, means: np.ndarray | None = None):
    """:class:`~planeflow.core.tracking.SessionCells` of a simulated session made from its planted
    truth (no suite2p): one cell per planted cell visible in a plane, its footprints the label
    masks, mean images from the raw pages (or ``means``), all in the session's plane-0 frame.
    ``cell_id`` = label (row of ``cell_pos`` + 1); primary plane = the plane it is brightest in."""
    from planeflow.core.tracking.cells import Cell, Footprint, SessionCells
    from planeflow.core.volume.offsets import aligned_image
    from planeflow.synth.groundtruth import load_ground_truth

    gt = load_ground_truth(session_dir)
    n, Ly, Lx = int(gt["nplanes"]), int(gt["Ly"]), int(gt["Lx"])
    off = np.asarray(gt["offsets"], float)
    raw = mean_images(session_dir, n, Ly, Lx) if means is None else means
    # the raw pages hold the planted motion: their mean sits at the mean shift
    moved = off + np.asarray(gt["shifts"], float).mean(axis=0)
    aligned = np.stack([aligned_image(raw[p], *moved[p]) for p in range(n)])
    cells = []
    for c in np.flatnonzero(gt["cell_visible"].any(axis=1)):
        fps, rois = {}, []
        for p in np.flatnonzero(gt["cell_visible"][c]):
            yy, xx = np.nonzero(gt["labels"][p] == c + 1)
            if len(yy) == 0:
                continue
            fps[int(p)] = Footprint(yy - off[p, 0], xx - off[p, 1], np.ones(len(yy)))
            rois.append((int(p), int(c)))
        if not fps:
            continue
        w = gt["cell_weight"][c]
        primary = max(fps, key=lambda p: w[p])
        cells.append(Cell(cell_id=int(c) + 1, primary=(primary, int(c)), rois=rois, footprints=fps,
                          z_plane=float(np.clip(gt["cell_pos"][c, 2] / float(gt["dz_um"]), 0, n - 1))))
    return SessionCells(session=name or Path(session_dir).name, planes=list(range(n)), dz_um=float(gt["dz_um"]),
                        dy_um=float(gt["dx_um"]), dx_um=float(gt["dx_um"]), means=aligned, cells=cells)


def truth_ids(sc, ids: np.ndarray) -> dict:
    """cell_id -> population id for a :func:`truth_session` (cell_id = planted label)."""
    return {c.cell_id: int(ids[c.cell_id - 1]) for c in sc.cells}


def score_tracking(result, names: list[str], pop_of: list[dict], moves: np.ndarray, z_shifted: float = 0.5) -> dict:
    """Pairwise match precision and recall, and track purity, against planted truth.

    ``names``: the sessions in the order of the truth; ``pop_of[s]``: cell_id -> population id
    of session ``s``'s cells that are a planted cell
    (others are left out of the scores); ``moves``: the truth's moves (z shift in column 3).
    For every session pair the true pairs are the population ids both sessions hold a cell of
    (neurons active in both sessions and found in both), the predicted pairs those put in one
    track. Returns ``pairs`` (one dict per session pair: ``a, b, dz_planes, true, predicted,
    correct, precision, recall``) and the totals ``all`` and ``z_shifted`` (pairs whose true z
    shift is at least ``z_shifted`` planes), each ``precision, recall, true, predicted,
    correct``, and ``purity`` (the members of tracks of two or more scored cells that belong to
    the track's most common population id, as a share of those members)."""
    order = {n: i for i, n in enumerate(names)}
    track_members = {}
    for row in result.tracked_cells:
        s = order[row["session"]]
        pid = pop_of[s].get(int(row["cell_id"]))
        track_members.setdefault(row["track_id"], {})[s] = pid
    rows = []
    for a in range(len(pop_of)):
        for b in range(a + 1, len(pop_of)):
            true = set(pop_of[a].values()) & set(pop_of[b].values())
            pred = [(m[a], m[b]) for m in track_members.values() if a in m and b in m
                    and m[a] is not None and m[b] is not None]
            correct = sum(1 for x, y in pred if x == y)
            rows.append(dict(a=a, b=b, dz_planes=float(moves[b][3] - moves[a][3]), true=len(true),
                             predicted=len(pred), correct=correct, precision=correct / max(len(pred), 1),
                             recall=correct / max(len(true), 1)))

    def total(sel):
        t, p, c = (sum(r[k] for r in sel) for k in ("true", "predicted", "correct"))
        return dict(precision=c / max(p, 1), recall=c / max(t, 1), true=t, predicted=p, correct=c, pairs=len(sel))

    kept = mixed = 0
    for m in track_members.values():
        ids = [v for v in m.values() if v is not None]
        if len(ids) >= 2:
            kept += max(ids.count(v) for v in set(ids))
            mixed += len(ids)
    return dict(pairs=rows, all=total(rows), z_shifted=total([r for r in rows if abs(r["dz_planes"]) >= z_shifted]),
                purity=kept / max(mixed, 1))
