"""suite2p <-> cellpose: label images, the GUI's _seg.npy, and the two workflow rules.

Unit tests use small hand-made ROIs; the workflow tests export the ``finished_session``
planes, import one plane unchanged (round trip) and one plane with an ROI deleted and
a planted cell drawn in, and feed a _seg.npy of the wrong shape.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml

from conftest import dry_run_jobs, snakemake
from planeflow import PlaneflowError
from planeflow.core import cellpose_masks as cp

GUI_KEYS = ("img", "masks", "outlines", "chan_choose", "ismanual", "filename", "flows",
            "est_diam", "cellprob_threshold", "flow_threshold")
IMPORT_FILES = ("ops", "stat", "iscell", "F", "Fneu", "spks", "conversion_meta")
#: the fixture's outputs are only ever added to: a code edit elsewhere in the checkout
#: during the test session must not make Snakemake redo (and rewrite) finished steps
MTIME = ("--rerun-triggers", "mtime")


def roi(ys, xs, lam=None):
    ys, xs = np.asarray(ys), np.asarray(xs)
    return {"ypix": ys, "xpix": xs, "lam": np.ones(ys.size) if lam is None else np.asarray(lam, float)}


def disk_roi(cy, cx, r, shape=(64, 64)):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    y, x = np.nonzero((yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2)
    lam = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r ** 2))
    return roi(y, x, lam)


def pixels(s):
    return set(zip(np.asarray(s["ypix"]).tolist(), np.asarray(s["xpix"]).tolist()))


def label_pixels(labels, lab):
    return set(zip(*[a.tolist() for a in np.nonzero(labels == lab)]))


# ---- unit tests ------------------------------------------------------------------------
def test_labels_follow_export_order_and_overlap_rule():
    # ROI 0 peaks at (2, 2); ROI 1 covers (2, 2) with a low relative weight and peaks at
    # (2, 4); (2, 3) has relative weight 0.5 in ROI 0 and 0.9 in ROI 1
    stat = [roi([2, 2, 1], [2, 3, 2], lam=[4.0, 2.0, 1.0]),
            roi([2, 2, 2], [2, 3, 4], lam=[0.1, 0.9, 1.0]),
            roi([7, 7, 9], [7, 8, 20])]                      # (9, 20) lies outside
    labels = cp.stat_to_labels(stat, 10, 10)
    assert labels.dtype == np.uint16 and labels.shape == (10, 10)
    assert labels[2, 2] == 1 and labels[1, 2] == 1
    assert labels[2, 3] == 2 and labels[2, 4] == 2
    assert label_pixels(labels, 3) == {(7, 7), (7, 8)}
    assert (labels > 0).sum() == 6
    # equal relative weights: the ROI listed first keeps the pixel
    tie = cp.stat_to_labels([roi([5], [5]), roi([5, 6], [5, 6])], 10, 10)
    assert tie[5, 5] == 1 and tie[6, 6] == 2
    # a subset is numbered 1..n in the order given
    sub = cp.stat_to_labels(stat, 10, 10, indices=[2, 0])
    assert label_pixels(sub, 1) == {(7, 7), (7, 8)} and sub[2, 2] == 2 and sub.max() == 2


def test_select_rois_accepted_or_all():
    iscell = np.array([[1, 0.9], [0, 0.2], [1, 0.6]])
    assert cp.select_rois(iscell, 3, "accepted").tolist() == [0, 2]
    assert cp.select_rois(iscell, 3, "all").tolist() == [0, 1, 2]
    with pytest.raises(PlaneflowError, match="iscell.npy"):
        cp.select_rois(iscell[:2], 3, "accepted")


def test_summary_image_puts_cropped_images_back_in_the_frame():
    ops = {"Ly": 6, "Lx": 8, "yrange": [1, 5], "xrange": [2, 7],
           "meanImg": np.arange(48.0).reshape(6, 8), "max_proj": np.ones((4, 5))}
    assert np.array_equal(cp.summary_image(ops, "meanImg"), ops["meanImg"])
    full = cp.summary_image(ops, "max_proj")
    assert full.shape == (6, 8) and full.sum() == 20 and full[1:5, 2:7].all()
    with pytest.raises(PlaneflowError, match="Vcorr"):
        cp.summary_image(ops, "Vcorr")
    # an image that fits neither the frame nor the crop: a damaged ops.npy, one clear error
    with pytest.raises(PlaneflowError, match=r"shape \(3, 3\).*inconsistent.*rerun snakemake"):
        cp.summary_image({**ops, "Vcorr": np.ones((3, 3))}, "Vcorr")


def test_read_seg_checks_masks_and_renumbers(tmp_path):
    masks = np.zeros((6, 7), np.uint16)
    masks[0, 0], masks[2, 2], masks[4, 5] = 3, 7, 7
    path = tmp_path / "p_seg.npy"
    np.save(path, {"masks": masks, "outlines": masks})
    labels, renumbered = cp.read_seg(path, (6, 7))
    assert renumbered and labels[0, 0] == 1 and labels[2, 2] == 2 and labels[4, 5] == 2
    assert labels.max() == 2 and (labels > 0).sum() == 3

    np.save(path, {"masks": (masks > 0).astype(np.uint16)})
    assert cp.read_seg(path, (6, 7))[1] is False

    np.save(path, {"masks": masks})
    with pytest.raises(PlaneflowError) as e:
        cp.read_seg(path, (6, 8))
    assert str(path) in str(e.value) and "(6, 7)" in str(e.value) and "6 x 8" in str(e.value)

    np.save(path, {"outlines": masks, "img": np.zeros((6, 7))})
    with pytest.raises(PlaneflowError, match="no 'masks'"):
        cp.read_seg(path, (6, 7))

    path.write_bytes(b"not a numpy file")
    with pytest.raises(PlaneflowError, match="cannot read"):
        cp.read_seg(path, (6, 7))


def test_labels_to_stat_uses_suite2p_and_keeps_every_roi():
    shape = (40, 40)
    stat = [disk_roi(10, 10, 4), disk_roi(25, 28, 5), roi([35, 35], [3, 4])]  # a 2-pixel ROI too
    labels = cp.stat_to_labels(stat, *shape)
    weights = cp.mean_image_weights(np.random.default_rng(0).random(shape))
    out = cp.labels_to_stat(labels, weights, [8, 8])
    assert len(out) == 3
    for k, s in enumerate(out):
        assert pixels(s) == label_pixels(labels, k + 1)
        assert np.allclose(s["lam"], weights[s["ypix"], s["xpix"]])
        for key in ("med", "npix", "npix_norm", "compact", "radius", "soma_crop", "overlap"):
            assert key in s
        assert not s["overlap"].any()
    assert len(cp.labels_to_stat(np.zeros(shape, np.uint16), weights, [8, 8])) == 0


def test_write_seg_is_what_the_cellpose_gui_reads(tmp_path):
    pytest.importorskip("cellpose")
    from cellpose import dynamics, utils

    shape = (48, 56)
    stat = [disk_roi(12, 12, 5), disk_roi(30, 40, 6), disk_roi(15, 30, 4)]
    labels = cp.stat_to_labels(stat, *shape)
    img = np.random.default_rng(1).random(shape).astype(np.float32)
    path = tmp_path / "plane3_seg.npy"
    cp.write_seg(path, img, labels, image_name="plane3.tif", diameter=10.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plane3_seg.npy"]  # no temp left
    dat = np.load(path, allow_pickle=True).item()
    for key in GUI_KEYS:
        assert key in dat, key
    # what cellpose/gui/io.py _load_seg relies on
    assert dat["filename"] == "plane3.tif"
    assert np.array_equal(dat["img"], img)
    assert dat["masks"].dtype == np.uint16 and np.array_equal(dat["masks"], labels)
    assert dat["masks"].min() == 0 and len(np.unique(dat["masks"])) == dat["masks"].max() + 1
    assert len(dat["ismanual"]) == dat["masks"].max() == 3
    assert np.array_equal(dat["outlines"], labels * utils.masks_to_outlines(labels))
    assert dat["flows"][0].shape[-3] == shape[0]
    assert dat["est_diam"] == 10.0
    # the stored flows give the masks back through cellpose's own dynamics
    dP, cellprob = dat["flows"][4][:2], dat["flows"][4][2]
    rec = dynamics.compute_masks(dP, cellprob, cellprob_threshold=dat["cellprob_threshold"],
                                flow_threshold=dat["flow_threshold"], min_size=-1)
    for lab in range(1, 4):
        found = np.unique(rec[labels == lab])
        assert len(found) == 1 and found[0] > 0
        assert np.array_equal(rec == found[0], labels == lab)
    # a plane without ROIs (blank plane, or every mask deleted) still gives a valid file
    empty = cp.write_seg(tmp_path / "e_seg.npy", img, np.zeros(shape, np.uint16), "e.tif", 10.0)
    assert empty["masks"].max() == 0 and len(empty["ismanual"]) == 0


def test_import_step_rejects_bad_seg_before_writing(tmp_path):
    from planeflow.steps.cellpose_import import cellpose_import

    np.save(tmp_path / "ops.npy", {"Ly": 20, "Lx": 30, "nparts": 1, "nframes": 5})
    seg = tmp_path / "edits" / "plane0_seg.npy"
    seg.parent.mkdir()
    np.save(seg, {"masks": np.zeros((30, 20), np.uint16)})
    out_dir = tmp_path / "out"
    out = {k: str(out_dir / f"{k}.npy") for k in IMPORT_FILES}
    with pytest.raises(PlaneflowError) as e:
        cellpose_import(str(seg), str(tmp_path / "ops.npy"), str(tmp_path / "missing.bin"), out,
                        overrides={})
    assert str(seg) in str(e.value) and "20 x 30" in str(e.value)
    assert not out_dir.exists() or not any(out_dir.iterdir())


# ---- workflow --------------------------------------------------------------------------
def extra_config(finished, folder, **cellpose):
    """The fixture's config plus a cellpose section, written into ``folder``."""
    cfg = yaml.safe_load(finished["cfg"].read_text())
    cfg["cellpose"] = cellpose
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def load_plane(folder):
    out = {}
    for name in ("ops", "stat", "iscell", "F", "Fneu", "spks", "conversion_meta"):
        f = folder / f"{name}.npy"
        if f.exists():
            v = np.load(f, allow_pickle=True)
            out[name] = v.item() if v.dtype == object and v.ndim == 0 else v
    return out


