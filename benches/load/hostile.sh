#!/usr/bin/env bash
# What hostile clients can take from a running server, on both frontends:
#   - slow clients: 1,100 connections trickling request heads (then 1,100 that send nothing) into
#     a server limited to 1,024 open files, while a real client asks `GET /health` every 100 ms
#     (bin `slow_clients`);
#   - /ws memory: 30 sockets each sending 60 MiB of a message that never ends (bin `ws_hostile`).
# Usage: benches/load/hostile.sh
#   MELODYHUE_BIN=path   the server binary to measure (default: a release build of this tree)
#   BEFORE_BIN=path      also measure this one (e.g. a build of an earlier commit), for comparison
#   SECONDS_UNDER_ATTACK=30
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release -q -p melodyhue-benches --bin slow_clients --bin ws_hostile
tools=$(realpath "${CARGO_TARGET_DIR:-target}")/release
if [ -z "${MELODYHUE_BIN:-}" ]; then
    cargo build --release -q -p melodyhue --bin melodyhue
    MELODYHUE_BIN=$tools/melodyhue
fi
seconds=${SECONDS_UNDER_ATTACK:-30}

wait_for() {
    for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "no answer from $1" >&2
    exit 1
}

# Starts `$1` (a server binary) with frontend `$2` on port `$3` and at most 1,024 open files;
# sets `pid`.
start() {
    local bin=$1 frontend=$2 port=$3
    rm -rf "$work/data" && mkdir -p "$work/data"
    (cd "$work/data" && LOG_LEVEL=warn PORT=$port MELODYHUE_FRONTEND=$frontend \
        SPOTIFY_POLLING_INTERVAL=3 exec prlimit --nofile=1024:1024 "$bin" >"$work/log" 2>&1) &
    pid=$!
    wait_for "http://127.0.0.1:$port/health"
    # prlimit execs the server: the job's pid is the server's.
}

stop() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

for label in before after; do
    if [ $label = before ]; then bin=${BEFORE_BIN:-}; else bin=$MELODYHUE_BIN; fi
    [ -n "$bin" ] || continue
    for frontend in warp hyper; do
        echo "== $label, $frontend"
        for mode in trickle silent; do
            start "$bin" $frontend 8795
            echo "-- $mode"
            "$tools/slow_clients" http://127.0.0.1:8795 1100 "$seconds" $mode
            stop
        done
        start "$bin" $frontend 8796
        "$tools/ws_hostile" http://127.0.0.1:8796 "$pid" 30 60
        stop
    done
done
