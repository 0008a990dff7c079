"""`group_jobs` submits a plane's steps as one cluster job (dry run with the slurm executor)."""
import re

import pytest

from conftest import coded_frames, make_config, snakemake, write_tiff


@pytest.mark.parametrize("mode, group_size", [("plane", 5), ("short", 2)])
def test_group_jobs_one_cluster_job_per_plane(tmp_path, mode, group_size):
    write_tiff(tmp_path / "raw" / "a.tif", coded_frames(3 * 60))
    cfg = make_config(tmp_path, [{"session_id": "g", "data_path": str(tmp_path / "raw"), "nplanes": 3,
                                  "fs": 10.0}], group_jobs=mode)
    proc = snakemake(cfg, "-n", "--executor", "slurm", "--jobs", "10")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    blocks = re.split(r"Group job plane_steps", out)[1:]
    assert len(blocks) == 3, out[-3000:]  # one group job per plane
    for b in blocks:
        rules = re.findall(r"^    rule (\w+):", b, re.MULTILINE)  # members are indented
        assert len(rules) == group_size, rules
        if mode == "short":
            assert sorted(rules) == ["merge", "postprocess"]
    none = snakemake(make_config(tmp_path / "n", [{"session_id": "g", "data_path": str(tmp_path / "raw"),
                                                   "nplanes": 3, "fs": 10.0}]),
                     "-n", "--executor", "slurm", "--jobs", "10")
    assert "Group job" not in none.stdout + none.stderr
