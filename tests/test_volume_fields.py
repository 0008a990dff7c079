"""Volume coordinates of multi-ROI (mesoscope) sessions at their scan-field positions, plane
offsets per part for roi_mode separate, and plane offsets from the sessions sheet."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from conftest import make_config, snakemake
from planeflow import PlaneflowError
from planeflow.core import volume as vol
from planeflow.plan import config as pfconfig
from planeflow.plan.layout import plane_folder_files
from planeflow.steps._volume import cells_across_planes as volume

OBJRES = 15.0                     # µm per degree, as written in the header
#: two fields: pixel resolution [w, h], size [w, h] and centre [x, y] in degrees (ScanImage order)
FIELDS = [dict(px=[8, 10], size=[0.8, 0.5], center=[-3.0, 1.0]),
          dict(px=[6, 10], size=[0.3, 1.0], center=[4.0, -2.5])]
FLY = 2


def write_mroi_file(path, nframes=50):
    """A single-plane ScanImage mROI file of the two FIELDS, stacked with FLY fly-to lines."""
    from planeflow.synth.scanimage_writer import make_tags, write_scanimage_tiff

    rois = [{"pixel_resolution": f["px"], "size_deg": f["size"], "center_deg": f["center"]} for f in FIELDS]
    software, artist = make_tags(fs=10.0, rois=rois, fly_to_lines=FLY, objective_resolution=OBJRES,
                                 line_period=1e-4)
    Ly = sum(f["px"][1] for f in FIELDS) + FLY
    Lx = max(f["px"][0] for f in FIELDS)
    pages = np.random.default_rng(0).integers(0, 100, (nframes, Ly, Lx)).astype(np.int16)
    write_scanimage_tiff(path, pages, software=software, artist=artist, fs=10.0)
    return path


def truth_um(k, row, col):
    """Microscope (y, x) in µm of pixel (row, col) of field k, from the planted geometry."""
    f = FIELDS[k]
    (cx, cy), (sx, sy), (w, h) = f["center"], f["size"], f["px"]
    return (OBJRES * (cy - sy / 2 + (row + 0.5) * sy / h), OBJRES * (cx - sx / 2 + (col + 0.5) * sx / w))


@pytest.mark.parametrize("mode", ["stitch", "separate", "whole"])
def test_scan_field_geometry_from_the_header(tmp_path, mode):
    from planeflow.plan.session import session_fields, session_metadata

    write_mroi_file(tmp_path / "raw" / "m_00001.tif")
    meta = session_metadata({"session_id": "m", "data_path": str(tmp_path / "raw")}, str(tmp_path / "res"),
                            {"roi_mode": mode})
    fields = meta["fields"]
    assert session_fields(meta) == fields and len(fields) == 2
    # where each field's pixels lie in the plane image of this roi_mode
    origin = {"stitch": [(0, 0), (0, 8)], "separate": [(0, 0), (0, 8)], "whole": [(0, 0), (10 + FLY, 0)]}[mode]
    for k, f in enumerate(fields):
        assert f["rect"] == [origin[k][0], origin[k][1], FIELDS[k]["px"][1], FIELDS[k]["px"][0]]
        assert np.allclose(f["center_um"], [OBJRES * FIELDS[k]["center"][1], OBJRES * FIELDS[k]["center"][0]])
        for row, col in [(0, 0), (9, FIELDS[k]["px"][0] - 1), (4, 3)]:
            y, x = origin[k][0] + row, origin[k][1] + col
            assert vol.field_index(fields, y, x) == k
            assert np.allclose(vol.field_um(f, y, x), truth_um(k, row, col))
            assert np.allclose(vol.volume_um(y, x, k, fields, 9.9, 9.9), truth_um(k, row, col))
    # corners of a field are half a pixel inside its scan field's edges
    y0, x0 = vol.field_um(fields[1], origin[1][0] - 0.5, origin[1][1] - 0.5)
    assert np.allclose([y0, x0], [OBJRES * (-2.5 - 0.5), OBJRES * (4.0 - 0.15)])
    if mode == "whole":
        assert vol.field_index(fields, 10.5, 3) is None       # a fly-to line
    # an old cache (no "fields", no objective resolution) derives the same fields
    old = {k: v for k, v in meta.items() if k != "fields"}
    old["scanimage"] = {k: v for k, v in meta["scanimage"].items() if k != "objective_resolution"}
    assert session_fields(old) == fields


def test_single_field_session_has_no_fields(tmp_path):
    from planeflow.plan.session import session_metadata
    from planeflow.synth.scanimage_writer import make_tags, write_scanimage_tiff

    software, artist = make_tags(fs=10.0, page_shape=(12, 12))
    write_scanimage_tiff(tmp_path / "raw" / "s.tif", np.zeros((50, 12, 12), np.int16), software=software,
                         artist=artist, fs=10.0)
    meta = session_metadata({"session_id": "s", "data_path": str(tmp_path / "raw")}, str(tmp_path / "res"))
    assert meta["fields"] is None
    assert vol.volume_um(2.0, 3.0, None, None, 1.5, 2.0) == (3.0, 6.0)


# ----------------------------------------------------------------------------- sheet offsets
def write_sheet(path, cells: str):
    path.write_text("session_id\tdata_path\toffsets\n" f"a\traw\t\n" f"b\traw\t{cells}\n")
    return str(path)


def test_sheet_offsets_parsed_and_checked(tmp_path):
    assert pfconfig.parse_offsets("3:2.5,-1; 5:0,1") == {3: [2.5, -1.0], 5: [0.0, 1.0]}
    assert pfconfig.parse_offsets(" 1 : -0.5 , 2 ;") == {1: [-0.5, 2.0]}
    rows = pfconfig.read_sessions(write_sheet(tmp_path / "ok.tsv", "1:2.5,-1"))
    assert rows[0]["offsets"] is None and rows[1]["offsets"] == "1:2.5,-1"
    for bad in ("1:2.5", "1=2,3", "x:1,2", "1:2,3;1:0,0", "1:nan,2", ";"):
        with pytest.raises(PlaneflowError) as e:
            pfconfig.read_sessions(write_sheet(tmp_path / "bad.tsv", bad))
        assert "bad.tsv', row 3 (session 'b'), column offsets" in str(e.value), str(e.value)
    # the sheet wins over the config for its session, plane by plane; a missing plane is an error
    sheet = str(tmp_path / "ok.tsv")
    config = {"sessions": sheet, "volume": {"offsets": {1: [9, 9], 2: [7, 7]}}}
    meta = {"session_id": "b", "planes": [0, 1, 2]}
    got = pfconfig.volume_offsets(config, meta, rows[1])
    assert got == {1: {"offset": [2.5, -1.0], "source": "sheet"}, 2: {"offset": [7.0, 7.0], "source": "config"}}
    assert pfconfig.volume_offsets(config, {**meta, "session_id": "a"}, rows[0])[1]["source"] == "config"
    means = [np.random.default_rng(i).random((16, 16)) for i in range(3)]
    placed = vol.plane_offsets(means, {meta["planes"].index(p): v for p, v in got.items()})
    assert [r["source"] for r in placed[1:]] == ["sheet", "config"] and placed[1]["dx_px"] == -1.0
    with pytest.raises(PlaneflowError) as e:
        pfconfig.volume_offsets(config, meta, {**rows[1], "offsets": "4:1,1"})
    assert f"sessions sheet '{sheet}', row 3, column offsets: plane 4" in str(e.value)
    assert "[0, 1, 2]" in str(e.value)
    # volume-only columns do not reach the session's metadata fingerprint
    assert "offsets" not in pfconfig.metadata_row(rows[1])


def test_sheet_offsets_in_the_dry_run(tmp_path):
    from planeflow.synth.simulate import simulate_session

    simulate_session(tmp_path / "raw", nplanes=2, nframes=60, Ly=32, Lx=32, cells_per_plane=1,
                     diameter=6, max_shift=1, seed=0)
    cfg = make_config(tmp_path, [{"session_id": "s", "data_path": "raw"}], volume={"offsets": {1: [9, 9]}})

    def sheet(cell):
        (tmp_path / "sessions.tsv").write_text("session_id\tdata_path\tnplanes\tfs\toffsets\n"
                                               f"s\t{tmp_path / 'raw'}\t2\t15\t{cell}\n")

    sheet("7:1,2")
    proc = snakemake(cfg, "-n")
    assert proc.returncode != 0
    assert "row 2, column offsets: plane 7 is not a plane of session 's'" in proc.stderr, proc.stderr[-2000:]
    sheet("1:1,2.5")
    proc = snakemake(cfg, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rule volume_stats:" in proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- separate parts
H, W, T = 64, 64, 400


def texture(seed):
    rng = np.random.default_rng(seed)
    return gaussian_filter(rng.standard_normal((H + 20, W + 20)), 2.0) * 10 + 100


def disk(cy, cx, r=4):
    yy, xx = np.mgrid[0:H, 0:2 * W]
    y, x = np.nonzero((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r)
    return {"ypix": y, "xpix": x, "lam": np.ones(len(y), np.float32), "med": [int(cy), int(cx)],
            "npix": int(len(y))}


def events(seed):
    rng = np.random.default_rng(seed)
    s = (rng.random(T) < 0.03).astype(float) * 3
    return np.convolve(s, np.exp(-np.arange(40) / 15.0))[:T]


def write_plane(folder, mean, rois, traces, seed, part_refs=None):
    """A merged plane folder; ``part_refs``: each part's reference displacement c_k (its
    registration offsets are motion - c_k, as suite2p's)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    F = np.asarray(traces) * 20 + 100 + rng.standard_normal((len(rois), T))
    motion = rng.normal(0, 2, (T, 2))
    ops = {"Ly": H, "Lx": 2 * W, "meanImg": mean.astype(np.float32), "yoff": np.zeros(T), "xoff": np.zeros(T),
           "fs": 15.0, "tau": 1.0, "nframes": T}
    if part_refs is not None:
        ops["parts"] = [{"offset": [0, k * W], "Ly": H, "Lx": W, "yoff": motion[:, 0] - c[0],
                         "xoff": motion[:, 1] - c[1], "n_rois": 1} for k, c in enumerate(part_refs)]
        ops["yoff"], ops["xoff"] = ops["parts"][0]["yoff"], ops["parts"][0]["xoff"]
    np.save(folder / "ops.npy", ops, allow_pickle=True)
    np.save(folder / "stat.npy", np.array(rois, dtype=object), allow_pickle=True)
    np.save(folder / "iscell.npy", np.ones((len(rois), 2)))
    np.save(folder / "F.npy", F.astype(np.float32))
    np.save(folder / "Fneu.npy", (50 + rng.standard_normal((len(rois), T)) * 0.1).astype(np.float32))
    return plane_folder_files(str(folder))


