"""The volume half of rule volume_stats (steps._volume) on constructed inputs: offsets,
grouping without chaining, edge cases, and a bad offset override caught at parse time."""
from __future__ import annotations

import csv
import logging

import numpy as np

from scipy.ndimage import gaussian_filter

from conftest import make_config, snakemake
from planeflow.core import volume as vol
from planeflow.plan.layout import plane_folder_files
from planeflow.steps._volume import cells_across_planes

OPTIONS = dict(max_plane_distance=1, min_overlap=0.3, min_correlation=0.5, min_confidence=0.2,
               offsets={}, crosstalk="estimate", crosstalk_max_separation=3, crosstalk_min=0.03)
L, T = 96, 400


def texture(seed, shape=(L, L)):
    rng = np.random.default_rng(seed)
    return gaussian_filter(rng.standard_normal(shape), 2.0) * 10 + 100


def disk(cy, cx, r=4):
    yy, xx = np.mgrid[0:L, 0:L]
    m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    y, x = np.nonzero(m)
    return {"ypix": y.astype(np.int32), "xpix": x.astype(np.int32), "lam": np.ones(len(y), np.float32),
            "med": [int(cy), int(cx)], "npix": int(len(y))}


def events(seed):
    rng = np.random.default_rng(seed)
    s = (rng.random(T) < 0.03).astype(float) * 3
    return np.convolve(s, np.exp(-np.arange(40) / 15.0))[:T]


def write_plane(folder, mean, rois, traces, noise_seed=0):
    """A final plane folder: ops (meanImg, zero registration offsets), stat, iscell, F, Fneu."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(noise_seed)
    n = len(rois)
    F = np.asarray(traces, float).reshape(n, T) * 20 + 100 + rng.standard_normal((n, T))
    Fneu = 50 + rng.standard_normal((n, T)) * 0.1
    ops = {"Ly": L, "Lx": L, "meanImg": mean.astype(np.float32), "yoff": np.zeros(T), "xoff": np.zeros(T),
           "fs": 15.0, "tau": 1.0, "nframes": T}
    np.save(folder / "ops.npy", ops, allow_pickle=True)
    np.save(folder / "stat.npy", np.array(rois, dtype=object), allow_pickle=True)
    np.save(folder / "iscell.npy", np.ones((n, 2)) if n else np.zeros((0, 2)))
    np.save(folder / "F.npy", F.astype(np.float32))
    np.save(folder / "Fneu.npy", Fneu.astype(np.float32))
    return plane_folder_files(str(folder))


def run(tmp_path, planes, dz=15.0, **options):
    out = {k: str(tmp_path / f"{k}.tsv") for k in ("offsets", "crosstalk", "rois", "cells")}
    session = dict(session_id="t", planes=list(range(len(planes))), fs=15.0, dx=1.0, dy=1.0, dz=dz)
    cells_across_planes(planes, out, session, {**OPTIONS, **options})
    read = {}
    for k, p in out.items():
        with open(p) as fh:
            read[k] = list(csv.DictReader(fh, delimiter="\t"))
    return read


def test_phase_offset_recovers_shift_and_flags_blank():
    a = texture(1)
    b = np.roll(a, (3, -5), axis=(0, 1))
    dy, dx, conf = vol.phase_offset(a, b)
    assert abs(dy - 3) < 0.2 and abs(dx + 5) < 0.2 and conf > 0.5
    assert vol.phase_offset(a, np.zeros_like(a))[2] == 0.0
    assert vol.phase_offset(a, texture(2))[2] < 0.2      # unrelated images


def test_plane_offsets_chain_interpolate_and_override():
    base = texture(3, (L + 20, L + 20))
    truth = [(0, 0), (2, 1), (4, -1), (5, -3)]
    means = [base[10 - dy:10 - dy + L, 10 - dx:10 - dx + L] for dy, dx in truth]
    rows = vol.plane_offsets(means)
    assert [r["source"] for r in rows] == ["estimated"] * 4
    assert np.allclose([[r["dy_px"], r["dx_px"]] for r in rows], truth, atol=0.3)
    blank = list(means)
    blank[2] = np.zeros((L, L))
    rows = vol.plane_offsets(blank)
    assert rows[2]["source"] == "interpolated" and rows[3]["source"] == "estimated"
    assert np.allclose([rows[2]["dy_px"], rows[2]["dx_px"]], [3.5, -1], atol=0.3)  # between 1 and 3
    assert np.allclose([rows[3]["dy_px"], rows[3]["dx_px"]], truth[3], atol=0.3)   # chained 1 -> 3
    rows = vol.plane_offsets(means, overrides={1: (10, 10)})
    assert rows[1]["source"] == "config" and (rows[1]["dy_px"], rows[1]["dx_px"]) == (10, 10)
    assert np.allclose([rows[2]["dy_px"], rows[2]["dx_px"]], [12, 8], atol=0.3)    # chains from it


def test_grouping_does_not_chain_unrelated_cells():
    # A(0) matches B(1), B(1) matches C(2), A and C are not a match: not one group
    edges = {((0, 0), (1, 0)): 0.9, ((1, 0), (2, 0)): 0.8}
    groups = vol.group_rois([1, 1, 1], edges, lambda u, v: True, plane_distance=2)
    assert sorted(map(len, groups)) == [1, 2] and [(0, 0), (1, 0)] in groups
    # with plane_distance 1 the far pair is only checked for overlap: compatible -> one group
    groups = vol.group_rois([1, 1, 1], edges, lambda u, v: True, plane_distance=1)
    assert groups == [[(0, 0), (1, 0), (2, 0)]]
    groups = vol.group_rois([1, 1, 1], edges, lambda u, v: False, plane_distance=1)
    assert sorted(map(len, groups)) == [1, 2]
    # never two ROIs of one plane in one cell
    edges = {((0, 0), (1, 0)): 0.9, ((0, 1), (1, 0)): 0.8}
    groups = vol.group_rois([2, 1], edges, lambda u, v: True, plane_distance=1)
    assert sorted(map(len, groups)) == [1, 2]


def test_duplicate_across_planes_gets_one_cell_id(tmp_path):
    """Plane 1 is plane 0 moved by (3, -2): cell a is seen in both (brighter in plane 0), b only
    in plane 0, c only in plane 1 at b's place but with other activity."""
    base = texture(4, (L + 20, L + 20))
    m0 = base[10:10 + L, 10:10 + L].copy()
    m1 = base[7:7 + L, 12:12 + L].copy()
    a, b = (30, 30), (60, 60)
    planes = [
        write_plane(tmp_path / "p0", m0, [disk(*a), disk(*b)], [events(1) * 2, events(2)], 1),
        write_plane(tmp_path / "p1", m1, [disk(a[0] + 3, a[1] - 2), disk(b[0] + 3, b[1] - 2)],
                    [events(1), events(3)], 2),
    ]
    t = run(tmp_path, planes)
    off = t["offsets"][1]
    assert abs(float(off["dy_px"]) - 3) < 0.5 and abs(float(off["dx_px"]) + 2) < 0.5
    r = {(int(x["plane"]), int(x["roi"])): x for x in t["rois"]}
    assert r[(0, 0)]["cell_id"] == r[(1, 0)]["cell_id"]
    assert r[(0, 0)]["primary"] == "true" and r[(1, 0)]["primary"] == "false"
    assert r[(1, 0)]["duplicate_of_reason"] == "axial" and r[(1, 0)]["duplicate_of"] == "0:0"
    assert r[(0, 1)]["cell_id"] != r[(1, 1)]["cell_id"]            # same place, other activity
    assert len(t["cells"]) == 3
    cell = next(c for c in t["cells"] if c["cell_id"] == r[(0, 0)]["cell_id"])
    assert cell["planes"] == "0,1" and 0 < float(cell["z_um"]) < 15
    # volume coordinates: plane 1's ROI moved back by the offset lands on plane 0's
    assert abs(float(r[(1, 0)]["y_um"]) - float(r[(0, 0)]["y_um"])) < 0.6


