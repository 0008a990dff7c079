"""volume.crosstalk: subtract end to end on a simulated 3-D population (3 planes, plane p + 1
receiving 20 % of plane p's light, one motion), against the same session run with estimate.
Both register with shared motion, as an LBM session does by default."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import yaml

from conftest import SMALL_S2P, dry_run_jobs, make_config, snakemake
from planeflow.io.tables import is_true, read_tsv
from planeflow.plan.layout import Layout

pytestmark = pytest.mark.workflow

OFFSETS = [[0, 0], [3, -2], [5, 1]]
C, K = 0.2, 1
SID, NPLANES = "xt", 3


def sha(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def changed(cfg, tmp, name, sessions=None, **volume):
    """A copy of config ``cfg`` with other volume settings (and another sessions sheet)."""
    c = yaml.safe_load(cfg.read_text())
    c["volume"] = {**c.get("volume", {}), **volume}
    if sessions is not None:
        c["sessions"] = str(sessions)
    out = tmp / f"{name}.yaml"
    out.write_text(yaml.safe_dump(c))
    return out


@pytest.fixture(scope="module")
def xrun(tmp_path_factory):
    """The same simulated session run with crosstalk estimate and with subtract; scores of both;
    with subtract, registration's binaries hashed before crosstalk_subtract ran and after the
    whole run, and the rules a dry run would rerun after settings changes."""
    from planeflow.synth.volume import score_volume, simulate_volume

    tmp = tmp_path_factory.mktemp("crosstalk")
    sim = simulate_volume(tmp / "raw", nplanes=NPLANES, nframes=400, Ly=128, Lx=128, cells_per_plane=25,
                          dz_um=15.0, offsets=OFFSETS, crosstalk=C, crosstalk_k=K, seed=7, name="xt")
    out = {"sim": sim}
    for mode in ("estimate", "subtract"):
        d = tmp / mode
        cfg = make_config(d, [{"session_id": SID, "data_path": str(tmp / "raw"), "nplanes": NPLANES,
                               "fs": 15.0, "dx": 1.0, "dy": 1.0, "dz": 15.0}], suite2p=SMALL_S2P,
                          volume={"crosstalk": mode}, registration={"shared_motion": "on"})
        lay = Layout(d / "results")
        reg_bins = [lay.part_file("registration", "bin", SID, p, 0) for p in range(NPLANES)]
        run = {"lay": lay, "cfg": cfg}
        if mode == "subtract":
            snakemake(cfg, "--until", "registration", check=True)
            assert not (d / "results" / SID / "crosstalk_subtract").exists()
            run["reg_before"] = [sha(b) for b in reg_bins]
        snakemake(cfg, check=True)
        run["reg_after"] = [sha(b) for b in reg_bins]
        run["score"] = score_volume(lay.session_dir(SID), sim["ground_truth"])
        out[mode] = run
    # what a dry run would rerun: nothing; after another volume setting that rule crosstalk
    # does not use; after another diameter in the sessions sheet
    d, cfg = tmp / "subtract", out["subtract"]["cfg"]
    sheet = d / "sessions_d8.tsv"
    sheet.write_text(_with_diameter((d / "sessions.tsv").read_text(), 8))
    out["reruns"] = {name: sorted({r for r, _ in dry_run_jobs(c, workdir=d)}) for name, c in (
        ("none", cfg), ("min_overlap", changed(cfg, tmp, "min_overlap", min_overlap=0.35)),
        ("crosstalk_min", changed(cfg, tmp, "crosstalk_min", crosstalk_min=0.05)),
        ("diameter", changed(cfg, tmp, "diameter", sessions=sheet)))}
    # the residual: rule crosstalk's measure run again on the corrected binaries
    from planeflow.steps.crosstalk import crosstalk

    lay = out["subtract"]["lay"]
    parts = [{"plane_index": p, "part": 0, "ops": lay.part_file("crosstalk_subtract", "ops", SID, p, 0),
              "bin": lay.part_file("crosstalk_subtract", "bin", SID, p, 0)} for p in range(NPLANES)]
    rows = crosstalk(parts, str(tmp / "residual.tsv"),
                     {"crosstalk_max_separation": 2, "crosstalk_frames": 1000,
                      "crosstalk_min": 0.03, "diameter": SMALL_S2P["diameter"]})["rows"]
    out["residual"] = {r["separation"]: r for r in rows}
    return out


def _with_diameter(sheet: str, diameter) -> str:
    """A sessions sheet with every session's diameter set."""
    head, *rows = [ln.split("\t") for ln in sheet.splitlines()]
    i = head.index("diameter")
    return "\n".join("\t".join(r) for r in [head] + [r[:i] + [str(diameter)] + r[i + 1:] for r in rows]) + "\n"


