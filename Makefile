# Two commands on a fresh machine: `make demo` and `make test`. Both run scripts/setup first.
VENV := .venv
PY := $(VENV)/bin/python
PP := $(VENV)/bin/pixelpilot
PYTEST_WORKERS ?= 2

.PHONY: setup demo test test-slow test-all lint format bench

setup:
	@bash scripts/setup

demo: setup
	@bash scripts/demo

test: setup
	$(PY) -m pytest -q -n $(PYTEST_WORKERS)

test-slow: setup
	$(PY) -m pytest -q -m slow

test-all: setup
	$(PY) -m pytest -q -m "slow or not slow"

lint: setup
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

format: setup
	$(VENV)/bin/ruff check --fix src tests bench examples
	$(VENV)/bin/ruff format src tests bench examples

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done
