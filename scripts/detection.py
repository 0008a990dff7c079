# Snakemake script of rule detection; the logic is planeflow.steps.detection.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from planeflow.plan.config import torch_device  # noqa: E402
from planeflow.steps._job import limit_threads, run_job  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
limit_threads(sm.threads)
from planeflow.steps.detection import OUTPUT_NAMES, detection  # noqa: E402

run_job(sm, lambda: detection(
    in_ops=sm.input.ops, in_bin=sm.input.bin, out={k: sm.output[k] for k in OUTPUT_NAMES},
    overrides=sm.params.suite2p, torch_device=torch_device(sm.config),
    threads=sm.threads))
