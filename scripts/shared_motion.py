# Snakemake script of rule shared_motion: planeflow.steps.shared_motion.
from planeflow.steps._job import run_step

run_step(snakemake, "shared_motion", lambda sm: dict(  # noqa: F821 - snakemake is injected
    inputs=[{"plane": p, "part": q, "shifts": f}
            for (p, q), f in zip(sm.params.planes_parts, sm.input.shifts)],
    out_shifts=sm.output.shifts))
