# Snakemake script of rule volume_stats: planeflow.steps.volume_stats.
from planeflow.plan.layout import plane_folder_files
from planeflow.steps._job import named, run_step

run_step(snakemake, "volume_stats", lambda sm: dict(  # noqa: F821 - snakemake is injected
    planes=[plane_folder_files(d) for d in sm.input.planes], out=named(sm.output),
    session=dict(sm.params.session), options=dict(sm.params.options),
    parts=[{"plane_index": i, "part": q, "ops": o, "bin": b}
           for (i, q), o, b in zip(sm.params.index_parts, sm.input.parts_ops, sm.input.bins)],
    subtracted=sm.input.get("subtracted"), threads=sm.threads))
