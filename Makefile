# Two commands do all the setup: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install jars lint typecheck test unit demo stack-up stack-down clean

$(STAMP): pyproject.toml examples/claims/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	# The bench extra (LangGraph, the peer of `flightrec bench runtime`) too, so
	# its tests run; it is never a runtime dependency.
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	# The example agent, so its entry point test runs too.
	$(BIN)/pip install --quiet -e examples/claims
	touch $(STAMP)

install: $(STAMP)

# Kafka's jars come from Maven Central through Maven and are cached under .flightrec/.
jars: $(STAMP)
	$(BIN)/flightrec stack fetch

lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m "not integration" -q

# Integration tests start the local stack through a session fixture and stop it after.
test: $(STAMP) jars lint typecheck
	$(BIN)/pytest -q -ra

demo: $(STAMP) jars
	$(BIN)/flightrec demo

stack-up: $(STAMP) jars
	$(BIN)/flightrec stack up

stack-down: $(STAMP)
	$(BIN)/flightrec stack down

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
