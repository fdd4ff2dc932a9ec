# One command per task; CI (.ci/run) calls `make test`, exactly what developers run.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: setup services run test lint bench

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

services:
	@scripts/ensure-services.sh

run: setup services
	@echo 'try it (another terminal): $(PY) examples/ivr_server.py & $(VENV)/bin/pivot-worker simulate http://127.0.0.1:8080/twiml --digits 1'
	$(VENV)/bin/pivot-worker run

lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint services
	$(PY) -m pytest

bench: setup services
	$(PY) bench/pipeline.py --quick
