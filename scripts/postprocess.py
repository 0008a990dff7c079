# Snakemake script of rule postprocess; the logic is planeflow.steps.postprocess.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from planeflow.steps._job import limit_threads, run_job  # noqa: E402

sm = snakemake  # noqa: F821 - injected by Snakemake
limit_threads(sm.threads)
from planeflow.steps.postprocess import OUTPUT_NAMES, postprocess  # noqa: E402

run_job(sm, lambda: postprocess(
    inputs={k: sm.input[k] for k in ("ops", "stat", "iscell", "F", "Fneu")},
    out={k: sm.output[k] for k in OUTPUT_NAMES}, options=sm.params.options))
