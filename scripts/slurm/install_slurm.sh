#!/usr/bin/env bash
# Install a single-node SLURM (controller + compute daemon + munge) from Debian packages.
# Idempotent: does nothing when the binaries are already there. Needs root (or sudo).
# Used by tests/test_slurm.py (via .ci/run) and by anyone who wants to try the slurm profile
# on one machine: scripts/slurm/install_slurm.sh && scripts/slurm/start_local_slurm.sh
set -euo pipefail

need=(slurmctld slurmd munged sbatch squeue sacct)
missing=0
for b in "${need[@]}"; do
    command -v "$b" >/dev/null 2>&1 || missing=1
done
if [ "$missing" = 0 ]; then
    echo "slurm already installed: $(sbatch --version)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install_slurm.sh: needs root or sudo" >&2; exit 1; }
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# slurm-wlm: slurmctld + slurmd + client tools; slurm-client brings sacct; munge: auth daemon.
$SUDO apt-get install -y -qq --no-install-recommends slurm-wlm slurm-client munge >/dev/null
echo "installed: $(sbatch --version)"
