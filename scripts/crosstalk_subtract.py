# Snakemake script of rule crosstalk_subtract: planeflow.steps.crosstalk_subtract.
from planeflow.steps._job import run_step

run_step(snakemake, "crosstalk_subtract", lambda sm: dict(  # noqa: F821 - snakemake is injected
    in_ops=sm.input.ops, in_bin=sm.input.bin, table=sm.input.table, out_bin=sm.output.bin,
    out_ops=sm.output.ops, sources=[{**s, "ops": o, "bin": b} for s, o, b in
                                    zip(sm.params.sources, sm.input.src_ops, sm.input.src_bins)]))
