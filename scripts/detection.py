# Snakemake script of rule detection: planeflow.steps.detection.
from planeflow.plan.config import torch_device
from planeflow.steps._job import named, run_step

run_step(snakemake, "detection", lambda sm: dict(  # noqa: F821 - snakemake is injected
    in_ops=sm.input.ops, in_bin=sm.input.bin, out=named(sm.output),
    overrides=sm.params.suite2p, torch_device=torch_device(sm.config), threads=sm.threads))
