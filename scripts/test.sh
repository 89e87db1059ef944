#!/usr/bin/env bash
# The project's test command (README): a fast tier, then a slow tier.
#   fast: ruff (lint + format), snakefmt, snakemake --lint, and every test not marked
#         slow/slurm (unit tests on real data and the fixture corpus; about a minute or two)
#   slow: the real Snakefile on tiny configs (end to end, resume, sweeps) and the SLURM test
# `bash scripts/test.sh fast` or `... slow` runs one tier. With SYNLLM_START_SLURM=1 (CI sets
# it) a local SLURM is installed and started between the tiers for tests/test_slurm.py.
set -euo pipefail
cd "$(dirname "$0")/.."
tier="${1:-all}"
BIN=.venv/bin

if [ "$tier" = all ] || [ "$tier" = fast ]; then
  echo "== fast tier: ruff, snakefmt, snakemake --lint, unit tests"
  "$BIN/ruff" check .
  "$BIN/ruff" format --check .
  "$BIN/snakefmt" --check Snakefile workflow/rules/
  "$BIN/snakemake" --lint --cores 1
  "$BIN/python" -m pytest -q -m "not slow and not slurm"
fi

if [ "$tier" = all ] || [ "$tier" = slow ]; then
  if [ "${SYNLLM_START_SLURM:-0}" = 1 ]; then
    echo "== local SLURM for the scheduler integration test"
    if bash scripts/slurm/install_slurm.sh && bash scripts/slurm/start_local_slurm.sh; then
      export SYNLLM_SLURM_READY=1
    else
      echo "local SLURM could not start; tests/test_slurm.py will say why it skips"
    fi
  fi
  echo "== slow tier: the Snakefile end to end, SLURM"
  "$BIN/python" -m pytest -q -m "slow or slurm"
fi
