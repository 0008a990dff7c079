"""Rule volume_stats' volume half end to end on a simulated 3-D population (4 planes, offsets, crosstalk)."""
from __future__ import annotations

import csv
import time

import pytest

from conftest import SMALL_S2P, make_config, snakemake

pytestmark = pytest.mark.workflow

OFFSETS = [[0, 0], [3, -2], [5, 1], [2, 4]]
C, K = 0.2, 2


@pytest.fixture(scope="module")
def vrun(tmp_path_factory):
    from planeflow.synth.volume import simulate_volume

    tmp = tmp_path_factory.mktemp("volume")
    sim = simulate_volume(tmp / "raw", nplanes=4, nframes=500, Ly=128, Lx=128, cells_per_plane=25,
                          dz_um=15.0, offsets=OFFSETS, crosstalk=C, crosstalk_k=K, seed=5, name="vol")
    cfg = make_config(tmp, [{"session_id": "vol", "data_path": str(tmp / "raw"), "nplanes": 4,
                             "fs": 15.0, "dx": 1.0, "dy": 1.0, "dz": 15.0}], suite2p=SMALL_S2P)
    t0 = time.time()
    snakemake(cfg, check=True)
    total = time.time() - t0
    res = tmp / "results" / "vol"
    with open(res / "benchmarks" / "volume_stats" / "session.tsv") as fh:
        bench = float(next(csv.DictReader(fh, delimiter="\t"))["s"])
    return {"res": res, "sim": sim, "total_s": total, "volume_s": bench}


def test_volume_against_planted_truth(vrun):
    from planeflow.synth.volume import score_volume

    s = score_volume(vrun["res"], vrun["sim"]["ground_truth"])
    print(f"\nvolume scores: {s}\nvolume_stats rule {vrun['volume_s']:.1f} s of a {vrun['total_s']:.0f} s run "
          f"({100 * vrun['volume_s'] / vrun['total_s']:.1f} %)")
    assert s["offset_err_px"] <= 1.0, s
    assert s["duplicates_before"] >= 0.05, s          # the simulation plants duplicates
    assert s["residual_duplicates"] <= 0.05, s
    assert s["wrong_merges"] <= 0.02, s
    assert s["recall_primary"] >= s["recall_all"] - 0.02, s
    assert s["ghosts_primary"] == 0, s
    assert abs(s["crosstalk"][K] - C) <= 0.05, s


def test_volume_tables_cover_every_roi_and_leave_planes_untouched(vrun):
    import numpy as np

    res = vrun["res"]
    with open(res / "volume_stats" / "rois.tsv") as fh:
        rois = list(csv.DictReader(fh, delimiter="\t"))
    with open(res / "volume_stats" / "cells.tsv") as fh:
        cells = list(csv.DictReader(fh, delimiter="\t"))
    n = sum(len(np.load(res / "suite2p" / f"plane{p}" / "stat.npy", allow_pickle=True)) for p in range(4))
    assert len(rois) == n
    ids = {r["cell_id"] for r in rois}
    assert ids == {c["cell_id"] for c in cells}
    assert sum(r["primary"] == "true" for r in rois) == len(cells)   # one primary per cell
    for r in rois:
        assert (r["duplicate_of_reason"] == "") == (r["primary"] == "true")
        assert r["duplicate_of_reason"] in ("", "axial", "crosstalk")
    # flags, never deletions: the plane folders hold nothing of the volume step
    assert not list((res / "suite2p").rglob("*.tsv"))


