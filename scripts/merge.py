# Snakemake script of rule merge; the logic is planeflow.steps.merge.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from planeflow.steps._job import run_job  # noqa: E402
from planeflow.steps.merge import OUTPUT_NAMES, merge  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
names = ("ops", "stat", "iscell", "F", "Fneu", "spks", "dff")
parts = [{k: sm.input[f"{k}_{i}"] for k in names} for i in range(len(sm.params.geometry["offsets"]))]
out = {k: os.path.join(sm.output.folder, f"{k}.npy") for k in OUTPUT_NAMES}
run_job(sm, lambda: merge(parts=parts, out=out,
                          plane_shape=sm.params.geometry["plane_shape"], offsets=sm.params.geometry["offsets"]))
