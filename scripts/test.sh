#!/usr/bin/env bash
# The project's test command (README): a fast tier, then a slow tier. The tiers are folders:
#   fast: ruff (lint + format), snakefmt, snakemake --lint, and tests/unit (the package's
#         units on the real data and the fixture corpus) without the few tests marked slow;
#         pytest-xdist runs it on SYNLLM_TEST_WORKERS processes (default 2; 0 = one process)
#   slow: tests/workflow (the real Snakefile: dry runs, tiny configs end to end, resume, sweeps,
#         planted leaks, the paper protocol, the openai backend, SLURM) and the unit tests marked
#         slow (a real model, full-size real-data fits), on SYNLLM_TEST_WORKERS processes too
# `bash scripts/test.sh fast` or `... slow` runs one tier. With SYNLLM_START_SLURM=1 (CI sets
# it) a local SLURM is installed and started between the tiers for tests/workflow/test_slurm.py.
# A pytest run that collects no test exits 5, which fails the script like any other failure.
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-all}"
BIN=.venv/bin

if [ "$tier" = all ] || [ "$tier" = fast ]; then
  echo "== fast tier: ruff, snakefmt, snakemake --lint, tests/unit"
  "$BIN/ruff" check .
  "$BIN/ruff" format --check .
  "$BIN/snakefmt" --check Snakefile workflow/rules/
  "$BIN/snakemake" --lint --cores 1
  "$BIN/python" -m pytest -q -n "${SYNLLM_TEST_WORKERS:-2}" --dist loadscope \
    -m "not slow and not slurm" tests/unit
fi

if [ "$tier" = all ] || [ "$tier" = slow ]; then
  if [ "${SYNLLM_START_SLURM:-0}" = 1 ]; then
    echo "== local SLURM for the scheduler integration test"
    if bash scripts/slurm/install_slurm.sh && bash scripts/slurm/start_local_slurm.sh; then
      export SYNLLM_SLURM_READY=1
    else
      echo "local SLURM could not start; tests/workflow/test_slurm.py will say why it skips"
    fi
  fi
  echo "== slow tier: tests/workflow (the Snakefile, SLURM), slow unit tests"
  # two processes as well: most of this tier is one core's work (snakemake's DAG, process
  # starts, single jobs); --dist loadscope keeps a module's tests, and its module-scoped grid
  # runs, on one process
  "$BIN/python" -m pytest -q -n "${SYNLLM_TEST_WORKERS:-2}" --dist loadscope \
    tests/workflow tests/unit -m "slow or slurm"
fi
