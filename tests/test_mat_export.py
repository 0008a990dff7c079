"""mat_export (the first step added after the step registry): suite2p's Fall.mat of every plane
when the config's suite2p settings say io.save_mat, as suite2p's own pipeline writes it."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from scipy.io import loadmat

from conftest import dry_run_jobs, snakemake


@pytest.mark.workflow
def test_fall_mat_holds_each_planes_results(finished_session):
    tmp = finished_session["tmp"]
    cfg = yaml.safe_load(finished_session["cfg"].read_text())
    cfg["suite2p"] = {**cfg["suite2p"], "io": {"save_mat": True}}
    path = tmp / "config_mat.yaml"
    path.write_text(yaml.safe_dump(cfg))
    # only the new step runs: suite2p's io settings reach no other step
    planned = {rule for rule, _ in dry_run_jobs(path, "--rerun-triggers", "mtime", "params", "input", workdir=tmp)}
    assert planned == {"mat_export", "all"}, planned
    snakemake(path, "--rerun-triggers", "mtime", "params", "input", workdir=tmp, check=True)
    res = finished_session["res"]
    for plane in (0, 1):
        mat = loadmat(res / "mat_export" / f"plane{plane}" / "Fall.mat", squeeze_me=False)
        folder = res / "suite2p" / f"plane{plane}"
        F, iscell = np.load(folder / "F.npy"), np.load(folder / "iscell.npy")
        assert np.array_equal(mat["F"], F) and np.array_equal(mat["iscell"], iscell)
        assert np.array_equal(mat["spks"], np.load(folder / "spks.npy"))
        assert mat["stat"].size == len(F) > 0
        assert not list((res / "mat_export" / f"plane{plane}").glob(".mat_export.*"))  # no leftovers


def test_fall_mat_of_a_small_plane_folder(tmp_path):
    """Without a workflow run: planeflow's ops (None inside processing_history, where suite2p's
    save_mat does not look) reach MATLAB, and the arrays are the plane's."""
    from planeflow.plan.layout import plane_folder_files
    from planeflow.steps.mat_export import mat_export

    rng = np.random.default_rng(0)
    files = plane_folder_files(str(tmp_path / "plane0"))
    (tmp_path / "plane0").mkdir()
    stat = np.array([{"ypix": np.array([1, 2]), "xpix": np.array([3, 3]), "lam": np.ones(2), "med": [1.5, 3.0]}
                     for _ in range(3)], dtype=object)
    arrays = {"F": rng.random((3, 40), dtype=np.float32), "Fneu": rng.random((3, 40), dtype=np.float32),
              "spks": rng.random((3, 40), dtype=np.float32), "iscell": np.array([[1, 0.9], [0, 0.2], [1, 0.7]])}
    ops = {"Ly": 8, "Lx": 8, "fs": 10.0, "save_path": "/elsewhere", "classifier_path": None,
           "processing_history": [{"step": "registration", "extra": {"failure": None}}]}
    np.save(files["ops"], ops, allow_pickle=True)
    np.save(files["stat"], stat, allow_pickle=True)
    for k, v in arrays.items():
        np.save(files[k], v)
    out = tmp_path / "mat_export" / "plane0" / "Fall.mat"
    (out.parent / ".mat_export.killed").mkdir(parents=True)  # what a killed earlier try leaves
    assert mat_export(files, str(out)) == {"n_rois": 3, "n_frames": 40}
    mat = loadmat(out)
    for k, v in arrays.items():
        assert np.allclose(mat[k], v), k
    assert mat["stat"].size == 3 and int(mat["ops"]["Ly"][0, 0][0, 0]) == 8
    assert sorted(p.name for p in out.parent.iterdir()) == ["Fall.mat"]
