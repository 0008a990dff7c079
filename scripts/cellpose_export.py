# Snakemake script of rule cellpose_export; the logic is planeflow.steps.cellpose_export.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from planeflow.jobs import limit_threads, run_job  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
limit_threads(sm.threads)
from planeflow.steps.cellpose_export import OUTPUT_NAMES, cellpose_export  # noqa: E402

run_job(sm, lambda: cellpose_export(
    in_ops=sm.input.ops, in_stat=sm.input.stat, in_iscell=sm.input.iscell,
    out={k: sm.output[k] for k in OUTPUT_NAMES}, img_key=sm.params.img_key, rois=sm.params.rois))
