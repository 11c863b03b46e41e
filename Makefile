# Two commands for a fresh machine:  make demo  |  make test
# Both create (or reuse) the virtual environment .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.steadydepth-installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## Render a synthetic clip with exact ground truth, run the default pipeline on it, score it.
demo: $(STAMP)
	$(PY) -m steadydepth.demo demo_out

## The test suite (a few minutes on 2 cores).
test: $(STAMP)
	$(PY) -m pytest

## Speed, memory and accuracy tables (tens of minutes on 2 cores; not part of the tests).
bench: $(STAMP)
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/bench_streaming.py
	$(PY) benchmarks/bench_sfm.py
	$(PY) benchmarks/bench_mvs.py
	$(PY) benchmarks/bench_consistency.py
	$(PY) benchmarks/bench_real.py
	$(PY) benchmarks/bench_golf.py --picture /tmp/golf_frames.png

clean:
	rm -rf demo_out .pytest_cache
