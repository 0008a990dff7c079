#!/usr/bin/env bash
# Run by Snakemake once, inside the conda environment it has just made from planeflow.yaml
# (snakemake --sdm conda): installs planeflow itself, editable, from this workflow's source,
# so that the rules' scripts import the code of this checkout. Its dependencies came from
# planeflow.yaml, hence --no-deps; nothing is downloaded here.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
python -m pip install --quiet --no-deps --no-build-isolation -e "$src"
