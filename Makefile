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

# `make run` is the local mode: the embedded debug API (127.0.0.1:8000) accepts the documented
# token `local-dev-token` for every account, unless PIVOT_API_TOKENS_FILE names another file.
LOCAL_TOKENS := .local-api-tokens.json

$(LOCAL_TOKENS):
	@echo '{"local-dev-token": "*"}' > $@

run: setup services $(LOCAL_TOKENS)
	@echo 'try it (another terminal): $(PY) examples/ivr_server.py & $(VENV)/bin/pivot-worker simulate http://127.0.0.1:8080/twiml --digits 1'
	@echo 'then open http://127.0.0.1:8000/inspector (token local-dev-token, account id 3a1b2c4d5e6f708192a3b4c5d6e7f809)'
	PIVOT_API_TOKENS_FILE=$${PIVOT_API_TOKENS_FILE:-$(LOCAL_TOKENS)} $(VENV)/bin/pivot-worker run

lint: setup
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint services
	$(PY) -m pytest

bench: setup services
	$(PY) bench/pipeline.py --quick
