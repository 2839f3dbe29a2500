PYTHON ?= python3
PIP = $(PYTHON) -m pip

.PHONY: install test bench demo

# The pinned torch is a local CPU build; installing it first keeps pip from
# pulling a multi-GB CUDA build to satisfy the package's bare torch requirement.
install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test]"

test: install
	$(PYTHON) -m pytest -q

bench: install
	$(PIP) install -q -e ".[test,bench]"
	$(PYTHON) benchmarks/lattices.py --out benchmarks/results/lattices.json

# The main job: real IMU telemetry (data/basic_motions) through the embedded Beam pipeline
# (FnApiRunner): load the committed codecs, compress, decompress, print the table, write
# out/demo/rd.png. `ltc-beam demo --retrain` trains the codecs again (about 4 minutes).
demo:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[demo]"
	$(PYTHON) -m ltc_beam.cli demo --out out/demo