@pytest.fixture(scope="module")
def cellpose_run(finished_session, tmp_path_factory):
    """Export both planes; import plane 0 unchanged and plane 1 edited (one ROI deleted,
    one planted cell drawn as a disk). Results are loaded into memory."""
    from planeflow.synth.groundtruth import load_ground_truth, match_rois, reference_offset

    fin, res = finished_session, finished_session["res"]
    tmp = tmp_path_factory.mktemp("cellpose")
    edits = tmp / "edits"
    cfg = extra_config(fin, tmp / "cfg", export=True,
                       import_seg=str(edits / "{session}" / "plane{plane}_seg.npy"))
    workdir = fin["tmp"]
    run = {"cfg": cfg, "workdir": workdir, "edits": edits}

    # the default target now adds exactly the two exports; no finished output is redone
    run["export_jobs"] = sorted(r for r, _ in dry_run_jobs(cfg, *MTIME, workdir=workdir))
    # nothing to import while no edited file exists
    run["import_jobs_before"] = [r for r, _ in dry_run_jobs(cfg, "cellpose_import_all", *MTIME,
                                                          workdir=workdir)]
    snakemake(cfg, "--cores", "2", *MTIME, workdir=workdir, check=True)
    run["export"] = {p: res / "cellpose_export" / f"plane{p}" for p in (0, 1)}

    # plane 0: the exported file as it is
    (edits / "fin").mkdir(parents=True)
    shutil.copy(run["export"][0] / "plane0_seg.npy", edits / "fin" / "plane0_seg.npy")

    # plane 1: delete the ROI of one planted cell (GUI style: higher labels move down by
    # one) and draw that cell again as a disk of radius 4 around its planted centre
    gt = load_ground_truth(fin["sim"]["ground_truth"])
    ops1 = np.load(res / "suite2p" / "plane1" / "ops.npy", allow_pickle=True).item()
    stat1 = np.load(res / "suite2p" / "plane1" / "stat.npy", allow_pickle=True)
    offset = reference_offset(ops1["yoff"], ops1["xoff"], gt["shifts"])
    match = match_rois(stat1, gt["labels"][1], offset=offset)
    assert match["n_matched"] >= 10
    dat = np.load(run["export"][1] / "plane1_seg.npy", allow_pickle=True).item()
    meta1 = np.load(run["export"][1] / "conversion_meta.npy", allow_pickle=True).item()
    roi_index, cell = (int(v) for v in match["matches"][0])
    deleted = int(np.flatnonzero(meta1["roi_indices"] == roi_index)[0]) + 1
    masks = dat["masks"].astype(np.int64)
    deleted_pixels = label_pixels(masks, deleted)
    masks[masks == deleted] = 0
    masks[masks > deleted] -= 1
    cy, cx = gt["centers"][1, cell - 1] + np.asarray(offset)
    yy, xx = np.mgrid[:masks.shape[0], :masks.shape[1]]
    disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= 4 ** 2
    masks[disk] = masks.max() + 1
    dat["masks"] = masks.astype(np.uint16)
    np.save(edits / "fin" / "plane1_seg.npy", dat)
    run.update(gt=gt, cell=cell, disk=set(zip(*[a.tolist() for a in np.nonzero(disk)])),
               deleted_pixels=deleted_pixels, n_exported1=int(meta1["n_rois"]))

    run["import_jobs"] = sorted(r for r, _ in dry_run_jobs(cfg, "cellpose_import_all", *MTIME,
                                                           workdir=workdir))
    snakemake(cfg, "cellpose_import_all", "--cores", "2", *MTIME, workdir=workdir, check=True)
    run["original"] = {p: load_plane(res / "suite2p" / f"plane{p}") for p in (0, 1)}
    run["imported"] = {p: load_plane(res / "cellpose_import" / f"plane{p}") for p in (0, 1)}
    return run


