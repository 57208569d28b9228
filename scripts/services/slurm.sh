#!/usr/bin/env bash
# A throwaway one-node Slurm cluster on this machine, without systemd.
#
#   scripts/services/slurm.sh start    # install if missing, configure, start, wait until the node is idle
#   scripts/services/slurm.sh status   # exit 0 when the cluster answers and the node is up
#   scripts/services/slurm.sh env      # prints `export SLURM_CONF=...`: eval "$(scripts/services/slurm.sh env)"
#   scripts/services/slurm.sh stop     # cancel every job, stop every daemon, remove the state folder
#
# Every daemon runs from the state folder $PER_EXP_SLURM_DIR (default /tmp/per_exp-slurm) on
# 127.0.0.1 and free ports, with its own munge key and socket, so nothing under /etc is used or
# changed and two clusters with different state folders can run side by side. Clients find the
# cluster through SLURM_CONF=$PER_EXP_SLURM_DIR/etc/slurm.conf (`env` prints it).
#
# What runs: munged (authentication), MariaDB + slurmdbd (accounting: submitit reads job
# states with `sacct`, so a cluster without accounting would leave a launcher waiting on a
# cancelled job forever), slurmctld and slurmd, all as root (this is a test machine).
# The node is this host with its real cores and memory (`slurmd -C`). Two partitions:
#   main  default, PriorityTier=2, never preempted
#   low   PriorityTier=1, PreemptMode=REQUEUE, GraceTime=$PER_EXP_SLURM_GRACE (default 15 s):
#         a `main` job that needs a `low` job's cores preempts it: Slurm sends SIGCONT+SIGTERM,
#         SIGKILL after the grace time, and puts the job back in the queue (same job id).
# Requeued jobs may start again after cred_expire (10 s here; Slurm's default is 120 s).
#
# Why a shell script: it is apt, config files and daemons; a developer can run it without the
# project's virtualenv, `.ci/run` calls it before pytest, and the test fixture
# (tests/service_fixtures.py) calls the same script, so there is one way to start the cluster.
set -euo pipefail

S="${PER_EXP_SLURM_DIR:-/tmp/per_exp-slurm}"
ETC="$S/etc"
export SLURM_CONF="$ETC/slurm.conf"
GRACE="${PER_EXP_SLURM_GRACE:-15}"
NEEDED=(munged mungekey slurmctld slurmd slurmdbd sinfo sbatch sacct sacctmgr mariadbd mariadb-install-db)

say() { echo "slurm.sh: $*" >&2; }
die() { say "$*"; exit 1; }
cannot() { say "$*"; exit 3; }  # this machine cannot run it: the test fixtures may skip locally

install_if_missing() {
    local missing=()
    for b in "${NEEDED[@]}"; do
        command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing+=("$b")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || cannot "missing ${missing[*]} and not root: install slurm-wlm munge slurmdbd mariadb-server with apt"
    say "installing slurm-wlm munge slurmdbd mariadb-server (missing: ${missing[*]})"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        slurm-wlm munge slurmdbd mariadb-server >/dev/null
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local secs=$1 what=$2; shift 2
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $end ] || { say "timed out after ${secs}s waiting for $what"; show_logs; return 1; }
        sleep 0.5
    done
}

