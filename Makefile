# fraudstream: `make run` runs the main job, `make test` runs the tests. Both set up
# everything they need on a fresh machine (venv, package, Kafka jars, broker) and are
# quick on the second call.
VENV   ?= .venv
PY     := $(VENV)/bin/python
BENCH  := $(VENV)/bin/bench
STAMP  := $(VENV)/.installed-stamp
SCENARIO ?= scenarios/peak.yaml
# the broker's logs on tmpfs: no kernel writeback stalls (see `bench broker up --help`)
BROKER_DATA ?= /dev/shm/fraudstream

.PHONY: install broker broker-down run test bench bench-save bench-gate drain-gate clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

broker: install
	$(BENCH) broker up --data-dir $(BROKER_DATA)

broker-down:
	-$(BENCH) broker down

run: broker
	$(BENCH) run $(SCENARIO)

test: broker
	$(VENV)/bin/pytest

# pytest-benchmark micro-benchmarks (not part of `make test`); see tests/perf/README.md
BENCH_PYTEST := $(VENV)/bin/pytest tests/perf/test_hotpath.py --benchmark-only -p no:cacheprovider \
                --benchmark-storage=file://tests/perf/baselines

bench: install
	$(BENCH_PYTEST) --benchmark-compare --benchmark-compare-fail=min:25%

bench-save: install
	$(BENCH_PYTEST) --benchmark-save=hotpath

# The CI gate: ratios measured within one run, so a slower machine does not fail it
bench-gate: install
	$(VENV)/bin/pytest tests/perf/test_ratio_gate.py --benchmark-only -p no:cacheprovider -q

# The end-to-end gate: `bench drain` on 300,000 records as a ratio to `bench passthrough`,
# both in the same run on the same broker (~1 min)
drain-gate: broker
	$(VENV)/bin/pytest tests/perf/test_drain_gate.py -p no:cacheprovider -q -s

clean:
	-$(BENCH) broker down --wipe
	rm -rf $(VENV) .fraudstream .pytest_cache .hypothesis results
