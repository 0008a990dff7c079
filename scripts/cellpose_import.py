# Snakemake script of rule cellpose_import: planeflow.steps.cellpose_import.
from planeflow.plan.config import torch_device
from planeflow.plan.layout import plane_folder_files
from planeflow.steps._job import named, run_step

run_step(snakemake, "cellpose_import", lambda sm: dict(  # noqa: F821 - snakemake is injected
    in_seg=sm.input.seg, in_ops=plane_folder_files(sm.input.plane)["ops"], in_bin=sm.input.bin,
    out=named(sm.output), overrides=sm.params.suite2p, torch_device=torch_device(sm.config),
    threads=sm.threads, iscell_mode=sm.params.iscell))