show_logs() {
    for f in "$S"/log/*.log; do
        [ -f "$f" ] && { say "--- tail $f"; tail -n 15 "$f" >&2; }
    done
    return 0
}

node_idle() { sinfo -h -N -o '%t' 2>/dev/null | grep -qx 'idle'; }
node_up() { sinfo -h -N -o '%t' 2>/dev/null | grep -qE '^(idle|mix|alloc)'; }

status() {
    [ -f "$SLURM_CONF" ] || { say "not configured ($SLURM_CONF missing)"; return 1; }
    for d in munged mariadb slurmdbd slurmctld slurmd; do
        pid_alive "$S/run/$d.pid" || { say "$d is not running"; return 1; }
    done
    node_up || { say "node not up: $(sinfo -h -N -o '%N %t %E' 2>&1 | head -1)"; return 1; }
    say "running: $(sinfo -h -o '%P %a %D %t' | tr '\n' ';') SLURM_CONF=$SLURM_CONF"
}

write_configs() {
    local node_line ctld_port slurmd_port dbd_port db_port host
    host=$(hostname -s)
    # the node as slurmd sees it: real CPUs, sockets, cores, threads and memory
    node_line=$(slurmd -C | head -n 1)
    ctld_port=$(free_port); slurmd_port=$(free_port); dbd_port=$(free_port); db_port=$(free_port)
    echo "$db_port" > "$S/run/mariadb.port"
    cat > "$SLURM_CONF" <<EOF
# written by scripts/services/slurm.sh: a throwaway one-node cluster
ClusterName=perexp
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$S/run/munge.socket,cred_expire=10
StateSaveLocation=$S/ctld
SlurmdSpoolDir=$S/spool/%n
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups here: processes are tracked through the process tree
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
# look at the queue every few seconds (default 60/30 s): requeued jobs start again promptly
SchedulerParameters=sched_interval=5,bf_interval=5
ReturnToService=2
JobRequeue=1
# seconds between SIGTERM and SIGKILL on scancel / time limit: room for a checkpoint
KillWait=30
MinJobAge=600
InactiveLimit=0
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$dbd_port
# the munge socket for talking to slurmdbd (default: /run/munge/munge.socket.2)
AccountingStoragePass=$S/run/munge.socket
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
$node_line NodeAddr=127.0.0.1 NodeHostname=$host State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
PartitionName=low Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=$GRACE
EOF
    cat > "$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$S/run/munge.socket
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
PidFile=$S/run/slurmdbd.pid
LogFile=$S/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=root
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$ETC/slurmdbd.conf"
}

start() {
    if status 2>/dev/null; then
        say "already running (SLURM_CONF=$SLURM_CONF)"
        return 0
    fi
    [ -d "$S" ] && { say "stale state in $S: stopping what is left and starting afresh"; stop; }
    install_if_missing
    local t0=$SECONDS
    mkdir -p "$S" "$ETC" "$S/run" "$S/log" "$S/ctld" "$S/spool" "$S/mysql"
    write_configs

    mungekey --create --keyfile="$S/run/munge.key" --force
    chmod 400 "$S/run/munge.key"
    munged --force --socket="$S/run/munge.socket" --key-file="$S/run/munge.key" \
        --pid-file="$S/run/munged.pid" --log-file="$S/log/munged.log" --seed-file="$S/run/munged.seed"
    wait_for 20 munged pid_alive "$S/run/munged.pid"

    # MariaDB without grant tables: reachable only on 127.0.0.1 and thrown away afterwards.
    mariadb-install-db --no-defaults --datadir="$S/mysql" --user=root --auth-root-authentication-method=normal \
        --skip-test-db >"$S/log/mariadb-install.log" 2>&1 || { cat "$S/log/mariadb-install.log" >&2; die "mariadb-install-db failed"; }
    setsid mariadbd --no-defaults --datadir="$S/mysql" --user=root --bind-address=127.0.0.1 \
        --port="$(cat "$S/run/mariadb.port")" --socket="$S/run/mariadb.sock" --pid-file="$S/run/mariadb.pid" \
        --log-error="$S/log/mariadb.log" --skip-grant-tables --skip-log-bin --innodb-buffer-pool-size=64M \
        </dev/null >/dev/null 2>&1 &
    wait_for 60 mariadb test -S "$S/run/mariadb.sock"

    slurmdbd
    wait_for 60 slurmdbd sacctmgr -n list cluster
    sacctmgr -i add cluster perexp >/dev/null 2>&1 || true

    slurmctld
    wait_for 60 slurmctld scontrol ping
    slurmd
    wait_for 120 "node idle in sinfo" node_idle
    say "started in $((SECONDS - t0)) s: $(sinfo -h -o '%P %a %D %t' | tr '\n' ';') SLURM_CONF=$SLURM_CONF"
}

stop_pid() {  # stop_pid NAME [SECONDS]: SIGTERM the daemon from its pid file, SIGKILL if it lingers
    local f="$S/run/$1.pid" secs=${2:-30}
    pid_alive "$f" || return 0
    local pid; pid=$(cat "$f")
    kill -TERM "$pid" 2>/dev/null || return 0
    local end=$((SECONDS + secs))
    while kill -0 "$pid" 2>/dev/null; do
        if [ $SECONDS -ge $end ]; then say "$1 ($pid) did not stop in ${secs}s: SIGKILL"; kill -KILL "$pid" 2>/dev/null; break; fi
        sleep 0.2
    done
}

stop() {
    [ -d "$S" ] || { say "nothing to stop ($S does not exist)"; return 0; }
    if [ -f "$SLURM_CONF" ] && pid_alive "$S/run/slurmctld.pid"; then
        # jobs first, so no slurmstepd or job process outlives the cluster
        scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
        local end=$((SECONDS + 60))
        while [ -n "$(squeue -h -t running,completing,configuring -o %i 2>/dev/null)" ] && [ $SECONDS -lt $end ]; do sleep 0.5; done
        [ -z "$(squeue -h -o %i 2>/dev/null)" ] || say "jobs left in the queue: $(squeue -h -o '%i %T' | tr '\n' ' ')"
    fi
    stop_pid slurmd
    stop_pid slurmctld
    stop_pid slurmdbd
    stop_pid mariadb 60
    stop_pid munged
    rm -rf "$S"
    say "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export SLURM_CONF=$SLURM_CONF" ;;
    logs) show_logs ;;
    *) echo "usage: $0 start|stop|status|env|logs   (state folder: \$PER_EXP_SLURM_DIR, default /tmp/per_exp-slurm)" >&2; exit 2 ;;
esac
