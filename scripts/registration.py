# Snakemake script of rule registration: planeflow.steps.registration.
from planeflow.plan.config import torch_device
from planeflow.steps._job import run_step

run_step(snakemake, "registration", lambda sm: dict(  # noqa: F821 - snakemake is injected
    in_ops=sm.input.ops, in_bin=sm.input.bin, out_bin=sm.output.bin, out_ops=sm.output.ops,
    overrides=sm.params.suite2p, torch_device=torch_device(sm.config), threads=sm.threads,
    shared=getattr(sm.input, "shared", None), rigid=getattr(sm.input, "rigid", None),
    plane=int(sm.wildcards.plane), part=int(sm.wildcards.part)))