@pytest.mark.workflow
def test_export_runs_with_default_target_only(cellpose_run):
    assert cellpose_run["export_jobs"] == ["all", "cellpose_export", "cellpose_export"]
    assert "cellpose_import" not in cellpose_run["import_jobs_before"]   # only the empty target
    assert cellpose_run["import_jobs"] == ["cellpose_import", "cellpose_import", "cellpose_import_all"]


@pytest.mark.workflow
def test_export_label_image_holds_the_accepted_rois(cellpose_run):
    import tifffile

    for p, folder in cellpose_run["export"].items():
        orig = cellpose_run["original"][p]
        stat, iscell, ops = orig["stat"], orig["iscell"], orig["ops"]
        labels = np.load(folder / "masks.npy")
        meta = np.load(folder / "conversion_meta.npy", allow_pickle=True).item()
        accepted = np.flatnonzero(iscell[:, 0] > 0.5)
        assert labels.shape == (ops["Ly"], ops["Lx"]) and labels.dtype == np.uint16
        assert meta["roi_indices"].tolist() == accepted.tolist()
        assert meta["n_rois"] == len(accepted) == labels.max()
        assert meta["source_format"] == "suite2p" and meta["img_key"] == "meanImg"
        assert meta["shape"] == [ops["Ly"], ops["Lx"]]
        # union of labelled pixels = union of the accepted ROIs' pixels
        union = set().union(*(pixels(stat[k]) for k in accepted))
        assert set(zip(*[a.tolist() for a in np.nonzero(labels)])) == union
        # each ROI's own pixels carry its label; shared pixels carry one of the sharers'
        owners = {}
        for k in accepted:
            for px in pixels(stat[k]):
                owners.setdefault(px, set()).add(k)
        for i, k in enumerate(accepted):
            for px in pixels(stat[k]):
                lab = int(labels[px])
                assert lab == i + 1 if len(owners[px]) == 1 else accepted[lab - 1] in owners[px]
        img = tifffile.imread(folder / f"plane{p}.tif")
        assert np.array_equal(img, ops["meanImg"].astype(np.float32))


