# Snakemake script of rule cellpose_import; the logic is planeflow.steps.cellpose_import.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from planeflow.plan.config import torch_device  # noqa: E402
from planeflow.steps._job import limit_threads, run_job  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
limit_threads(sm.threads)
from planeflow.steps.cellpose_import import OUTPUT_NAMES, cellpose_import  # noqa: E402

run_job(sm, lambda: cellpose_import(
    in_seg=sm.input.seg, in_ops=os.path.join(sm.input.plane, "ops.npy"), in_bin=sm.input.bin,
    out={k: sm.output[k] for k in OUTPUT_NAMES}, overrides=sm.params.suite2p,
    torch_device=torch_device(sm.config), threads=sm.threads, iscell_mode=sm.params.iscell))
