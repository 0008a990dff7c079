# Snakemake script of rule cellpose_export; the logic is planeflow.steps.cellpose_export.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from planeflow.steps._job import limit_threads, run_job  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
limit_threads(sm.threads)
from planeflow.steps.cellpose_export import OUTPUT_NAMES, cellpose_export  # noqa: E402

run_job(sm, lambda: cellpose_export(
    in_ops=os.path.join(sm.input.plane, "ops.npy"), in_stat=os.path.join(sm.input.plane, "stat.npy"),
    in_iscell=os.path.join(sm.input.plane, "iscell.npy"),
    out={k: sm.output[k] for k in OUTPUT_NAMES}, img_key=sm.params.img_key, rois=sm.params.rois))
