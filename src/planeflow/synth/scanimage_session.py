"""Synthetic ScanImage recordings: LBM planes as channels, multi-ROI stripes with fly-to
lines, a bidirectional scan-phase offset, split over several files.

The movie itself comes from :func:`planeflow.synth.simulate.simulate_session` (planted neurons,
motion, noise) on the *plane image*: the mROIs side by side. Each page is then laid out
as ScanImage writes an mROI frame: the ROIs stacked vertically in order, ``fly_to_lines``
rows between them, the odd lines shifted by the scan-phase offset, with the ``SI.*``
Software tag and the RoiGroups Artist tag. Ground truth stays in plane-image coordinates,
which is where planeflow's stitch mode and the merge of separate ROIs put the results.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


#: scan angle of one pixel of the simulated mROIs (degrees)
DEG_PER_PX = 0.05


def page_layout(widths: list[int], height: int, fly_to_lines: int) -> tuple[int, int, list[tuple[int, int]]]:
    """Page shape (rows, cols) and the page rows of each ROI stripe."""
    rows, y = [], 0
    for _ in widths:
        rows.append((y, y + height))
        y += height + fly_to_lines
    return y - fly_to_lines, max(widths), rows


def to_page(plane_img: np.ndarray, widths: list[int], fly_to_lines: int, fill: int = 0) -> np.ndarray:
    """(n, H, sum(w)) plane images → (n, page rows, max(w)) mROI pages."""
    n, H, _ = plane_img.shape
    Ly, Lx, rows = page_layout(widths, H, fly_to_lines)
    page = np.full((n, Ly, Lx), fill, plane_img.dtype)
    x = 0
    for (y0, y1), w in zip(rows, widths):
        page[:, y0:y1, :w] = plane_img[:, :, x:x + w]
        x += w
    return page


def simulate_scanimage_session(out_dir, *, nplanes=3, nframes=600, roi_widths=(64, 64), height=128,
                               fly_to_lines=8, bidiphase=2, nfiles=2, fs=15.0, tau=1.0,
                               cells_per_plane=20, diameter=10, max_shift=3, seed=0,
                               name="lbm", zoom=2.0, brightness=None, roi_centers_deg=None,
                               objective_resolution=15.0) -> dict:
    """Write an LBM mROI session in ScanImage format; return files, ground truth, layout.

    ``bidiphase``: odd lines are shifted by this many pixels (``planeflow.core.bidiphase``'s
    convention: ``odd_row[x] ≈ even_row[x - d]``); 0 for none.
    ``roi_centers_deg``: each mROI's scan-field centre [x, y] in degrees (default: side by
    side around 0); the fields are ``DEG_PER_PX`` degrees per pixel, ``objective_resolution``
    µm per degree. Returned ``fields``: per ROI its ``center_deg``, ``size_deg`` and its
    column offset ``x0`` in the plane image (where the ground truth lies).
    """
    import tifffile

    from planeflow.core.bidiphase import plant_bidiphase
    from planeflow.synth.scanimage_writer import make_tags, write_scanimage_tiff
    from planeflow.synth.simulate import simulate_session

    out_dir = Path(out_dir)
    work = out_dir / ".plane_movie"
    widths = [int(w) for w in roi_widths]
    sim = simulate_session(work, nplanes=nplanes, nframes=nframes, Ly=height, Lx=sum(widths),
                           cells_per_plane=cells_per_plane, diameter=diameter, fs=fs, tau=tau,
                           max_shift=max_shift, nfiles=1, seed=seed, name=name, brightness=brightness)
    deg_per_px = DEG_PER_PX
    rois = [{"pixel_resolution": [w, height], "size_deg": [w * deg_per_px, height * deg_per_px],
             "name": f"roi{i + 1}"} for i, w in enumerate(widths)]
    if roi_centers_deg is not None:
        for r, c in zip(rois, roi_centers_deg):
            r["center_deg"] = [float(c[0]), float(c[1])]
    Ly, Lx, _ = page_layout(widths, height, fly_to_lines)
    line_period = 4e-5
    software, artist = make_tags(fs=fs, nplanes_as_channels=nplanes, rois=rois, page_shape=(Ly, Lx),
                                 fly_to_lines=fly_to_lines, zoom=zoom, bidirectional=True,
                                 line_period=line_period, objective_resolution=objective_resolution)
    # whole volumes per file, as evenly as possible
    bounds = np.linspace(0, nframes, nfiles + 1).astype(int)
    files = []
    with tifffile.TiffFile(sim["files"][0]) as src:
        for k in range(nfiles):
            v0, v1 = bounds[k], bounds[k + 1]

            def pages(v0=v0, v1=v1):
                for v in range(v0, v1, 50):
                    vv = min(v1, v + 50)
                    block = src.asarray(key=range(v * nplanes, vv * nplanes))
                    block = to_page(block.reshape(-1, height, sum(widths)), widths, fly_to_lines)
                    if bidiphase:
                        block = plant_bidiphase(block, bidiphase)
                    yield from block

            path = out_dir / f"{name}_{k + 1:05d}.tif"
            write_scanimage_tiff(path, pages(), software=software, artist=artist,
                                 pages_per_frame=nplanes, fs=fs, first_frame=int(v0) + 1)
            files.append(str(path))
    gt = out_dir / "ground_truth.npz"
    Path(sim["ground_truth"]).replace(gt)
    for f in sim["files"]:
        Path(f).unlink()
    work.rmdir()
    return {"files": files, "ground_truth": str(gt), "page_shape": (Ly, Lx), "roi_widths": widths,
            "fly_to_lines": fly_to_lines, "bidiphase": bidiphase, "nplanes": nplanes,
            "nframes": nframes, "plane_shape": (height, sum(widths)), "fs": fs,
            "objective_resolution": objective_resolution,
            "fields": [{"center_deg": r.get("center_deg"), "size_deg": r["size_deg"], "x0": int(x0)}
                       for r, x0 in zip(rois, np.cumsum([0] + widths[:-1]))]}


def simulate_piezo_session(out_dir, *, nplanes=3, nframes=400, Ly=128, Lx=128, frames_per_slice=1,
                           flyback=1, fast=True, dz=15.0, fs=15.0, tau=1.0, cells_per_plane=20,
                           diameter=10, max_shift=3, seed=0, name="piezo") -> dict:
    """Write a piezo z-stack in ScanImage format (one file) with its ground truth.

    Each volume holds, per plane, ``frames_per_slice`` copies of the plane's frame, then
    ``flyback`` bright noise frames when the stack is ``fast`` (ScanImage saves flyback
    frames only for fast-z stacks; a slow stack's header may still name them).
    ``nframes``: volumes (frames per plane after averaging the slices).
    """
    import tifffile

    from planeflow.synth.scanimage_writer import make_tags, write_scanimage_tiff
    from planeflow.synth.simulate import simulate_session

    out_dir = Path(out_dir)
    work = out_dir / ".plane_movie"
    sim = simulate_session(work, nplanes=nplanes, nframes=nframes, Ly=Ly, Lx=Lx,
                           cells_per_plane=cells_per_plane, diameter=diameter, fs=fs, tau=tau,
                           max_shift=max_shift, nfiles=1, seed=seed, name=name)
    per_volume = nplanes * frames_per_slice + (flyback if fast else 0)
    software, _ = make_tags(fs=fs * per_volume, page_shape=(Ly, Lx), bidirectional=False,
                            stack={"nplanes": nplanes, "dz": dz, "frames_per_slice": frames_per_slice,
                                   "flyback": flyback, "fast": fast})
    rng = np.random.default_rng(seed + 1)

    def pages():
        with tifffile.TiffFile(sim["files"][0]) as src:
            for v0 in range(0, nframes, 50):
                v1 = min(nframes, v0 + 50)
                block = src.asarray(key=range(v0 * nplanes, v1 * nplanes)).reshape(v1 - v0, nplanes, Ly, Lx)
                for vol in block:
                    for plane in vol:
                        for _ in range(frames_per_slice):
                            yield plane
                    if fast:
                        for _ in range(flyback):  # the piezo moving back: bright, structureless
                            yield rng.integers(0, int(vol.max()) + 1, (Ly, Lx)).astype(vol.dtype)

    path = out_dir / f"{name}_00001.tif"
    write_scanimage_tiff(path, pages(), software=software, fs=fs * per_volume)
    gt = out_dir / "ground_truth.npz"
    Path(sim["ground_truth"]).replace(gt)
    for f in sim["files"]:
        Path(f).unlink()
    work.rmdir()
    return {"files": [str(path)], "ground_truth": str(gt), "nplanes": nplanes, "nframes": nframes,
            "pages_per_volume": per_volume, "fs": fs, "dz": dz}