@pytest.mark.workflow
def test_export_seg_file_loads_with_numpy_and_has_gui_keys(cellpose_run):
    for p, folder in cellpose_run["export"].items():
        dat = np.load(folder / f"plane{p}_seg.npy", allow_pickle=True).item()
        for key in GUI_KEYS:
            assert key in dat, key
        labels = np.load(folder / "masks.npy")
        assert np.array_equal(dat["masks"], labels)
        assert dat["filename"] == f"plane{p}.tif"
        assert dat["img"].shape == labels.shape
        assert len(dat["ismanual"]) == labels.max()


@pytest.mark.workflow
def test_round_trip_without_edits_keeps_pixels_and_traces(cellpose_run):
    orig, imp = cellpose_run["original"][0], cellpose_run["imported"][0]
    labels = np.load(cellpose_run["export"][0] / "masks.npy")
    accepted = np.flatnonzero(orig["iscell"][:, 0] > 0.5)
    assert len(imp["stat"]) == len(accepted) == imp["F"].shape[0] == len(imp["iscell"])
    assert imp["F"].shape == imp["Fneu"].shape == imp["spks"].shape
    assert imp["F"].shape[1] == orig["F"].shape[1]
    shared = 0
    for i, k in enumerate(accepted):
        new, old = pixels(imp["stat"][i]), pixels(orig["stat"][k])
        assert new == label_pixels(labels, i + 1)
        assert new <= old
        shared += len(old - new)          # only pixels the ROI shared with another one
        r = np.corrcoef(imp["F"][i], orig["F"][k])[0, 1]
        assert r > 0.99, (k, r)
    assert shared <= 0.02 * sum(len(pixels(orig["stat"][k])) for k in accepted)
    meta = imp["conversion_meta"]
    assert meta["source_format"] == "cellpose" and meta["traces_extracted"] is True
    assert meta["n_rois"] == len(accepted) and meta["shape"] == list(labels.shape)
    assert meta["source_path"].endswith("plane0_seg.npy")
    entry = imp["ops"]["processing_history"][-1]
    assert entry["step"] == "cellpose_import" and entry["extra"]["n_rois"] == len(accepted)
    assert entry["extra"]["iscell"] == "all" and (imp["iscell"][:, 0] == 1).all()
    assert [h["step"] for h in imp["ops"]["processing_history"][:-1]] == \
        [h["step"] for h in orig["ops"]["processing_history"]]


