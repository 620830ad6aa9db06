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
	$(PYTHON) -m pytest tests

bench: setup
	$(PYTHON) benchmarks/bench_snu.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
