#!/usr/bin/env bash
# Install a single-node SLURM (controller + compute daemon + munge) from Debian packages,
# plus slurmdbd and MariaDB for job accounting (`sacct`), unless SYNLLM_SLURM_ACCOUNTING=none.
# Idempotent: installs only what is missing. Needs root (or sudo).
# Used by CI before pytest and by anyone trying profiles/slurm on one machine:
#   scripts/slurm/install_slurm.sh && scripts/slurm/start_local_slurm.sh
set -euo pipefail

need=(slurmctld slurmd munged sbatch squeue sacct)
pkgs=(slurm-wlm slurm-client munge)
if [ "${SYNLLM_SLURM_ACCOUNTING:-dbd}" != none ]; then
    need+=(slurmdbd mariadbd)
    pkgs+=(slurmdbd mariadb-server)
fi
missing=0
for b in "${need[@]}"; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing=1
done
if [ "$missing" = 1 ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || { echo "install_slurm.sh: needs root or sudo" >&2; exit 1; }
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # policy-rc.d may refuse to start services in containers: start_local_slurm.sh starts them
    $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
echo "slurm: $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null || echo '?')" \
    "accounting: $(command -v slurmdbd >/dev/null 2>&1 && echo slurmdbd || echo none)"
