# Snakemake script of rule qc: planeflow.steps.qc.
from planeflow.plan.layout import plane_folder_files
from planeflow.steps._job import named, run_step


def arguments(sm):
    meta = sm.params.session
    nparts = meta["nparts"]
    planes = []
    for i, (p, folder) in enumerate(zip(meta["planes"], sm.input.planes)):
        files = plane_folder_files(folder)
        planes.append({"plane": p, "ops": files["ops"], "stat": files["stat"], "iscell": files["iscell"],
                       "bins": sm.input.bins[i * nparts:(i + 1) * nparts],
                       "parts_ops": sm.input.parts_ops[i * nparts:(i + 1) * nparts]})
    return dict(planes=planes, out=named(sm.output), session=dict(meta), options=dict(sm.params.options),
                volume={"rois": sm.input.rois, "crosstalk": sm.input.crosstalk})


run_step(snakemake, "qc", arguments)  # noqa: F821 - snakemake is injected
