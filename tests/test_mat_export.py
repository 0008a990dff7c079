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
