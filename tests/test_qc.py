"""QC's volume measures on constructed tables (no suite2p run): duplicate and ghost
fractions per plane from rois.tsv, the crosstalk into each plane from crosstalk.tsv, their
verdicts, and qc() with and without the volume tables."""
from __future__ import annotations

import json

import numpy as np
import pytest

from planeflow import PlaneflowError
from planeflow.steps.qc import crosstalk_into, judge, qc, volume_fractions


def roi(plane, accepted=True, primary=True, reason=""):
    return {"plane": str(plane), "accepted": "true" if accepted else "false",
            "primary": "true" if primary else "false", "duplicate_of_reason": reason}


def xt(k, c, significant=True, method="joint"):
    return {"separation": str(k), "coefficient": "" if c is None else str(c), "method": method,
            "significant": "true" if significant else "false"}


def defaults() -> dict:
    from planeflow.plan.config import with_defaults

    return with_defaults("qc", None)


def test_fractions_count_accepted_non_primary_rois_by_reason():
    rows = ([roi(0)] * 8 + [roi(0, primary=False, reason="axial")] * 2
            + [roi(1)] * 5 + [roi(1, primary=False, reason="axial")] * 3
            + [roi(1, primary=False, reason="crosstalk")] * 2
            # rejected ROIs count in neither numerator nor denominator
            + [roi(1, accepted=False, primary=False, reason="crosstalk")] * 7
            + [roi(2, accepted=False)] * 4)
    f = volume_fractions(rows, [0, 1, 2, 3])
    none = {"unreliable": None}
    assert f[0] == {"duplicate_fraction": 0.2, "ghost_fraction": 0.0, **none}
    assert f[1] == {"duplicate_fraction": 0.3, "ghost_fraction": 0.2, **none}
    assert f[2] == {"duplicate_fraction": None, "ghost_fraction": None, **none}   # no accepted ROI
    assert f[3] == {"duplicate_fraction": None, "ghost_fraction": None, **none}   # no ROI at all
    assert volume_fractions(None, [0])[0] == {"duplicate_fraction": None, "ghost_fraction": None, **none}


def test_crosstalk_reaches_only_planes_with_a_source():
    # plane index i + k receives c x plane i: k = 2 -> planes 2, 3 from 0, 1; k = -1 -> planes
    # 0..2 from 1..3; insignificant and empty coefficients count nowhere
    rows = [xt(1, 0.5, significant=False), xt(-1, 0.04, method="recorded"), xt(2, 0.2), xt(-2, None),
            xt(3, "nan")]
    out = crosstalk_into(rows, [10, 11, 12, 13])
    assert out[10]["crosstalk_in"] == pytest.approx(0.04) and out[10]["crosstalk_from"] == "11:0.04"
    assert out[10]["crosstalk_upper_bound"]
    assert out[12]["crosstalk_in"] == pytest.approx(0.24) and out[12]["crosstalk_from"] == "13:0.04,10:0.2"
    assert out[13]["crosstalk_in"] == pytest.approx(0.2) and out[13]["crosstalk_from"] == "11:0.2"
    assert not out[13]["crosstalk_upper_bound"]
    none = crosstalk_into([xt(1, 0.01, significant=False)], [0, 1])
    assert none[0] == none[1] == {"crosstalk_in": 0.0, "crosstalk_from": "", "crosstalk_upper_bound": False}
    for table in (None, []):  # crosstalk off or one plane: not measured
        assert crosstalk_into(table, [0])[0]["crosstalk_in"] is None


def test_judge_warns_on_volume_measures_above_their_thresholds():
    opts = defaults()
    base = {"failure": None, "n_rois": 20, "at_limit_fraction": 0.0, "regdx_max": None, "consensus_corr": None,
            "snr": 2.0, "saturated_fraction": 0.0}
    normal = {**base, "duplicate_fraction": 0.3, "ghost_fraction": 0.0, "crosstalk_in": 0.05}
    assert judge(normal, opts, True) == []
    bad = {**base, "duplicate_fraction": 0.75, "ghost_fraction": 0.25, "crosstalk_in": 0.2,
           "crosstalk_from": "0:0.2", "crosstalk_upper_bound": True}
    reasons = judge(bad, opts, True)
    assert [lv for lv, _ in reasons] == ["warn"] * 3
    text = " ".join(t for _, t in reasons)
    assert "75% of the accepted ROIs are second views" in text
    assert "25% of the accepted ROIs are crosstalk ghosts" in text
    assert "receives crosstalk 0.20 x the light of plane(s) 0:0.2" in text and "upper bound" in text
    assert judge({**base, "duplicate_fraction": None, "ghost_fraction": None, "crosstalk_in": None},
                 opts, True) == []


