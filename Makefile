# The two commands (see README): `make quickstart` and `make test`. Both set everything up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: quickstart test install install-dev lint tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[sklearn,server]"

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[all,dev]"

quickstart: install
	$(BIN)/shipyard quickstart

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

# the real tools some tests run (Prometheus, promtool, Chromium, wrk); installed when missing
tools:
	bash scripts/ensure-tools.sh

test: install-dev lint tools
	bash scripts/pytest.sh $(BIN)/python