@pytest.mark.workflow
def test_edited_plane_has_the_deleted_roi_gone_and_the_drawn_cell_traced(cellpose_run):
    run = cellpose_run
    imp = run["imported"][1]
    assert len(imp["stat"]) == run["n_exported1"] - 1 + 1
    sets = [pixels(s) for s in imp["stat"]]
    assert run["deleted_pixels"] not in sets
    new = [i for i, s in enumerate(sets) if s == run["disk"]]
    assert len(new) == 1
    i = new[0]
    dF = imp["F"][i] - 0.7 * imp["Fneu"][i]
    traces = run["gt"]["traces"][1]
    r = np.array([np.corrcoef(dF, t)[0, 1] for t in traces])
    assert r[run["cell"] - 1] > 0.9, r[run["cell"] - 1]
    assert np.argmax(r) == run["cell"] - 1
    # config default import_iscell: all -> the drawn cell is accepted whatever the classifier says
    assert imp["iscell"][i, 0] == 1 and 0 <= imp["iscell"][i, 1] <= 1


@pytest.mark.workflow
def test_imported_folder_opens_in_roiextractors(cellpose_run, finished_session):
    ext = pytest.importorskip(
        "roiextractors", reason="roiextractors is in the 'test' extra: pip install -e '.[test]'")
    folder = finished_session["res"] / "cellpose_import"
    for p in (0, 1):
        imp = cellpose_run["imported"][p]
        ex = ext.Suite2pSegmentationExtractor(folder_path=folder, plane_name=f"plane{p}")
        assert ex.get_num_rois() == len(imp["stat"])
        assert np.array_equal(ex.get_traces(name="raw"), imp["F"].T)
        assert ex.get_sampling_frequency() == pytest.approx(imp["ops"]["fs"])


@pytest.mark.workflow
def test_import_of_a_seg_file_with_the_wrong_shape_fails_clearly(cellpose_run, finished_session, tmp_path):
    bad = tmp_path / "bad" / "fin" / "plane0_seg.npy"
    bad.parent.mkdir(parents=True)
    np.save(bad, {"masks": np.zeros((64, 64), np.uint16), "outlines": np.zeros((64, 64), np.uint16)})
    cfg = extra_config(finished_session, tmp_path / "cfg",
                       import_seg=str(tmp_path / "bad" / "{session}" / "plane{plane}_seg.npy"))
    res = finished_session["res"]
    target = res / "cellpose_import" / "plane0" / "ops.npy"
    proc = snakemake(cfg, str(target), "--cores", "1", *MTIME, workdir=cellpose_run["workdir"])
    assert proc.returncode != 0
    log = (res / "logs" / "cellpose_import" / "plane0.log").read_text()
    errors = [line for line in log.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and str(bad) in errors[0] and "(64, 64)" in errors[0]
    assert "Traceback" not in log
    folder = res / "cellpose_import" / "plane0"
    left = list(folder.iterdir()) if folder.exists() else []
    assert not any(f.name.endswith(".npy") or ".tmp" in f.name for f in left), left
