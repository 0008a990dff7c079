# Snakemake script of rule binary_write; the logic is planeflow.steps.binary_write.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from planeflow.steps._job import run_job  # noqa: E402
from planeflow.steps.binary_write import binary_write  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
run_job(sm, lambda: binary_write(
    metadata=sm.input.metadata, plane=int(sm.wildcards.plane), part=int(sm.wildcards.part),
    out_bin=sm.output.bin, out_ops=sm.output.ops,
    chunk_frames=sm.config["binary_write"]["chunk_frames"],
    chunk_mb=sm.config["binary_write"]["chunk_mb"]))
