# Snakemake script of rule raw_compress: planeflow.steps.raw_compress.
# Its settings come from the config, not params: changing delete_originals after the
# archive exists must not make Snakemake want to redo it.
from planeflow.steps._job import run_step

run_step(snakemake, "raw_compress", lambda sm: dict(  # noqa: F821 - snakemake is injected
    metadata=sm.input.metadata, binaries=list(zip(sm.input.bins, sm.input.ops)),
    out_archive=sm.output.archive, out_manifest=sm.output.manifest,
    fmt=sm.config["raw_compress"]["format"], level=sm.config["raw_compress"]["level"],
    delete=sm.config["raw_compress"]["delete_originals"]))
