# Snakemake script of rule volume_stats; the logic is planeflow.steps.volume_stats.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from planeflow.steps._job import run_job  # noqa: E402
from planeflow.steps.volume_stats import OUTPUT_NAMES, volume_stats  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
planes = [{k: os.path.join(d, f"{k}.npy") for k in ("ops", "stat", "iscell")} for d in sm.input.planes]
run_job(sm, lambda: volume_stats(planes=planes, out={k: sm.output[k] for k in OUTPUT_NAMES},
                                 session=sm.params.session))
