# Snakemake script of rule tracking: planeflow.steps.tracking.
from planeflow.steps._job import named, run_step


def arguments(sm):
    sessions = list(sm.params.sessions)
    planes, start = [], 0
    for s in sessions:  # the final plane folders, session by session
        planes.append(list(sm.input.planes[start:start + len(s["planes"])]))
        start += len(s["planes"])
    inputs = {k: list(getattr(sm.input, k)) for k in ("cells", "rois", "offsets")}
    return dict(subject=sm.params.subject, sessions=sessions, inputs={**inputs, "planes": planes},
                out=named(sm.output), options=dict(sm.params.options))


run_step(snakemake, "tracking", arguments)  # noqa: F821 - snakemake is injected
