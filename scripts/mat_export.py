# Snakemake script of rule mat_export: planeflow.steps.mat_export.
from planeflow.plan.layout import plane_folder_files
from planeflow.steps._job import run_step

run_step(snakemake, "mat_export", lambda sm: dict(  # noqa: F821 - snakemake is injected
    plane=plane_folder_files(sm.input.plane), out_mat=sm.output.mat))
