# Snakemake script of rule crosstalk: planeflow.steps.crosstalk.
from planeflow.steps._job import run_step

run_step(snakemake, "crosstalk", lambda sm: dict(  # noqa: F821 - snakemake is injected
    parts=[{"plane_index": i, "part": q, "ops": o, "bin": b}
           for (i, q), o, b in zip(sm.params.index_parts, sm.input.ops, sm.input.bins)],
    out_table=sm.output.table, options=dict(sm.params.options), threads=sm.threads))
