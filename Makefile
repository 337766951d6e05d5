# The two promises of the README:
#   make run   - the service on its embedded defaults (SQLite under ./var, demo data, local prompts)
#   make test  - the whole test suite, real PostgreSQL, Kannel and Asterisk included
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test deps venv bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

deps:
	scripts/install-deps

run: deps venv
	$(BIN)/selfcare db upgrade
	$(BIN)/selfcare demo
	$(BIN)/selfcare serve

test: deps venv
	scripts/run-tests

bench: deps venv
	SELFCARE_BENCH_PG=$$(scripts/test-postgres | tail -1) $(BIN)/python bench/charging.py

clean:
	rm -rf $(VENV) var .pytest_cache
