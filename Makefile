# Two commands do everything on a fresh machine: `make demo` and `make test`.
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: setup demo test bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PYTHON) -m analog_snu.demo

test: setup
	$(VENV)/bin/lint-imports
	# one process per core (pytest-xdist), one torch thread each: the suite is many small trainings
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -n auto tests

bench: setup
	$(PYTHON) benchmarks/bench_snu.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
