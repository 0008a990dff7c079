# Snakemake script of rule nwb_export: planeflow.steps.nwb_export.
from planeflow.plan.layout import plane_folder_files
from planeflow.steps._job import run_step


def arguments(sm):
    session = dict(sm.params.session)
    parts = session["parts"]
    planes = []
    for i, p in enumerate(session["planes"]):
        plane = {"plane": p, **plane_folder_files(sm.input.planes[i])}
        if sm.params.options["include_movie"]:
            bins = sm.input.movie[i * len(parts):(i + 1) * len(parts)]
            plane["movie_parts"] = [{"bin": b, "shape": q["shape"], "offset": q["offset"]}
                                    for b, q in zip(bins, parts)]
        planes.append(plane)
    return dict(planes=planes, out=sm.output.nwb, metadata=dict(sm.params.metadata), session=session,
                options=dict(sm.params.options), volume_rois=sm.input.volume_rois,
                tracked_cells=getattr(sm.input, "tracked_cells", None))


run_step(snakemake, "nwb_export", arguments)  # noqa: F821 - snakemake is injected
