# The two commands (see README): `make quickstart` and `make test`. Both set everything up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: quickstart test install install-dev lint tools lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Installs pin every version to constraints.txt (refreshed by `make lock`), so nothing is left
# for the resolver to backtrack over, and go through uv, which resolves and installs in seconds.
# torch goes through pip first: pip finds the CPU build on this machine's disk (pip.conf's
# find-links) where uv would download the CUDA build; uv then keeps the installed torch.
UV_INSTALL := $(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -c constraints.txt
# where uv cannot reach the index (a proxy only pip is set up for), pip installs the same pins
PIP_INSTALL := $(BIN)/pip install --quiet -c constraints.txt

install: $(BIN)/python
	$(BIN)/pip install --quiet uv -c constraints.txt
	$(UV_INSTALL) -e ".[sklearn,server]" || $(PIP_INSTALL) -e ".[sklearn,server]"

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet uv torch -c constraints.txt
	$(UV_INSTALL) -e ".[all,dev]" || $(PIP_INSTALL) -e ".[all,dev]"

# re-resolves shipyard[all,dev] from scratch and rewrites constraints.txt (scripts/lock.sh)
lock:
	PYTHON=$(PYTHON) bash scripts/lock.sh

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
