#!/usr/bin/env bash
# Throughput per storage backend, all in one run on this machine: the release server on the
# embedded SQLite, on PostgreSQL (127.0.0.1:5432, user postgres) and on MariaDB (127.0.0.1:3306,
# root), each on a scratch database dropped afterwards.
#   GET /overlay/{id}   what OBS polls (answered from a short-lived copy, see docs/DECISIONS.md)
#   GET /users/{id}     a public profile: two database reads per request
#   POST /auth/login    argon2 with its real cost dominates
# Usage: benches/load/backends.sh   (needs wrk, psql and mariadb clients)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
name="mh_bench_$$"
cleanup() {
    kill $(jobs -p) 2>/dev/null || true
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $name" postgres >/dev/null 2>&1 || true
    mariadb -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $name" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
source benches/load/common.sh

cargo build --release -q -p melodyhue --bin melodyhue
bin=$(realpath "${CARGO_TARGET_DIR:-target}")/release
DURATION=${DURATION:-10s}
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $name" postgres
mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE $name"

rps() { wrk "$@" | awk '/Requests\/sec/ {print $2}'; }

printf '%-10s %16s %16s %16s\n' backend "GET /overlay" "GET /users/{id}" "POST /auth/login"
port=8800
for backend in sqlite postgres mariadb; do
    case $backend in
        sqlite) url="sqlite:$work/bench.db" ;;
        postgres) url="postgres://postgres@127.0.0.1:5432/$name" ;;
        mariadb) url="mysql://root@127.0.0.1:3306/$name" ;;
    esac
    port=$((port + 1))
    mkdir -p "$work/$backend"
    (cd "$work/$backend" && LOG_LEVEL=warn PORT=$port DATABASE_URL=$url exec "$bin/melodyhue" >/dev/null 2>&1) &
    wait_for "http://127.0.0.1:$port/health"
    seed "http://127.0.0.1:$port"
    printf '%-10s %16s %16s %16s\n' $backend \
        "$(rps -t2 -c64 -d"$DURATION" "http://127.0.0.1:$port/overlay/$overlay")" \
        "$(rps -t2 -c64 -d"$DURATION" "http://127.0.0.1:$port/users/$user")" \
        "$(rps -t1 -c8 -d"$DURATION" --timeout 60s -s "$work/login.lua" "http://127.0.0.1:$port/auth/login")"
    kill %% 2>/dev/null || true
done
