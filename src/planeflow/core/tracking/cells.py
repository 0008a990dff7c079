"""One session's cells as tracking sees them: :class:`SessionCells`, and :func:`read_session`,
which builds it from the tables rule ``volume_stats`` writes and the plane folders of ``merge``.

Every position is in the session's **common frame**: plane 0's registered frame, the volume's
plane offsets applied as ``volume_stats`` applies them (a feature at common-frame pixel
``(y, x)`` lies at ``(y + dy_px, x + dx_px)`` in plane ``p``'s registered frame).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from planeflow import PlaneflowError


@dataclass
class Footprint:
    """One ROI's pixels in the session's common frame (float coordinates: plane offsets may be
    subpixel) and their weights."""

    ypix: np.ndarray
    xpix: np.ndarray
    lam: np.ndarray

    def centroid(self) -> tuple[float, float]:
        """Weighted centre ``(y, x)``."""
        w = np.clip(np.asarray(self.lam, float), 0, None)
        w = w if w.sum() > 0 else np.ones(len(w))
        return float(np.dot(w, self.ypix) / w.sum()), float(np.dot(w, self.xpix) / w.sum())


@dataclass
class Cell:
    """One accepted cell of ``cells.tsv``: its ID, primary ROI, ROIs and footprint per plane
    (plane **number** -> :class:`Footprint`; ghosts left out), and its depth in planes."""

    cell_id: int
    primary: tuple[int, int]
    rois: list[tuple[int, int]]
    footprints: dict[int, Footprint]
    z_plane: float | None = None

    def depth(self, planes: list[int]) -> float:
        """Depth as a plane *index* (0 = first plane), fractional between planes."""
        if self.z_plane is not None and np.isfinite(self.z_plane):
            return float(self.z_plane)
        idx = [planes.index(p) for p in self.footprints]
        w = [float(np.clip(f.lam, 0, None).sum()) or 1.0 for f in self.footprints.values()]
        return float(np.dot(w, idx) / np.sum(w))


@dataclass
class SessionCells:
    """What tracking needs of one session (:func:`read_session`)."""

    session: str
    planes: list[int]
    dz_um: float | None
    dy_um: float | None
    dx_um: float | None
    means: np.ndarray            # (nplanes, Ly, Lx) mean images in the common frame
    cells: list[Cell] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.means.shape[1]), int(self.means.shape[2])

    def pixel_um(self) -> tuple[float, float]:
        """(dy, dx) in µm per pixel; 1 where the geometry does not say (positions then in px)."""
        return float(self.dy_um or self.dx_um or 1.0), float(self.dx_um or self.dy_um or 1.0)


def _need(path, what: str, session: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise PlaneflowError(f"session {session}: {what} {path} is missing; run the session's volume_stats "
                             "(and merge) first")
    return path


def _parse_rois(text: str) -> list[tuple[int, int]]:
    """``cells.tsv``'s ``rois`` cell (``plane:roi,plane:roi``)."""
    out = []
    for item in str(text).replace(";", ",").split(","):
        item = item.strip()
        if item:
            p, r = item.split(":")
            out.append((int(p), int(r)))
    return out


def _plane_files(plane_dir: Path, session: str):
    from planeflow.io.planefiles import load_array, load_ops

    ops = load_ops(_need(plane_dir / "ops.npy", "plane file", session))
    stat = load_array(_need(plane_dir / "stat.npy", "plane file", session), allow_pickle=True)
    return ops, stat


