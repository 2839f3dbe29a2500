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

# Every benchmark writes JSON (and PNG) under benchmarks/results/; run one at a time on an
# otherwise idle machine (2-thread timings suffer badly from a busy second core).
bench: install
	$(PIP) install -q -e ".[test,bench]"
	$(PYTHON) benchmarks/lattices.py --out benchmarks/results/lattices.json
	$(PYTHON) benchmarks/gaussian_rd.py --threads 1 --out benchmarks/results/gaussian_rd.json
	$(PYTHON) benchmarks/window_gain.py --out benchmarks/results/window_gain.json
	$(PYTHON) benchmarks/banana.py --transform linear --steps 3000 --out benchmarks/results/banana_linear.json
	$(PYTHON) benchmarks/codec_speed.py --out benchmarks/results/codec_speed.json
	$(PYTHON) benchmarks/pipeline.py
	$(PYTHON) benchmarks/defaults.py --out benchmarks/results/defaults.json
	$(PYTHON) benchmarks/prediction_bound.py --out benchmarks/results/prediction_bound.json

# The main job: real IMU telemetry (data/basic_motions) through the embedded Beam pipeline
# (FnApiRunner): load the committed codecs, compress, decompress, print the table, write
# out/demo/rd.png. `ltc-beam demo --retrain` trains the codecs again (about 50 s on 2 cores).
demo:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[demo]"
	$(PYTHON) -m ltc_beam.cli demo --out out/demo

# Rate-distortion comparison against SZ3, ZFP, uniform+zstd, FAISS and zstd on two real
# sensor datasets and i.i.d. Gaussian (docs/benchmarks.md). Each run uses one torch thread,
# so two run at a time: 7-21 minutes on 2 cores (docs/benchmarks.md gives each run's time).
COMPARE = $(PYTHON) benchmarks/compare.py
COMPARE_RUNS = compare-basic-motions compare-daphnet compare-gaussian
.PHONY: bench-compare $(COMPARE_RUNS)
bench-compare: install
	$(PIP) install -q -e ".[bench]"
	$(MAKE) -j2 --no-print-directory $(COMPARE_RUNS)
compare-basic-motions:
	$(COMPARE) --train data/basic_motions/train.parquet --test data/basic_motions/test.parquet \
		--column values --key recording --order-by step --name basic_motions \
		--out benchmarks/results/compare_basic_motions.json
compare-daphnet:
	$(COMPARE) --train data/daphnet/daphnet_s06r02e0_train.parquet --test data/daphnet/daphnet_s06r02e0_test.parquet \
		--column values --key segment --order-by step --name daphnet \
		--out benchmarks/results/compare_daphnet.json
compare-gaussian:
	$(COMPARE) --gaussian --name gaussian --out benchmarks/results/compare_gaussian.json
