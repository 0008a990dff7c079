# Snakemake script of rule postprocess: planeflow.steps.postprocess.
from planeflow.steps._job import named, run_step

run_step(snakemake, "postprocess", lambda sm: dict(  # noqa: F821 - snakemake is injected
    inputs=named(sm.input), out=named(sm.output), options=sm.params.options))