def _plane(tmp, p, n_rois, nframes=40, L=32):
    """A plane's final folder and one registered binary, as qc reads them."""
    rng = np.random.default_rng(p)
    d = tmp / f"plane{p}"
    d.mkdir()
    mov = (200 + 50 * rng.standard_normal((nframes, L, L))).astype(np.int16)
    mov[:, 8:16, 8:16] += 300
    mov.tofile(d / "data.bin")
    ops = {"Ly": L, "Lx": L, "nframes": nframes, "meanImg": mov.mean(0), "registration": {"maxregshift": 0.1},
           "yoff": np.zeros(nframes, int), "xoff": np.zeros(nframes, int)}
    np.save(d / "ops.npy", ops, allow_pickle=True)
    np.save(d / "stat.npy", np.array([{"ypix": np.arange(3), "xpix": np.arange(3)}] * n_rois, dtype=object),
            allow_pickle=True)
    np.save(d / "iscell.npy", np.ones((n_rois, 2)))
    return {"plane": p, "ops": str(d / "ops.npy"), "stat": str(d / "stat.npy"), "iscell": str(d / "iscell.npy"),
            "bins": [str(d / "data.bin")], "parts_ops": [str(d / "ops.npy")]}


def _write(path, rows):
    cols = list(rows[0]) if rows else ["separation", "coefficient"]
    path.write_text("\t".join(cols) + "\n" + "".join("\t".join(r[c] for c in cols) + "\n" for r in rows))
    return str(path)


def test_qc_with_and_without_volume_tables(tmp_path):
    planes = [_plane(tmp_path, p, 10) for p in range(3)]
    session = {"session_id": "s", "stack_type": None, "simultaneous": True, "shared_motion": False}
    opts = defaults()

    def run(name, volume):
        out = {k: str(tmp_path / f"{name}.{k}") for k in ("table", "json", "shifts", "table_figure")}
        return qc(planes, out, session, opts, volume), out

    summary, _ = run("plain", None)                          # no tables: measures empty, no reason
    assert all(p["duplicate_fraction"] is None and p["crosstalk_in"] is None for p in summary["planes"])
    assert all(p["verdict"] == "ok" for p in summary["planes"]), summary["planes"]

    rois = [roi(0)] * 10 + [roi(1)] * 2 + [roi(1, primary=False, reason="axial")] * 8 + \
        [roi(2)] * 7 + [roi(2, primary=False, reason="crosstalk")] * 3
    volume = {"rois": _write(tmp_path / "rois.tsv", rois),
              "crosstalk": _write(tmp_path / "crosstalk.tsv", [xt(2, 0.15), xt(-2, 0.01, significant=False)])}
    summary, out = run("vol", volume)
    v = {p["plane"]: p for p in summary["planes"]}
    assert (v[0]["verdict"], v[0]["crosstalk_in"], v[0]["duplicate_fraction"]) == ("ok", 0.0, 0.0)
    assert v[1]["verdict"] == "warn" and v[1]["duplicate_fraction"] == 0.8
    assert v[2]["verdict"] == "warn" and v[2]["ghost_fraction"] == pytest.approx(0.3)
    assert v[2]["crosstalk_in"] == pytest.approx(0.15) and v[2]["crosstalk_from"] == "0:0.15"
    assert json.loads(open(out["json"]).read())["verdicts"] == {"ok": [0], "warn": [1, 2], "fail": []}
    header, *lines = open(out["table"]).read().splitlines()
    cols = header.split("\t")
    assert lines[2].split("\t")[cols.index("ghost_fraction")] == "0.3"

    with pytest.raises(PlaneflowError, match="rois.tsv does not exist"):
        run("missing", {"rois": str(tmp_path / "nowhere" / "rois.tsv")})