def test_subtract_removes_ghosts_and_keeps_cells(xrun):
    est, sub = xrun["estimate"]["score"], xrun["subtract"]["score"]
    lay = xrun["subtract"]["lay"]
    table = {int(r["separation"]): r for r in read_tsv(lay.crosstalk(SID))}
    resid = xrun["residual"]
    print(f"\nestimate: {est}\nsubtract: {sub}\ncrosstalk/coefficients.tsv: {table}\nresidual: {resid}")
    # the coefficient subtracted: the planted one, in the planted direction only
    assert is_true(table[K]["significant"]), table
    assert abs(float(table[K]["coefficient"]) - C) <= 0.05, table
    assert not any(is_true(r["significant"]) for k, r in table.items() if k != K), table
    # measured with the session's diameter (SMALL_S2P: 10 px), not registration's default 12
    assert "diameter 10.0 px" in open(lay.log("crosstalk", SID)).read()
    # ghosts: accepted ROIs on planted ghosts drop; true cells are still found
    assert est["n_ghost_rois"] > 0, est
    assert sub["n_ghost_rois"] < est["n_ghost_rois"], (est, sub)
    assert sub["recall_all"] >= est["recall_all"] - 0.02, (est, sub)
    assert sub["ghosts_primary"] == 0, sub
    # what is left after subtraction, measured on the corrected binaries
    # (nan: no plane pair is left that tells crosstalk from tissue both planes see)
    assert not abs(resid[K]["coefficient"]) > 0.03 and not resid[K]["significant"], resid
    # volume_stats/crosstalk.tsv (ROI-based, on the corrected data) sees much less than before
    assert not sub["crosstalk"][K] >= est["crosstalk"][K] - 0.1, (est, sub)   # nan: no usable pair left


def test_subtract_jobs_leave_registration_untouched(xrun):
    run = xrun["subtract"]
    lay = run["lay"]
    # registration's binaries, hashed before crosstalk_subtract ran and after the whole run
    assert run["reg_after"] == run["reg_before"]
    for p in range(NPLANES):
        reg = lay.part_file("registration", "bin", SID, p, 0)
        cor = lay.part_file("crosstalk_subtract", "bin", SID, p, 0)
        a, b = np.fromfile(reg, np.int16), np.fromfile(cor, np.int16)
        assert a.size == b.size
        ops = np.load(lay.part_file("crosstalk_subtract", "ops", SID, p, 0), allow_pickle=True).item()
        done = ops["crosstalk_subtracted"]
        if p == 0:                       # nothing leaks into the first plane: a link, not a copy
            assert done == [] and np.array_equal(a, b)
            assert os.path.islink(cor)
        else:
            assert [d["plane"] for d in done] == [p - 1] and not np.array_equal(a, b)
            assert ops["processing_history"][-1]["step"] == "crosstalk_subtract"


def test_a_setting_change_reruns_only_what_depends_on_it(xrun):
    re = xrun["reruns"]
    assert re["none"] == [], re                                  # up to date (the link included)
    # a volume setting rule crosstalk does not use: volume_stats and what reads it only
    assert "crosstalk" not in re["min_overlap"] and "crosstalk_subtract" not in re["min_overlap"]
    assert "detection" not in re["min_overlap"] and "volume_stats" in re["min_overlap"], re
    # one it uses, and the session's diameter: crosstalk again, and everything after it
    # (a changed sessions sheet reruns the session from binary_write on, as without subtract)
    for name in ("crosstalk_min", "diameter"):
        assert {"crosstalk", "crosstalk_subtract", "detection"} <= set(re[name]), (name, re)