def test_volume_zarr_is_ome_zarr_with_one_label_per_cell(vrun):
    import numpy as np
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05 import Image

    path = vrun["res"] / "volume_stats" / "volume.zarr"
    group = zarr.open_group(str(path), mode="r")
    assert group.metadata.zarr_format == 3
    image = Image.from_zarr(group)                      # validates NGFF 0.5 (raises otherwise)
    assert [a.name for a in image.attributes.ome.multiscales[0].axes] == ["z", "y", "x"]
    assert image.labels is not None
    nodes = list(Reader(parse_url(str(path)))())
    scales = {str(n.zarr): n.metadata["coordinateTransformations"][0][0]["scale"] for n in nodes
              if n.metadata.get("coordinateTransformations")}
    assert len(scales) == 2 and all(s == [15.0, 1.0, 1.0] for s in scales.values())
    assert all(a["unit"] == "micrometer" for n in nodes if n.metadata.get("axes") for a in n.metadata["axes"])
    labels = np.asarray(group["labels/cells/0"][:])
    with open(vrun["res"] / "volume_stats" / "cells.tsv") as fh:
        cells = list(csv.DictReader(fh, delimiter="\t"))
    multi = [c for c in cells if "," in c["planes"]]
    assert multi
    for c in multi:                                     # one label value in every plane it spans
        for p in map(int, c["planes"].split(",")):
            assert (labels[p] == int(c["cell_id"])).any(), c
    # the aligned mean images: plane 1 moved back by its offset matches plane 0 better than before
    mean = np.asarray(group["0"][:])
    raw1 = np.load(vrun["res"] / "suite2p" / "plane1" / "ops.npy", allow_pickle=True).item()["meanImg"]
    inner = (slice(15, -15), slice(15, -15))

    def corr(a, b):
        return np.corrcoef(a[inner].ravel(), b[inner].ravel())[0, 1]

    assert corr(mean[0], mean[1]) > corr(mean[0], raw1) + 0.05


def test_qc_volume_measures_against_planted_truth(vrun):
    """QC reads the volume tables: crosstalk c = 0.2 from plane p into p + 2 is planted, so
    planes 2 and 3 receive it (and may hold ghosts) and planes 0 and 1 receive none and hold
    no ghost; the axial duplicates stay in the range the simulator plants (15 um spacing),
    below the warn threshold."""
    import json

    qc = json.loads((vrun["res"] / "qc" / "qc.json").read_text())
    planes = {p["plane"]: p for p in qc["planes"]}
    print("\nQC volume measures: " + "; ".join(
        f"plane {p}: dup {v['duplicate_fraction']:.2f} ghost {v['ghost_fraction']:.2f} "
        f"xt_in {v['crosstalk_in']:.3f} from '{v['crosstalk_from']}' {v['verdict']} {v['reasons']}"
        for p, v in planes.items()))
    with open(vrun["res"] / "volume_stats" / "rois.tsv") as fh:
        rois = list(csv.DictReader(fh, delimiter="\t"))
    for p, v in planes.items():
        acc = [r for r in rois if int(r["plane"]) == p and r["accepted"] == "true"]
        assert v["n_accepted"] == len(acc)
        ghosts = sum(r["duplicate_of_reason"] == "crosstalk" for r in acc)
        assert v["ghost_fraction"] == pytest.approx(ghosts / len(acc))
        assert 0.0 <= v["duplicate_fraction"] <= qc["thresholds"]["duplicate_fraction_warn"]
        if p >= K:      # targets: c x the light of plane p - K
            assert abs(v["crosstalk_in"] - C) <= 0.05, v
            assert v["crosstalk_from"].startswith(f"{p - K}:")
            assert any("receives crosstalk" in r for r in v["reasons"]) and v["verdict"] != "ok"
        else:
            assert v["crosstalk_in"] == 0.0 and v["crosstalk_from"] == "", v
            assert v["ghost_fraction"] == 0.0, v
            assert not any("crosstalk" in r for r in v["reasons"]), v
    assert sum(planes[p]["ghost_fraction"] for p in (2, 3)) > 0     # some ghosts were detected
    assert 0.05 <= sum(planes[p]["duplicate_fraction"] for p in planes) / len(planes) <= 0.4
    tsv = (vrun["res"] / "qc" / "qc.tsv").read_text().splitlines()
    assert {"duplicate_fraction", "ghost_fraction", "crosstalk_in"} <= set(tsv[0].split("\t"))


def test_longest_steps_start_first(vrun):
    """Job order on a machine with fewer cores than ready jobs (plan.resources.PRIORITY):
    every plane's binary_write, then every registration, before any detection starts
    (a detection that took a core while a registration waited made the last registration,
    and so the whole session, finish later)."""
    import datetime as dt

    def starts(step):
        out = []
        for log in sorted((vrun["res"] / "logs" / step).glob("*.log")):
            first = log.read_text().splitlines()[0]
            out.append(dt.datetime.strptime(first[:23], "%Y-%m-%d %H:%M:%S,%f"))
        assert len(out) == 4, step
        return out

    bw, reg, det = starts("binary_write"), starts("registration"), starts("detection")
    assert max(bw) <= min(reg), (bw, reg)
    assert max(reg) <= min(det), (reg, det)
