#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine, for trying and testing profiles/slurm.
#
#   scripts/slurm/install_slurm.sh && scripts/slurm/start_local_slurm.sh
#   scripts/slurm/start_local_slurm.sh --stop        # stop the daemons this script started
#
# Writes /etc/slurm/slurm.conf (+ gres.conf, slurmdbd.conf) for this host with two partitions,
# `cpu` (default) and `gpu`, on the same node, and one fake GPU (GresTypes=gpu, gres.conf
# `Name=gpu File=/dev/null`) so jobs asking for `--gpus=1` are scheduled one at a time; nothing
# is run on a real GPU. Starts munged, then slurmdbd (MariaDB-backed accounting, so `sacct`
# works) when slurmdbd and mariadbd are installed, else job completion logging to a text file
# (JobCompType=jobcomp/filetxt; `sacct` is then unavailable and squeue/the log are the evidence).
# Then slurmctld and slurmd, without systemd (daemons started directly), no cgroup plugins
# (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none): works in containers.
# Idempotent: exits 0 at once when the node already answers as idle/mixed/allocated.
# Needs root. State and logs: $SYNLLM_SLURM_DIR (default /var/tmp/synllm-slurm).
set -euo pipefail

STATE=${SYNLLM_SLURM_DIR:-/var/tmp/synllm-slurm}
CONF_DIR=/etc/slurm
HOST=$(hostname -s)
CLUSTER=synllm

log() { echo "start_local_slurm: $*" >&2; }
die() { log "$*"; exit 1; }

stop_all() {
    for d in slurmd slurmctld slurmdbd; do
        if [ -f "$STATE/$d.pid" ]; then
            pid=$(cat "$STATE/$d.pid")
            kill "$pid" 2>/dev/null && log "stopped $d ($pid)" || true
            rm -f "$STATE/$d.pid"
        fi
    done
    if [ -f "$STATE/mysqlrun/mariadb.pid" ]; then
        pid=$(cat "$STATE/mysqlrun/mariadb.pid")
        kill "$pid" 2>/dev/null && log "stopped mariadbd ($pid)" || true
    fi
    if [ -f "$STATE/munged.pid" ]; then
        pid=$(cat "$STATE/munged.pid")
        kill "$pid" 2>/dev/null && log "stopped munged ($pid)" || true
        rm -f "$STATE/munged.pid"
    fi
}

if [ "${1:-}" = "--stop" ]; then
    stop_all
    exit 0
fi

[ "$(id -u)" = 0 ] || die "needs root (writes /etc/slurm and starts system daemons)"
for b in slurmctld slurmd munged sinfo scontrol; do
    command -v "$b" >/dev/null 2>&1 || die "'$b' not found: run scripts/slurm/install_slurm.sh first"
done

node_ready() {
    sinfo -h -n "$HOST" -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated|completing)'
}

if node_ready; then
    log "already running: $(sinfo -h -o '%P %T %G' | tr '\n' ';')"
    exit 0
fi

mkdir -p "$STATE"/{spool/ctld,spool/d,log} "$CONF_DIR"

# ------------------------------------------------------------------ munge (authentication)
if ! pgrep -x munged >/dev/null 2>&1; then
    mkdir -p /run/munge /var/lib/munge /etc/munge
    if [ ! -s /etc/munge/munge.key ]; then
        if command -v mungekey >/dev/null 2>&1; then mungekey --create --force; else
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; fi
    fi
    # munged runs as root here (no systemd unit to switch users): root owns its files
    chown -R root:root /etc/munge /run/munge /var/lib/munge
    chmod 0700 /etc/munge /var/lib/munge
    chmod 0400 /etc/munge/munge.key
    chmod 0755 /run/munge
    # --force: munged refuses to start as root otherwise (fine in a throwaway CI machine)
    munged --force --pid-file="$STATE/munged.pid" --log-file="$STATE/log/munged.log" \
        || die "munged failed to start"
fi
munge -n | unmunge >/dev/null || die "munge round trip failed"

# ------------------------------------------------------------------ machine facts
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)

# ------------------------------------------------------------------ accounting
ACCOUNTING="jobcomp"
if [ "${SYNLLM_SLURM_ACCOUNTING:-dbd}" = dbd ] && command -v slurmdbd >/dev/null 2>&1 \
    && { command -v mariadbd >/dev/null 2>&1 || command -v mysqld >/dev/null 2>&1; }; then
    ACCOUNTING="dbd"
fi

