# Everything a newcomer needs: `make demo` runs a flow on the embedded default, `make test` runs
# the whole suite. Both create the virtualenv and install the project first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint protos check-protos bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	bash scripts/ensure-postgres
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/buf lint protos
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not integration and not postgres"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/buf lint protos

# Regenerates the Python stubs and the descriptor image from protos/. The output is committed;
# tests/protos/test_generated_fresh.py fails when it is stale.
protos: $(STAMP)
	scripts/generate-protos

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .bench .pytest_cache .ruff_cache
