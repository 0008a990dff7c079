# planeflow: two commands set everything up on a fresh machine.
#   make demo   build the environment, simulate a small session, run the workflow
#   make test   build the environment and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO_RAW = resources/demo/raw

.PHONY: env demo demo-data test test-fast lint dag clean-demo

env: $(BIN)/.planeflow-installed

$(BIN)/.planeflow-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo-data: env
	test -f $(DEMO_RAW)/demo_00001.tif || $(BIN)/planeflow simulate $(DEMO_RAW) --name demo \
	    --nplanes 3 --nframes 1000 --ly 256 --lx 256 --cells 40 --diameter 10 --fs 15 --tau 1.0 --seed 1

demo: demo-data
	$(BIN)/snakemake
	$(BIN)/snakemake --report results/report.html
	@echo
	@echo "planeflow demo finished. Results:"
	@echo "  per-plane suite2p folders: results/demo/suite2p/plane0 .. plane2"
	@echo "  per-plane figures:         results/demo/postprocess/plane*/part0/figures/"
	@echo "  the volume:                results/demo/volume_stats/ (cells.tsv: one ID per cell; rois.tsv, plane_offsets.tsv, volume.zarr, summary.png)"
	@echo "  QC verdict per plane:      results/demo/qc/qc.tsv"
	@echo "  cells tracked per subject: results/subjects/demo-mouse-01/ (tracked_cells.tsv, tracks.tsv; one session here)"
	@echo "  NWB file:                  results/demo/nwb_export/demo.nwb"
	@echo "  cellpose _seg.npy files:   results/demo/cellpose_export/plane*/"
	@echo "  HTML report (all figures): results/report.html"
	@echo "  logs:                      results/demo/logs/<step>/"
	@$(BIN)/planeflow status results --disk --session demo | grep '^disk:' || true

test: env
	$(BIN)/python -m pytest -ra tests

test-fast: env
	$(BIN)/python -m pytest -ra -m "not workflow" tests

# ruff (rule set in pyproject.toml), snakefmt, and Snakemake's own linter (on the demo session)
lint: demo-data
	$(BIN)/ruff check src scripts tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow
	$(BIN)/snakemake --lint

dag: env
	$(BIN)/snakemake --rulegraph | dot -Tsvg > rulegraph.svg

clean-demo:
	rm -rf results/demo resources/demo

.PHONY: docs
docs: env ; $(BIN)/planeflow config-reference --out docs/configuration.md
