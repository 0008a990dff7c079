# Snakemake script of rule merge: planeflow.steps.merge.
from planeflow.plan.layout import MERGE_INPUTS, plane_folder_files
from planeflow.steps._job import run_step


def arguments(sm):
    offsets = sm.params.geometry["offsets"]
    parts = [{k: sm.input[f"{k}_{i}"] for k in MERGE_INPUTS} for i in range(len(offsets))]
    return dict(parts=parts, out=plane_folder_files(sm.output.folder),
                plane_shape=sm.params.geometry["plane_shape"], offsets=offsets)


run_step(snakemake, "merge", arguments)  # noqa: F821 - snakemake is injected
