# Two commands on a fresh machine: `make demo` and `make test`. Each sets itself up.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LEGACY_WHEEL_DIR := var/cache

.PHONY: demo test lint install clean bench serve

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[units,test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hoinghi demo

serve: $(STAMP)
	$(BIN)/hoinghi serve

lint: $(STAMP)
	$(BIN)/ruff check server sessions bridge tests bench
	$(BIN)/mypy

test: $(STAMP) lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/units.py
	$(BIN)/python bench/live.py
	$(BIN)/python bench/relay.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
