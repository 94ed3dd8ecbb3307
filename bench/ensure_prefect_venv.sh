#!/usr/bin/env bash
# Creates the separate virtualenv that holds Prefect 3.9.1, the baseline `make bench` compares
# Headwater against. Prefect must not share .venv: its dependency pins would fight Headwater's,
# and an import-time comparison is only fair when each SDK loads only its own stack.
# Skips all work when the virtualenv already has that version and `import prefect` works.
set -euo pipefail

cd "$(dirname "$0")/.."
# bench/__main__.py expects exactly this folder and version.
VENV=.bench/prefect-venv
VERSION=3.9.1
# python3.11, as the Makefile uses; else the interpreter behind .venv.
PYTHON="${PYTHON:-$(command -v python3.11 || echo .venv/bin/python)}"

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "
import importlib.metadata as m, sys
import prefect
sys.exit(0 if m.version('prefect') == '$VERSION' else 1)" >/dev/null 2>&1; then
    exit 0
fi

echo "bench: creating $VENV with prefect==$VERSION (takes a minute or two)" >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -qq --upgrade pip
"$VENV/bin/python" -m pip install -qq "prefect==$VERSION"