def run_volume(tmp_path, planes, fields=None):
    out = {k: str(tmp_path / f"{k}.tsv") for k in ("offsets", "crosstalk", "rois", "cells")}
    session = dict(session_id="t", planes=[0, 1], fs=15.0, dx=1.0, dy=1.0, dz=10.0, nrois=2, fields=fields)
    options = dict(max_plane_distance=1, min_overlap=0.3, min_correlation=0.5, min_confidence=0.2,
                   offsets={}, crosstalk="off", crosstalk_max_separation=1, crosstalk_min=0.03)
    volume(planes, out, session, options)
    read = {}
    for k, p in out.items():
        with open(p) as fh:
            read[k] = list(csv.DictReader(fh, delimiter="\t"))
    return read


def test_separate_parts_get_their_own_offsets_and_one_id_per_cell(tmp_path):
    """Two parts registered separately (roi_mode separate). Plane 1 lies (2, -1) from plane 0;
    part 1's reference image is displaced by (-4, 3) from part 0's in plane 1 and by (1, 0)
    in plane 0, so part 1 of plane 1 shows the field moved by (2, -1) + (-4, 3) - (1, 0).
    Cells a (part 0) and b (part 1) are seen in both planes."""
    L, refs = np.array([2, -1]), [np.array([[0, 0], [1, 0]]), np.array([[0, 0], [-4, 3]])]
    shift = [[refs[p][k] + (L if p else 0) for k in range(2)] for p in (0, 1)]   # where part k shows the field
    bases = [texture(1), texture(2)]
    means = [np.hstack([b[10 - dy:10 - dy + H, 10 - dx:10 - dx + W] for b, (dy, dx) in zip(bases, shift[p])])
             for p in (0, 1)]
    a, b = np.array([30, 30]), np.array([34, W + 28])
    at = [[a + shift[p][0], b + shift[p][1]] for p in (0, 1)]
    planes = [write_plane(tmp_path / f"p{p}", means[p], [disk(*at[p][0]), disk(*at[p][1])],
                          [events(1) * (2 - p), events(2) * (2 - p)], p + 1, part_refs=refs[p]) for p in (0, 1)]
    fields = [{"rect": [0, k * W, H, W], "center_um": [100.0 * k, -500.0 + 900 * k], "size_um": [320.0, 320.0]}
              for k in range(2)]
    t = run_volume(tmp_path / "sep", planes, fields)
    assert np.allclose([float(t["offsets"][1]["dy_px"]), float(t["offsets"][1]["dx_px"])], L, atol=0.3)
    part_off = dict(kv.split(":") for kv in t["offsets"][1]["part_offsets"].split(";"))
    for k in range(2):    # part k's frames of plane 1 against its frames of plane 0
        want = shift[1][k] - shift[0][k]
        assert np.allclose([float(v) for v in part_off[str(k)].split(",")], want, atol=0.3), part_off
    r = {(int(x["plane"]), int(x["roi"])): x for x in t["rois"]}
    assert r[(0, 0)]["cell_id"] == r[(1, 0)]["cell_id"] and r[(0, 1)]["cell_id"] == r[(1, 1)]["cell_id"]
    assert r[(0, 0)]["cell_id"] != r[(0, 1)]["cell_id"] and len(t["cells"]) == 2
    assert [r[(p, i)]["field"] for p in (0, 1) for i in (0, 1)] == ["0", "1", "0", "1"]
    for i in (0, 1):   # one position per cell, in part 0's frame of plane 0 (µm: 5 per pixel)
        assert abs(float(r[(0, i)]["y_px"]) - float(r[(1, i)]["y_px"])) < 0.5
        assert abs(float(r[(0, i)]["x_um"]) - float(r[(1, i)]["x_um"])) < 2.5
    # b: recorded at (34, 28) + (1, 0) of field 1 = (34, 28) in part 0's frame:
    # centre + (index + 0.5 - 32) * 5 µm
    assert np.allclose([float(r[(0, 1)]["y_um"]), float(r[(0, 1)]["x_um"])],
                       [100 + (34 + 0.5 - 32) * 5, 400 + (28 + 0.5 - 32) * 5], atol=0.5)
    # without the parts' registration offsets one offset per plane cannot place both parts
    planes = [write_plane(tmp_path / f"q{p}", means[p], [disk(*at[p][0]), disk(*at[p][1])],
                          [events(1) * (2 - p), events(2) * (2 - p)], p + 1) for p in (0, 1)]
    t = run_volume(tmp_path / "one", planes)
    assert t["offsets"][1]["part_offsets"] == "" and len(t["cells"]) == 3
