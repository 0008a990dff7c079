# Snakemake script of rule cellpose_export: planeflow.steps.cellpose_export.
from planeflow.plan.layout import plane_folder_files
from planeflow.steps._job import named, run_step


def arguments(sm):
    plane = plane_folder_files(sm.input.plane)
    return dict(in_ops=plane["ops"], in_stat=plane["stat"], in_iscell=plane["iscell"],
                out=named(sm.output), img_key=sm.params.img_key, rois=sm.params.rois)


run_step(snakemake, "cellpose_export", arguments)  # noqa: F821 - snakemake is injected
