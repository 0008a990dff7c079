# Snakemake script of rule nwb_export; the logic is planeflow.steps.nwb_export.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from planeflow.steps._job import limit_threads, run_job  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
limit_threads(sm.threads)
from planeflow.steps.nwb_export import nwb_export  # noqa: E402

session = dict(sm.params.session)
parts = session["parts"]
planes = []
for i, p in enumerate(session["planes"]):
    folder = sm.input.planes[i]
    plane = {"plane": p, **{k: os.path.join(folder, f"{k}.npy")
                            for k in ("ops", "stat", "iscell", "F", "Fneu", "spks", "dff")}}
    if sm.params.options["include_movie"]:
        bins = sm.input.movie[i * len(parts):(i + 1) * len(parts)]
        plane["movie_parts"] = [{"bin": b, "shape": q["shape"], "offset": q["offset"]} for b, q in zip(bins, parts)]
    planes.append(plane)
run_job(sm, lambda: nwb_export(planes=planes, out=sm.output.nwb, metadata=dict(sm.params.metadata),
                               session=session, options=dict(sm.params.options)))
