# Two commands do everything on a fresh machine: `make demo` and `make test` (`make docs` builds the docs).
VENV := .venv
PYTHON := $(VENV)/bin/python

.PHONY: setup demo test docs bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(PYTHON) -m analog_snu.demo

test: setup
	# lint only (pyflakes, statement-level pycodestyle errors, import order; pyproject.toml [tool.ruff])
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	# types of the typed core (pyproject.toml [tool.mypy] files); cached in .mypy_cache
	$(VENV)/bin/mypy
	# the user guide and the API reference from the docstrings; any warning fails (a few seconds)
	$(VENV)/bin/mkdocs build --strict --quiet
	# one process per core (pytest-xdist), one torch thread each: the suite is many small trainings
	OMP_NUM_THREADS=1 $(PYTHON) -m pytest -n auto tests

docs: setup
	$(VENV)/bin/mkdocs build --strict
	@echo "docs: open site/index.html"

bench: setup
	$(PYTHON) benchmarks/bench_snu.py

clean:
	rm -rf $(VENV) build site *.egg-info .pytest_cache .mypy_cache