def test_zero_rois_blank_plane_one_plane_and_missing_dz(tmp_path, caplog):
    m = texture(5)
    p0 = write_plane(tmp_path / "p0", m, [disk(40, 40)], [events(1)], 1)
    empty = write_plane(tmp_path / "p1", np.zeros((L, L)), [], np.zeros((0, T)))
    with caplog.at_level(logging.WARNING, logger="planeflow"):
        t = run(tmp_path / "a", [p0, empty], dz=None)
    assert [x["source"] for x in t["offsets"]] == ["estimated", "interpolated"]
    assert len(t["rois"]) == 1 and t["rois"][0]["z_um"] == "" and t["rois"][0]["primary"] == "true"
    assert len(t["cells"]) == 1
    assert "no dz" in caplog.text
    one = run(tmp_path / "b", [p0])
    assert len(one["offsets"]) == 1 and one["offsets"][0]["dy_px"] == "0"
    assert one["crosstalk"] == [] and len(one["cells"]) == 1
    none = run(tmp_path / "c", [empty])
    assert none["rois"] == [] and none["cells"] == []


def test_bad_offset_override_fails_the_dry_run(tmp_path):
    from planeflow.synth.simulate import simulate_session

    simulate_session(tmp_path / "raw", nplanes=2, nframes=60, Ly=32, Lx=32, cells_per_plane=1,
                     diameter=6, max_shift=1, seed=0)
    cfg = make_config(tmp_path, [{"session_id": "s", "data_path": str(tmp_path / "raw"), "nplanes": 2,
                                  "fs": 15.0}], volume={"offsets": {7: [1.0, 2.0]}})
    proc = snakemake(cfg, "-n")
    assert proc.returncode != 0
    assert "volume.offsets names plane '7'" in proc.stderr and "[0, 1]" in proc.stderr
    cfg = make_config(tmp_path, [{"session_id": "s", "data_path": str(tmp_path / "raw"), "nplanes": 2,
                                  "fs": 15.0}], volume={"offsets": {1: [1.0, 2.0]}})
    proc = snakemake(cfg, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rule volume_stats:" in proc.stdout + proc.stderr


def test_ome_zarr_without_dz_is_valid_and_unitless(tmp_path):
    import zarr
    from ome_zarr_models.v05 import Image

    from planeflow.io.omezarr import write_ome_volume

    img = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    lab = np.zeros((2, 16, 16), np.int32)
    lab[:, 4:8, 4:8] = 3
    write_ome_volume(tmp_path / "v.zarr", img, lab, (None, 1.5, 1.5), name="t")
    g = zarr.open_group(str(tmp_path / "v.zarr"), mode="r")
    Image.from_zarr(g)
    ms = g.attrs["ome"]["multiscales"][0]
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 1.5, 1.5]
    assert all("unit" not in a for a in ms["axes"])
    assert not (tmp_path / "v.zarr.tmp").exists()


