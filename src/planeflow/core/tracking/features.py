"""Cells of every session in the reference frame, candidate pairs and their two similarities.

A *unit* is what one track entry holds: in 3-D mode a cell (its ``cell_id`` with its footprint
in every plane it was seen in), in one-plane-at-a-time mode the cell's primary ROI alone. Units of
two sessions are candidates when their centroids are within ``max_distance`` µm in the plane and
they have footprints in planes at most ``max_plane_distance`` apart once the z shift between the
sessions is taken into account (one-plane-at-a-time: the same plane). Their footprint correlation
is the highest Pearson correlation over those plane pairs (a neuron that moved a plane in z is
compared with its own view in the neighbouring plane).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from planeflow.core.tracking.align import Transform
from planeflow.core.tracking.cells import SessionCells


@dataclass
class Unit:
    """One cell of one session, moved into the reference frame."""

    session: int            # index into the sessions
    index: int              # index into that session's cells
    y: float                # centroid, reference px
    x: float
    z: float                # depth, reference plane index
    patches: dict           # own plane index -> (y0, x0, dense patch) in reference px


def _splat(y: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[int, int, np.ndarray]:
    """Weights at float positions spread bilinearly onto the integer grid: (y0, x0, patch)."""
    y0, x0 = int(np.floor(y.min())), int(np.floor(x.min()))
    h, wd = int(np.floor(y.max())) - y0 + 2, int(np.floor(x.max())) - x0 + 2
    out = np.zeros((h, wd))
    fy, fx = np.floor(y), np.floor(x)
    ay, ax = y - fy, x - fx
    iy, ix = (fy - y0).astype(int), (fx - x0).astype(int)
    for dy, dx, ww in ((0, 0, (1 - ay) * (1 - ax)), (1, 0, ay * (1 - ax)), (0, 1, (1 - ay) * ax), (1, 1, ay * ax)):
        np.add.at(out, (iy + dy, ix + dx), w * ww)
    return y0, x0, out


def units(sc: SessionCells, s: int, t: Transform, per_plane: bool) -> list[Unit]:
    """Every cell of session ``sc`` (index ``s``) in the reference frame by ``t``."""
    out = []
    for k, cell in enumerate(sc.cells):
        fps = ({cell.primary[0]: cell.footprints[cell.primary[0]]} if per_plane and cell.primary[0] in cell.footprints
               else cell.footprints)
        if not fps:
            continue
        patches = {}
        for p, fp in fps.items():
            if len(fp.ypix) == 0:
                continue
            ry, rx = t.forward(fp.ypix, fp.xpix)
            patches[sc.planes.index(p)] = _splat(np.asarray(ry, float), np.asarray(rx, float),
                                                 np.clip(np.asarray(fp.lam, float), 0, None))
        if not patches:
            continue
        prim = cell.footprints.get(cell.primary[0]) or next(iter(fps.values()))
        cy, cx = prim.centroid()
        ry, rx = t.forward(np.array([cy]), np.array([cx]))
        z = float(sc.planes.index(cell.primary[0])) if per_plane else cell.depth(sc.planes)
        out.append(Unit(session=s, index=k, y=float(ry[0]), x=float(rx[0]),
                        z=z + (0.0 if per_plane else t.z_shift), patches=patches))
    return out


def correlation(a: tuple, b: tuple) -> float:
    """Pearson correlation of two patches (y0, x0, array) over the box holding both."""
    ay, ax, pa = a
    by, bx, pb = b
    y0, x0 = min(ay, by), min(ax, bx)
    y1, x1 = max(ay + pa.shape[0], by + pb.shape[0]), max(ax + pa.shape[1], bx + pb.shape[1])
    n = (y1 - y0) * (x1 - x0)
    sa, sb = pa.sum(), pb.sum()
    qa, qb = (pa * pa).sum(), (pb * pb).sum()
    oy0, oy1 = max(ay, by), min(ay + pa.shape[0], by + pb.shape[0])
    ox0, ox1 = max(ax, bx), min(ax + pa.shape[1], bx + pb.shape[1])
    sab = 0.0
    if oy1 > oy0 and ox1 > ox0:
        sab = float((pa[oy0 - ay:oy1 - ay, ox0 - ax:ox1 - ax] * pb[oy0 - by:oy1 - by, ox0 - bx:ox1 - bx]).sum())
    cov = sab - sa * sb / n
    var = (qa - sa * sa / n) * (qb - sb * sb / n)
    return float(cov / np.sqrt(var)) if var > 0 else 0.0


def best_correlation(a: Unit, b: Unit, za: float, zb: float, max_plane_distance: float) -> float | None:
    """Highest footprint correlation over plane pairs at most ``max_plane_distance`` apart in
    depth (``za``, ``zb``: the sessions' z shifts onto the reference); None when no pair is."""
    best = None
    for pa, fa in a.patches.items():
        for pb, fb in b.patches.items():
            if abs((pa + za) - (pb + zb)) <= max_plane_distance + 1e-6:
                r = correlation(fa, fb)
                best = r if best is None else max(best, r)
    return best


def candidates(ua: list[Unit], ub: list[Unit], za: float, zb: float, *, pixel_um: tuple, max_distance: float,
               max_plane_distance: float, max_depth_difference: float | None = None
               ) -> list[tuple[int, int, float, float]]:
    """(i in ``ua``, j in ``ub``, centroid distance µm, footprint correlation) of every pair within
    ``max_distance`` µm whose footprints share a plane pair (:func:`best_correlation`) and, unless
    ``max_depth_difference`` is None, whose cells' depths (reference planes) differ by at most that.
    The depth gate keeps a neuron from matching another one straight above or below it: the
    footprint correlation, taken over neighbouring planes, cannot tell them apart."""
    if not ua or not ub:
        return []
    sy, sx = pixel_um
    pa = np.array([[u.y * sy, u.x * sx] for u in ua])
    pb = np.array([[u.y * sy, u.x * sx] for u in ub])
    tree = cKDTree(pb)
    out = []
    for i, near in enumerate(tree.query_ball_point(pa, max_distance)):
        for j in near:
            if max_depth_difference is not None and abs(ua[i].z - ub[j].z) > max_depth_difference + 1e-6:
                continue
            r = best_correlation(ua[i], ub[j], za, zb, max_plane_distance)
            if r is None:
                continue
            out.append((i, j, float(np.hypot(*(pa[i] - pb[j]))), r))
    return out
