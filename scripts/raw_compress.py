# Snakemake script of rule raw_compress; the logic is planeflow.steps.raw_compress.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from planeflow.steps._job import limit_threads, run_job  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
limit_threads(sm.threads)
from planeflow.steps.raw_compress import raw_compress  # noqa: E402

# settings come from the config, not params: changing delete_originals after the archive
# exists must not make Snakemake want to redo it
settings = sm.config["raw_compress"]
run_job(sm, lambda: raw_compress(
    metadata=sm.input.metadata, binaries=list(zip(sm.input.bins, sm.input.ops)),
    out_archive=sm.output.archive, out_manifest=sm.output.manifest,
    fmt=settings["format"], level=settings["level"], delete=settings["delete_originals"]))
