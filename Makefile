# Two commands set everything up on a fresh machine:
#   make demo   - creates .venv, installs torchpatch, runs the built-in demo
#   make test   - creates .venv, installs torchpatch with dev tools, runs the tests
#                 and builds the documentation (make docs)
#   make docs   - builds the Sphinx site into docs/_build/html (warnings are errors)
# torch==2.13.0 (a local CPU wheel here) is installed first and pinned through
# constraints.txt, so pip never downloads torch or CUDA packages.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

.PHONY: demo test docs lint typecheck fuzz check clean

$(VENV)/.installed: pyproject.toml setup.py constraints.txt torchpatch/io/transpose.c torchpatch/io/gzsplit.c
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m torchpatch.demo

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory docs

# Warnings are errors and every reference must resolve (-n); the tutorials run inside the
# build (sphinx-gallery). The pages' doctest blocks run in pytest (tests/test_docs_examples.py).
docs: $(VENV)/.installed
	MPLBACKEND=Agg $(VENV)/bin/sphinx-build -W --keep-going -n -q -b html docs docs/_build/html

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy

# The compiled extensions under AddressSanitizer and UBSan (gcc; not part of the tests).
fuzz: $(VENV)/.installed
	$(PY) tests/fuzz_extensions.py --seconds 300

clean:
	rm -rf $(VENV) demo_output .pytest_cache .mypy_cache .ruff_cache docs/_build docs/tutorials docs/api/generated docs/sg_execution_times.rst
