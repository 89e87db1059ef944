#!/usr/bin/env bash
# Create .venv and install synllm with its pinned dependencies (idempotent).
# Needs Python 3.11+ with venv, a C/C++ compiler and cmake (llama-cpp-python builds from
# source the first time; pip caches the wheel afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
  .venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/synllm --version >/dev/null
echo "synllm installed in .venv"
