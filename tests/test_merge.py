import numpy as np

from planeflow.steps.merge import OUTPUT_NAMES, merge


def fake_part(d, n_rois, Ly, Lx, T, seed, yrange=None, xrange=None):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    stat = []
    for _k in range(n_rois):
        y = rng.integers(0, Ly, 5)
        x = rng.integers(0, Lx, 5)
        stat.append({"ypix": y, "xpix": x, "med": [float(np.median(y)), float(np.median(x))],
                     "ipix_neuropil": (y * Lx + x)})
    yrange = yrange or [0, Ly]
    xrange = xrange or [0, Lx]
    ops = {"Ly": Ly, "Lx": Lx, "nframes": T, "yrange": yrange, "xrange": xrange, "fs": 10.0,
           "meanImg": rng.random((Ly, Lx)).astype(np.float32),
           "max_proj": rng.random((yrange[1] - yrange[0], xrange[1] - xrange[0])).astype(np.float32),
           "reg_output_keys": ["meanImg"], "detect_output_keys": ["max_proj"], "settings_keys": ["fs"],
           "processing_history": [{"step": "postprocess"}]}
    files = {"ops": ops, "stat": np.array(stat, dtype=object),
             "iscell": np.c_[rng.integers(0, 2, n_rois), rng.random(n_rois)],
             "F": rng.random((n_rois, T)), "Fneu": rng.random((n_rois, T)),
             "spks": rng.random((n_rois, T)), "dff": rng.random((n_rois, T))}
    paths = {}
    for k, v in files.items():
        np.save(d / f"{k}.npy", v, allow_pickle=True)
        paths[k] = str(d / f"{k}.npy")
    return paths, files


def outputs(d):
    return {k: str(d / f"{k}.npy") for k in OUTPUT_NAMES}


def test_single_part_is_unchanged(tmp_path):
    paths, src = fake_part(tmp_path / "p0", 4, 20, 30, 50, 0, yrange=[2, 18], xrange=[1, 29])
    out = outputs(tmp_path / "final")
    merge([paths], out, plane_shape=(20, 30), offsets=[(0, 0)])
    for k in ("F", "Fneu", "spks", "dff", "iscell"):
        assert np.array_equal(np.load(out[k]), src[k])
    stat = np.load(out["stat"], allow_pickle=True)
    for a, b in zip(stat, src["stat"]):
        assert np.array_equal(a["xpix"], b["xpix"]) and np.array_equal(a["ypix"], b["ypix"])
    ops = np.load(out["ops"], allow_pickle=True).item()
    assert np.array_equal(ops["meanImg"], src["ops"]["meanImg"])
    assert np.array_equal(ops["max_proj"], src["ops"]["max_proj"])
    assert ops["yrange"] == [2, 18] and ops["xrange"] == [1, 29]
    assert [h["step"] for h in ops["processing_history"]] == ["postprocess", "merge"]
    # suite2p 1.x split files
    assert np.load(out["reg_outputs"], allow_pickle=True).item()["meanImg"].shape == (20, 30)
    assert "max_proj" in np.load(out["detect_outputs"], allow_pickle=True).item()
    db = np.load(out["db"], allow_pickle=True).item()
    assert db["Ly"] == 20 and db["dx"] is None and "meanImg" not in db


def test_two_parts_side_by_side(tmp_path):
    pa, a = fake_part(tmp_path / "a", 3, 20, 30, 50, 1)
    pb, b = fake_part(tmp_path / "b", 2, 20, 25, 50, 2)
    out = outputs(tmp_path / "final")
    merge([pa, pb], out, plane_shape=(20, 55), offsets=[(0, 0), (0, 30)])
    stat = np.load(out["stat"], allow_pickle=True)
    assert len(stat) == 5
    assert np.array_equal(stat[3]["xpix"], b["stat"][0]["xpix"] + 30)
    assert stat[4]["med"][1] == b["stat"][1]["med"][1] + 30
    # flat neuropil indices re-expressed in the 55-pixel-wide plane
    y, x = np.divmod(stat[3]["ipix_neuropil"], 55)
    assert np.array_equal(x, b["stat"][0]["xpix"] + 30) and np.array_equal(y, b["stat"][0]["ypix"])
    F = np.load(out["F"])
    assert np.array_equal(F, np.concatenate([a["F"], b["F"]]))
    assert np.array_equal(np.load(out["iscell"]), np.concatenate([a["iscell"], b["iscell"]]))
    ops = np.load(out["ops"], allow_pickle=True).item()
    assert ops["meanImg"].shape == (20, 55)
    assert np.array_equal(ops["meanImg"][:, 30:], b["ops"]["meanImg"])
    assert ops["Lx"] == 55 and ops["nparts"] == 2
    assert [p["n_rois"] for p in ops["parts"]] == [3, 2]


def test_registration_metrics_come_from_registration_only(tmp_path):
    """suite2p's regPC/tPC (15 MB a plane at 256 px) are left out of detection's and postprocess'
    ops and put back into the final folder from registration's ops."""
    from planeflow.io.planefiles import REG_METRICS, without_reg_metrics

    paths, files = fake_part(tmp_path / "p0", 3, 20, 30, 50, 0)
    # registration lists them among its outputs; the part's ops (postprocess') no longer hold them
    np.save(paths["ops"], {**files["ops"], "reg_output_keys": ["meanImg", *REG_METRICS]}, allow_pickle=True)
    rng = np.random.default_rng(5)
    reg = {"regPC": rng.random((2, 3, 20, 30)).astype(np.float32), "tPC": rng.random((50, 3)), "regDX": np.ones((3, 3))}
    assert set(without_reg_metrics(reg)) == {"regDX"} and set(REG_METRICS) == {"regPC", "tPC"}
    np.save(tmp_path / "reg_ops.npy", reg, allow_pickle=True)
    out = outputs(tmp_path / "final")
    merge([{**paths, "reg_ops": str(tmp_path / "reg_ops.npy")}], out, plane_shape=(20, 30), offsets=[(0, 0)])
    ops = np.load(out["ops"], allow_pickle=True).item()
    assert np.array_equal(ops["regPC"], reg["regPC"]) and np.array_equal(ops["tPC"], reg["tPC"])
    assert "regDX" not in ops  # what the part's (postprocess) ops carry is kept as it was
    assert np.array_equal(np.load(out["reg_outputs"], allow_pickle=True).item()["regPC"], reg["regPC"])