def test_simulate_volume_truth_is_consistent(tmp_path):
    import tifffile

    from planeflow.cli import main
    from planeflow.synth.groundtruth import load_ground_truth

    assert main(["simulate", str(tmp_path), "--volume", "--nplanes", "3", "--nframes", "20", "--ly", "64",
                 "--lx", "64", "--cells", "6", "--dz", "15", "--offsets", "0,0;2,-1;3,2",
                 "--crosstalk", "0.2", "--crosstalk-k", "1", "--max-shift", "1"]) == 0
    gt = load_ground_truth(tmp_path)
    pages = tifffile.imread(tmp_path / "synthetic_00001.tif")
    assert pages.shape == (3 * 20, 64, 64) and pages.dtype == np.int16
    assert gt["offsets"].tolist() == [[0, 0], [2, -1], [3, 2]] and gt["crosstalk_k"] == 1
    for p in range(3):
        ids = set(np.unique(gt["labels"][p]).tolist()) - {0}
        assert ids == set((np.flatnonzero(gt["cell_visible"][:, p]) + 1).tolist())
        assert np.allclose(gt["cell_weight"][:, p] >= gt["visible_weight"], gt["cell_visible"][:, p])
    assert (gt["ghost_labels"][1:] == gt["labels"][:-1]).all() and not gt["ghost_labels"][0].any()
    # a cell seen in two planes sits at its position + each plane's offset
    c = int(np.flatnonzero(gt["cell_visible"].sum(1) == 2)[0]) if (gt["cell_visible"].sum(1) == 2).any() else None
    if c is not None:
        p = [int(v) for v in np.flatnonzero(gt["cell_visible"][c])]
        cy = [np.argwhere(gt["labels"][q] == c + 1).mean(0) for q in p]
        assert np.allclose(cy[1] - cy[0], gt["offsets"][p[1]] - gt["offsets"][p[0]], atol=1.0)


def test_ghosts_into_a_dim_plane_count_cells_too_faint_to_be_visible_at_their_source(tmp_path):
    """A dim plane's ghost labels hold every source cell whose ghost outshines a visible cell of
    the dim plane's own, visible at its source or not (a view of weight 0.24 at c 0.15 is 0.036 of a
    full cell, more than any cell of a plane at 0.025); a bright plane's are its source's visible cells."""
    from planeflow.synth.volume import RENDER_WEIGHT, simulate_volume

    info = simulate_volume(tmp_path, nplanes=3, nframes=10, Ly=96, Lx=96, cells_per_plane=6, dz_um=15.0,
                           crosstalk=0.2, crosstalk_k=1, brightness=[1.0, 0.02, 1.0], max_shift=1, seed=3)
    gt = np.load(info["ground_truth"])
    w, vis, thr = gt["cell_weight"], gt["cell_visible"], float(gt["visible_weight"])
    assert (gt["ghost_labels"][2] == gt["labels"][1]).all() and not gt["ghost_labels"][0].any()
    seen = (vis[:, 0] | (0.2 * w[:, 0] >= thr * 0.02)) & (w[:, 0] >= RENDER_WEIGHT)
    ids = set(np.unique(gt["ghost_labels"][1]).tolist()) - {0}
    assert ids <= set((np.flatnonzero(seen) + 1).tolist())
    faint = set((np.flatnonzero(seen & ~vis[:, 0]) + 1).tolist())
    assert faint and ids & faint, "the seed plants a cell too faint to be visible in plane 0"
