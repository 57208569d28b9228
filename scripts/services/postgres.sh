#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for an MLflow tracking server, without systemd.
#
#   scripts/services/postgres.sh start    # install if missing, initdb, start, create the mlflow role and database
#   scripts/services/postgres.sh status   # exit 0 when the server accepts connections
#   scripts/services/postgres.sh env      # prints `export PER_EXP_PG_URI=postgresql://...`
#   scripts/services/postgres.sh stop     # stop the server and remove the state folder
#
# The cluster lives in $PER_EXP_PG_DIR (default /tmp/per_exp-pg), listens on 127.0.0.1 only, on
# $PER_EXP_PG_PORT or a free port, with its Unix socket inside the state folder; nothing under
# /etc or /var/lib/postgresql is touched. PostgreSQL refuses to run as root, so as root the
# server runs as the `postgres` user (created if missing); otherwise as the current user.
#
# What it makes: a role `mlflow` (password `mlflow`, CREATEDB so a test can make a fresh
# database per server) and a database `mlflow` owned by it. Password authentication
# (scram-sha-256) over TCP, as on a real database host:
#   mlflow server --backend-store-uri "$PER_EXP_PG_URI" ...
set -euo pipefail

S="${PER_EXP_PG_DIR:-/tmp/per_exp-pg}"
PGUSER_OS="${PER_EXP_PG_OS_USER:-postgres}"
ROLE=mlflow
PASSWORD=mlflow

say() { echo "postgres.sh: $*" >&2; }
die() { say "$*"; exit 1; }
cannot() { say "$*"; exit 3; }  # this machine cannot run it: the test fixtures may skip locally

bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

install_if_missing() {
    bindir >/dev/null && return 0
    [ "$(id -u)" -eq 0 ] || cannot "PostgreSQL is not installed and this is not root: apt-get install postgresql"
    say "installing postgresql"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null
}

as_db_user() {  # run a command as the user who owns the cluster
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$PGUSER_OS" -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

port() { cat "$S/port"; }
uri() { echo "postgresql://$ROLE:$PASSWORD@127.0.0.1:$(port)/mlflow"; }

status() {
    local b; b=$(bindir) || { say "PostgreSQL is not installed"; return 1; }
    [ -f "$S/port" ] || { say "not started ($S/port missing)"; return 1; }
    as_db_user "$b/pg_isready" -q -h 127.0.0.1 -p "$(port)" || { say "not accepting connections on 127.0.0.1:$(port)"; return 1; }
    say "running: $(uri)"
}

start() {
    if status 2>/dev/null; then say "already running: $(uri)"; return 0; fi
    [ -d "$S" ] && { say "stale state in $S: stopping what is left and starting afresh"; stop; }
    install_if_missing
    local b t0=$SECONDS
    b=$(bindir)
    if [ "$(id -u)" -eq 0 ] && ! id -u "$PGUSER_OS" >/dev/null 2>&1; then
        useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin "$PGUSER_OS"
    fi
    mkdir -p "$S"
    echo "${PER_EXP_PG_PORT:-$(free_port)}" > "$S/port"
    mkdir -p "$S/data" "$S/run"
    printf '%s\n' "$PASSWORD" > "$S/pwfile"
    [ "$(id -u)" -eq 0 ] && chown -R "$PGUSER_OS" "$S"
    chmod 700 "$S/data"
    as_db_user "$b/initdb" -D "$S/data" -U postgres --pwfile="$S/pwfile" --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$S/initdb.log" 2>&1 \
        || { cat "$S/initdb.log" >&2; die "initdb failed"; }
    as_db_user "$b/pg_ctl" -D "$S/data" -l "$S/server.log" -w -t 60 start \
        -o "-c listen_addresses=127.0.0.1 -p $(port) -c unix_socket_directories=$S/run -c fsync=off -c max_connections=200" \
        >/dev/null || { tail -n 20 "$S/server.log" >&2; die "pg_ctl start failed"; }
    as_db_user "$b/psql" -q -h "$S/run" -p "$(port)" -U postgres -d postgres -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'" \
        -c "CREATE DATABASE mlflow OWNER $ROLE" >/dev/null
    say "started in $((SECONDS - t0)) s: $(uri)"
}

stop() {
    [ -d "$S" ] || { say "nothing to stop ($S does not exist)"; return 0; }
    local b
    if b=$(bindir) && [ -f "$S/data/postmaster.pid" ]; then
        as_db_user "$b/pg_ctl" -D "$S/data" -m fast -w -t 60 stop >/dev/null 2>&1 \
            || say "pg_ctl stop failed: $(tail -n 5 "$S/server.log" 2>/dev/null)"
    fi
    rm -rf "$S"
    say "stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export PER_EXP_PG_URI=$(uri)" ;;
    *) echo "usage: $0 start|stop|status|env   (state folder: \$PER_EXP_PG_DIR, default /tmp/per_exp-pg)" >&2; exit 2 ;;
esac
