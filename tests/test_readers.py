"""Third-party readers open the finished plane folders: roiextractors (what neuroconv
uses for NWB conversion) and suite2p's own loaders."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.workflow

PLANE_FILES = ("ops", "stat", "iscell", "F", "Fneu", "spks", "db", "settings", "reg_outputs",
               "detect_outputs")


def load_plane(folder):
    out = {}
    for name in ("ops", "stat", "iscell", "F", "Fneu", "spks"):
        v = np.load(folder / f"{name}.npy", allow_pickle=True)
        out[name] = v.item() if name == "ops" else v
    return out


def planes(finished):
    return sorted(p.name for p in (finished["res"] / "suite2p").iterdir() if p.name.startswith("plane"))


def test_roiextractors_suite2p_extractor_reads_every_plane(finished_session):
    ext = pytest.importorskip(
        "roiextractors", reason="roiextractors is in the 'test' extra: pip install -e '.[test]'")
    Suite2p = ext.Suite2pSegmentationExtractor
    folder = finished_session["res"] / "suite2p"
    names = planes(finished_session)
    assert names == ["plane0", "plane1"]
    assert Suite2p.get_available_planes(folder) == names
    assert Suite2p.get_available_channels(folder) == ["chan1"]
    for name in names:
        d = load_plane(folder / name)
        ops, stat, iscell = d["ops"], d["stat"], d["iscell"]
        ex = Suite2p(folder_path=folder, plane_name=name)
        n = len(stat)
        assert n > 0
        assert ex.get_num_rois() == n
        assert ex.get_sampling_frequency() == pytest.approx(ops["fs"])
        assert ex.get_num_samples() == ops["nframes"] == d["F"].shape[1]
        assert tuple(ex.get_frame_shape()) == (ops["Ly"], ops["Lx"])
        ids = ex.get_roi_ids()
        assert list(ids) == list(range(n))
        for trace, arr in (("raw", d["F"]), ("neuropil", d["Fneu"]), ("deconvolved", d["spks"])):
            got = ex.get_traces(name=trace)
            assert got.shape == arr.T.shape
            assert np.array_equal(got, arr.T)
        flags = np.asarray(ex.get_property("iscell", ids))
        assert np.array_equal(flags, iscell[:, 0])
        accepted = [i for i, f in zip(ids, flags) if f]
        rejected = [i for i, f in zip(ids, flags) if not f]
        assert accepted == np.flatnonzero(iscell[:, 0] > 0.5).tolist()
        assert rejected == np.flatnonzero(iscell[:, 0] <= 0.5).tolist()
        masks = ex.get_roi_image_masks()
        assert masks.shape == (ops["Ly"], ops["Lx"], n)
        for k, s in enumerate(stat):
            ys, xs = np.nonzero(masks[:, :, k])
            assert set(zip(ys.tolist(), xs.tolist())) == set(zip(s["ypix"].tolist(), s["xpix"].tolist()))
            assert np.allclose(masks[s["ypix"], s["xpix"], k], s["lam"])
        assert np.array_equal(ex.get_image("mean"), ops["meanImg"])
        corr = ex.get_image("correlation")
        assert corr.shape == (ops["Ly"], ops["Lx"])
        assert np.isclose(np.abs(corr).sum(), np.abs(ops["Vcorr"]).sum(), rtol=1e-5)


def test_suite2p_combined_reads_the_session(finished_session, tmp_path):
    """suite2p.io.combined (suite2p's own multi-plane reader) on a copy of the folder:
    it writes combined/ beside the planes, and the fixture's outputs stay untouched."""
    from suite2p.io import combined

    src = finished_session["res"] / "suite2p"
    copy = tmp_path / "suite2p"
    names = planes(finished_session)
    for name in names:
        (copy / name).mkdir(parents=True)
        for f in PLANE_FILES:
            shutil.copy(src / name / f"{f}.npy", copy / name / f"{f}.npy")
    data = [load_plane(src / name) for name in names]

    stat, db, settings, F, Fneu, spks, iscell0, iscell1, _, _, hasred = combined(str(copy), save=True)
    assert not hasred
    assert len(stat) == sum(len(d["stat"]) for d in data)
    assert np.array_equal(F, np.concatenate([d["F"] for d in data]))
    assert np.array_equal(Fneu, np.concatenate([d["Fneu"] for d in data]))
    assert np.array_equal(spks, np.concatenate([d["spks"] for d in data]))
    assert np.array_equal(iscell0, np.concatenate([d["iscell"][:, 0] for d in data]))
    assert np.allclose(iscell1, np.concatenate([d["iscell"][:, 1] for d in data]))
    assert [s["iplane"] for s in stat] == [k for k, d in enumerate(data) for _ in d["stat"]]
    assert settings["tau"] == data[0]["ops"]["tau"]
    # planes are tiled side by side (db dx/dy are None); each plane's mean image and
    # ROI pixels sit at its tile offset
    Ly, Lx = data[0]["ops"]["Ly"], data[0]["ops"]["Lx"]
    i = 0
    for k, d in enumerate(data):
        tiles = [(y, x) for y in range(0, db["Ly"], Ly) for x in range(0, db["Lx"], Lx)]
        oy, ox = tiles[k]
        assert np.array_equal(db["meanImg"][oy:oy + Ly, ox:ox + Lx], d["ops"]["meanImg"])
        for s in d["stat"]:
            assert np.array_equal(stat[i]["ypix"], s["ypix"] + oy)
            assert np.array_equal(stat[i]["xpix"], s["xpix"] + ox)
            i += 1
    for name in ("F", "stat", "iscell", "db", "settings"):
        assert (copy / "combined" / f"{name}.npy").exists()
    assert not (src / "combined").exists()


def test_suite2p_gui_loader_reads_a_plane(finished_session):
    """suite2p's GUI file loader (load_files: stat, traces, ops or db+settings, iscell).
    Its module imports Qt, so this runs only where suite2p[gui] is installed."""
    pytest.importorskip("qtpy", reason="suite2p.gui.io imports Qt (qtpy): install suite2p[gui]")
    from suite2p.gui.io import load_files

    for name in planes(finished_session):
        folder = finished_session["res"] / "suite2p" / name
        d = load_plane(folder)
        out = load_files(str(folder / "stat.npy"))
        assert out is not None
        stat, ops, F, Fneu, spks, iscell, probcell, redcell, probredcell, hasred = out
        assert len(stat) == len(d["stat"]) and np.array_equal(F, d["F"])
        assert np.array_equal(iscell, d["iscell"][:, 0].astype(bool))
        assert ops["Ly"] == d["ops"]["Ly"] and not hasred
