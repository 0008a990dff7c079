# Snakemake script of rule binary_write: planeflow.steps.binary_write.
from planeflow.steps._job import run_step

run_step(snakemake, "binary_write", lambda sm: dict(  # noqa: F821 - snakemake is injected
    metadata=sm.input.metadata, plane=int(sm.wildcards.plane), part=int(sm.wildcards.part),
    out_bin=sm.output.bin, out_ops=sm.output.ops,
    chunk_frames=sm.config["binary_write"]["chunk_frames"], chunk_mb=sm.config["binary_write"]["chunk_mb"]))
