# Snakemake script of rule rigid_shifts: planeflow.steps.rigid_shifts.
from planeflow.plan.config import torch_device
from planeflow.steps._job import run_step

run_step(snakemake, "rigid_shifts", lambda sm: dict(  # noqa: F821 - snakemake is injected
    in_ops=sm.input.ops, in_bin=sm.input.bin, out_shifts=sm.output.shifts,
    overrides=sm.params.suite2p, torch_device=torch_device(sm.config), threads=sm.threads))