if [ "$ACCOUNTING" = dbd ]; then
    MYSQLD=$(command -v mariadbd || command -v mysqld)
    DB_DIR="$STATE/mysql"
    DB_RUN="$STATE/mysqlrun"          # socket, pid and log: owned by the mysql user
    SOCK="$DB_RUN/mysql.sock"
    mkdir -p "$DB_RUN"
    chown mysql:mysql "$DB_RUN" 2>/dev/null || true
    if [ ! -d "$DB_DIR/mysql" ]; then
        mkdir -p "$DB_DIR"
        chown -R mysql:mysql "$DB_DIR" 2>/dev/null || true
        mariadb-install-db --user=mysql --datadir="$DB_DIR" --auth-root-authentication-method=socket \
            >"$STATE/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed (see $STATE/log)"
    fi
    if ! mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1; then
        "$MYSQLD" --user=mysql --datadir="$DB_DIR" --socket="$SOCK" --pid-file="$DB_RUN/mariadb.pid" \
            --skip-networking=0 --bind-address=127.0.0.1 --port=3306 \
            --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900 \
            --log-error="$DB_RUN/mariadb.log" >/dev/null 2>&1 &
        for _ in $(seq 60); do mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1 && break; sleep 0.5; done
        mariadb-admin --socket="$SOCK" ping >/dev/null 2>&1 || die "mariadbd did not start (see $DB_RUN/mariadb.log)"
    fi
    mariadb --socket="$SOCK" -u root <<'SQL'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-local';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
    cat >"$CONF_DIR/slurmdbd.conf" <<EOF
# written by scripts/slurm/start_local_slurm.sh (local test cluster)
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurm-local
StoragePort=3306
LogFile=$STATE/log/slurmdbd.log
PidFile=$STATE/slurmdbd.pid
EOF
    chmod 600 "$CONF_DIR/slurmdbd.conf"
    ACCT_LINES="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt"
else
    ACCT_LINES="AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt"
fi

# ------------------------------------------------------------------ slurm.conf / gres.conf
cat >"$CONF_DIR/slurm.conf" <<EOF
# written by scripts/slurm/start_local_slurm.sh: one node ($HOST), partitions cpu and gpu
ClusterName=$CLUSTER
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
# no systemd, no cgroups (containers): plain process tracking, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=5
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
# jobs without --mem get 1 GB per CPU, not the whole node
DefMemPerCPU=1000
GresTypes=gpu
ReturnToService=2
# keep finished jobs visible to squeue for 10 minutes (status checks without sacct)
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
MpiDefault=none
$ACCT_LINES
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$HOST Default=NO MaxTime=INFINITE State=UP
EOF
cat >"$CONF_DIR/gres.conf" <<EOF
# one fake GPU: scheduling only (File=/dev/null), nothing runs on it
NodeName=$HOST Name=gpu File=/dev/null Count=1
EOF
# the Debian package's plugstack.conf may point at a missing directory
[ -f "$CONF_DIR/plugstack.conf" ] || : >"$CONF_DIR/plugstack.conf"

# ------------------------------------------------------------------ daemons
if [ "$ACCOUNTING" = dbd ] && ! pgrep -x slurmdbd >/dev/null 2>&1; then
    slurmdbd || die "slurmdbd failed to start (see $STATE/log/slurmdbd.log)"
    for _ in $(seq 40); do sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.5; done
    sacctmgr -n show cluster >/dev/null 2>&1 || die "slurmdbd does not answer (see $STATE/log/slurmdbd.log)"
    sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
fi
if ! pgrep -x slurmctld >/dev/null 2>&1; then
    slurmctld -c || die "slurmctld failed to start (see $STATE/log/slurmctld.log)"
fi
for _ in $(seq 40); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.5; done
scontrol ping | grep -q UP || die "slurmctld does not answer (see $STATE/log/slurmctld.log)"
if ! pgrep -x slurmd >/dev/null 2>&1; then
    slurmd || die "slurmd failed to start (see $STATE/log/slurmd.log)"
fi
for _ in $(seq 60); do
    node_ready && break
    state=$(sinfo -h -n "$HOST" -o '%T' 2>/dev/null || true)
    case "$state" in down*|drain*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;; esac
    sleep 0.5
done
node_ready || die "node $HOST not ready: $(sinfo -h -N -o '%N %T %E' 2>&1) (see $STATE/log/slurmd.log)"
log "ready: accounting=$ACCOUNTING; $(sinfo -h -o 'partition=%P state=%T gres=%G' | tr '\n' ';')"
