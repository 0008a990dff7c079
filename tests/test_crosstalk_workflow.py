"""volume.crosstalk: subtract end to end on a simulated 3-D population (3 planes, plane p + 1
receiving 20 % of plane p's light, one motion), against the same session run with estimate.
Both register with shared motion, as an LBM session does by default."""
from __future__ import annotations

import csv

import pytest

from conftest import SMALL_S2P, make_config, snakemake

pytestmark = pytest.mark.workflow

OFFSETS = [[0, 0], [3, -2], [5, 1]]
C, K = 0.2, 1


@pytest.fixture(scope="module")
def xrun(tmp_path_factory):
    """The same simulated session run with crosstalk estimate and with subtract; scores of both."""
    from planeflow.synth.volume import score_volume, simulate_volume

    tmp = tmp_path_factory.mktemp("crosstalk")
    sim = simulate_volume(tmp / "raw", nplanes=3, nframes=400, Ly=128, Lx=128, cells_per_plane=25,
                          dz_um=15.0, offsets=OFFSETS, crosstalk=C, crosstalk_k=K, seed=7, name="xt")
    out = {"sim": sim}
    for mode in ("estimate", "subtract"):
        d = tmp / mode
        cfg = make_config(d, [{"session_id": "xt", "data_path": str(tmp / "raw"), "nplanes": 3,
                               "fs": 15.0, "dx": 1.0, "dy": 1.0, "dz": 15.0}], suite2p=SMALL_S2P,
                          volume={"crosstalk": mode}, registration={"shared_motion": "on"})
        snakemake(cfg, check=True)
        res = d / "results" / "xt"
        out[mode] = {"res": res, "score": score_volume(res, sim["ground_truth"])}
    # the residual: rule crosstalk's measure run again on the corrected binaries
    from planeflow.steps.crosstalk import crosstalk

    res = out["subtract"]["res"]
    parts = [{"plane_index": p, "part": 0, "ops": str(res / "crosstalk_subtract" / f"plane{p}" / "part0" / "ops.npy"),
              "bin": str(res / "crosstalk_subtract" / f"plane{p}" / "part0" / "data.bin")} for p in range(3)]
    rows = crosstalk(parts, str(tmp / "residual.tsv"), {"crosstalk_max_separation": 2, "crosstalk_frames": 1000,
                                                         "crosstalk_min": 0.03})["rows"]
    out["residual"] = {r["separation"]: r for r in rows}
    return out


def read_tsv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_subtract_removes_ghosts_and_keeps_cells(xrun):
    est, sub = xrun["estimate"]["score"], xrun["subtract"]["score"]
    table = {int(r["separation"]): r for r in read_tsv(xrun["subtract"]["res"] / "crosstalk" / "crosstalk.tsv")}
    resid = xrun["residual"]
    print(f"\nestimate: {est}\nsubtract: {sub}\ncrosstalk/crosstalk.tsv: {table}\nresidual: {resid}")
    # the coefficient subtracted: the planted one, in the planted direction only
    assert table[K]["subtracted"] == "true", table
    assert abs(float(table[K]["coefficient"]) - C) <= 0.05, table
    assert all(r["subtracted"] == "false" for k, r in table.items() if k != K), table
    # ghosts: accepted ROIs on planted ghosts drop; true cells are still found
    assert est["n_ghost_rois"] > 0, est
    assert sub["n_ghost_rois"] < est["n_ghost_rois"], (est, sub)
    assert sub["recall_all"] >= est["recall_all"] - 0.02, (est, sub)
    assert sub["ghosts_primary"] == 0, sub
    # what is left after subtraction, measured on the corrected binaries
    assert abs(resid[K]["coefficient"]) <= 0.03 and not resid[K]["significant"], resid
    # volume_stats/crosstalk.tsv (ROI-based, on the corrected data) sees much less than before
    assert sub["crosstalk"][K] < est["crosstalk"][K] - 0.1, (est, sub)


def test_subtract_jobs_leave_registration_untouched(xrun):
    import numpy as np

    res = xrun["subtract"]["res"]
    for p in range(3):
        reg = res / "registration" / f"plane{p}" / "part0" / "data.bin"
        cor = res / "crosstalk_subtract" / f"plane{p}" / "part0" / "data.bin"
        assert reg.stat().st_size == cor.stat().st_size
        a, b = np.fromfile(reg, np.int16), np.fromfile(cor, np.int16)
        ops = np.load(cor.parent / "ops.npy", allow_pickle=True).item()
        done = ops["crosstalk_subtracted"]
        if p == 0:                       # nothing leaks into the first plane
            assert done == [] and np.array_equal(a, b)
        else:
            assert [d["plane"] for d in done] == [p - 1] and not np.array_equal(a, b)
            assert ops["processing_history"][-1]["step"] == "crosstalk_subtract"