def read_session(session_id: str, *, cells_tsv, rois_tsv, offsets_tsv, plane_dirs: list,
                 geometry: dict) -> SessionCells:
    """Build :class:`SessionCells` of one session from its volume tables and plane folders.

    ``plane_dirs``: the ``suite2p/plane<p>/`` folders in the order of ``plane_offsets.tsv``'s
    rows; ``geometry``: ``dx``, ``dy``, ``dz`` in µm (None where unknown). Accepted cells of
    ``cells.tsv`` only; a cell's footprint is that of its ROIs listed there (crosstalk ghosts are
    not listed), moved into the common frame by each plane's offset. Raises
    :class:`~planeflow.PlaneflowError` when a table or plane file is missing.
    """
    from planeflow.core.volume.offsets import aligned_image
    from planeflow.io.tables import is_true, read_tsv

    offs = read_tsv(_need(offsets_tsv, "volume table", session_id))
    cell_rows = read_tsv(_need(cells_tsv, "volume table", session_id))
    _need(rois_tsv, "volume table", session_id)
    planes = [int(r["plane"]) for r in offs]
    if len(plane_dirs) != len(planes):
        raise PlaneflowError(f"session {session_id}: {len(plane_dirs)} plane folders for {len(planes)} planes "
                             "in plane_offsets.tsv")
    offset = {int(r["plane"]): (float(r["dy_px"] or 0), float(r["dx_px"] or 0)) for r in offs}
    stats, means = {}, []
    for p, d in zip(planes, plane_dirs):
        ops, stat = _plane_files(Path(d), session_id)
        stats[p] = stat
        means.append(aligned_image(np.asarray(ops["meanImg"], np.float32), *offset[p]))
    dz = geometry.get("dz")
    cells = []
    for row in cell_rows:
        if not is_true(row.get("accepted", "true")) or not row.get("cell_id"):
            continue
        rois = _parse_rois(row["rois"])
        fps = {}
        for p, r in rois:
            s = stats[p][r]
            dy, dx = offset[p]
            lam = np.asarray(s.get("lam", np.ones(len(s["ypix"]))), float)
            fps.setdefault(p, []).append(Footprint(np.asarray(s["ypix"], float) - dy,
                                                   np.asarray(s["xpix"], float) - dx, lam))
        # two ROIs of one cell in one plane (rare): one footprint
        merged = {p: Footprint(*(np.concatenate([getattr(f, a) for f in v]) for a in ("ypix", "xpix", "lam")))
                  for p, v in fps.items()}
        z = row.get("z_um")
        z_plane = None
        if z not in (None, "") and dz:
            z_plane = float(np.interp(float(z) / float(dz), planes, np.arange(len(planes))))
        cells.append(Cell(cell_id=int(row["cell_id"]),
                          primary=(int(row["primary_plane"]), int(row["primary_roi"])),
                          rois=rois, footprints=merged, z_plane=z_plane))
    return SessionCells(session=str(session_id), planes=planes, dz_um=_num(dz), dy_um=_num(geometry.get("dy")),
                        dx_um=_num(geometry.get("dx")), means=np.stack(means).astype(np.float32), cells=cells)


def _num(v) -> float | None:
    return None if v is None or v == "" else float(v)


def check_sessions(sessions: list[SessionCells]) -> None:
    """One clear error when the sessions of a subject cannot be compared: none given, another
    plane count, another pixel size or plane spacing, or another field of view."""
    if not sessions:
        raise PlaneflowError("tracking: no sessions given")
    first = sessions[0]
    names = [s.session for s in sessions]
    if len(set(names)) != len(names):
        raise PlaneflowError(f"tracking: session names repeat: {names}")
    for s in sessions[1:]:
        if len(s.planes) != len(first.planes):
            raise PlaneflowError(f"tracking: sessions of one subject must have the same planes; {first.session} has "
                                 f"{len(first.planes)}, {s.session} {len(s.planes)}")
        for key in ("dx_um", "dy_um", "dz_um"):
            a, b = getattr(first, key), getattr(s, key)
            if (a is None) != (b is None) or (a is not None and not np.isclose(a, b, rtol=1e-3)):
                raise PlaneflowError(f"tracking: sessions of one subject must share the pixel size and plane "
                                     f"spacing; {key[:2]} is {a} µm in {first.session}, {b} in {s.session}")
        if s.shape != first.shape:
            raise PlaneflowError(f"tracking: sessions of one subject must image the same field size; "
                                 f"{first.session} is {first.shape} px, {s.session} {s.shape}")
