# Everything a newcomer needs: `make demo` runs a flow on the embedded default, `make test` runs
# the whole suite. Both create the virtualenv and install the project first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TS_STAMP := typescript_client/node_modules/.installed

.PHONY: install demo test test-fast lint protos check-protos bench clean venv-elsewhere test-go

# The stamp only knows the age of pyproject.toml and of this Makefile (which says what to
# install). A .venv copied from another clone, or left behind when this clone moved, keeps its
# stamp while its python is broken or its editable `headwater`
# (and every script's #! line) points at the other place: such a venv is rebuilt from scratch.
# The check asks where `headwater` would be imported from, without importing it.
VENV_CHECK := import importlib.util as u, os.path as p, sys; \
	s = u.find_spec("headwater"); \
	sys.exit(not (s and s.origin and p.samefile(s.origin, "python_client/headwater/__init__.py")))
ifneq ($(shell $(BIN)/python -c '$(VENV_CHECK)' >/dev/null 2>&1 && echo ok),ok)
VENV_ELSEWHERE := venv-elsewhere
endif

install: $(STAMP)

$(STAMP): pyproject.toml Makefile $(VENV_ELSEWHERE)
	@if [ -n "$(VENV_ELSEWHERE)" ] && [ -e $(VENV) ]; then \
		echo "$(VENV) does not belong to this checkout (copied, moved or broken): rebuilding it"; \
		rm -rf $(VENV); \
	fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,dask]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP) $(TS_STAMP)
	bash scripts/ensure-postgres
	bash scripts/ensure-graphviz
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/buf lint protos
	scripts/check-breaking
	$(MAKE) --no-print-directory test-go
	cd typescript_client && npm test
	$(BIN)/python -m pytest

test-fast: $(STAMP) $(TS_STAMP)
	$(BIN)/python -m pytest -m "not integration and not postgres"

lint: $(STAMP) $(TS_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/buf lint protos
	cd typescript_client && npx tsc -p tsconfig.json && npx tsc -p tsconfig.test.json --noEmit

# Regenerates the Python stubs and the descriptor image from protos/. The output is committed;
# tests/protos/test_generated_fresh.py fails when it is stale.
# The TypeScript client's typescript_client/src/gen too, with its pinned protoc-gen-es.
# The Go client's go_client/gen too, with the protoc-gen-go(-grpc) go_client/go.mod pins.
protos: $(STAMP) $(TS_STAMP)
	scripts/generate-protos

# The Go client: gofmt, go vet, and go test against a real `headwater server start` from this
# checkout's .venv (-count=1: the cache cannot see the Python code the tests run). The go
# command fetches the modules go_client/go.sum pins by itself.
test-go: $(STAMP)
	@unformatted=$$(gofmt -l go_client); if [ -n "$$unformatted" ]; then \
		echo "gofmt would change: $$unformatted"; exit 1; fi
	cd go_client && go vet ./... && go test -count=1 ./...

# The TypeScript client's packages, exactly as its committed package-lock.json pins them (the
# protoc-gen-es that `make protos` runs among them); `npm ci` also compiles dist/ through the
# package's prepare script. Reinstalled whenever the lock file or package.json changes.
$(TS_STAMP): typescript_client/package.json typescript_client/package-lock.json
	cd typescript_client && npm ci --no-audit --no-fund
	touch $(TS_STAMP)

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .bench .pytest_cache .ruff_cache .tools
	rm -rf typescript_client/node_modules typescript_client/dist typescript_client/build

# Never a file: listed as a prerequisite of the stamp only when the venv must be rebuilt.
venv-elsewhere: ;
