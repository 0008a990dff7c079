# Snakemake script of rule registration; the logic is planeflow.steps.registration.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from planeflow.plan.config import torch_device  # noqa: E402
from planeflow.steps._job import limit_threads, run_job  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
limit_threads(sm.threads)
from planeflow.steps.registration import registration  # noqa: E402

run_job(sm, lambda: registration(
    in_ops=sm.input.ops, in_bin=sm.input.bin, out_bin=sm.output.bin, out_ops=sm.output.ops,
    overrides=sm.params.suite2p, torch_device=torch_device(sm.config),
    threads=sm.threads))
