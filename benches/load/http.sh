#!/usr/bin/env bash
# HTTP load figures with wrk, all in one run on this machine:
#   - GET /color/{user_id} and GET /overlay/{id} on the warp and the hyper frontends,
#     next to a minimal warp "hello" server;
#   - /color's latency during a login storm (argon2 with its real cost).
# Usage: benches/load/http.sh   (needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
source benches/load/common.sh

cargo build --release -q -p melodyhue --bin melodyhue -p melodyhue-benches --bin hello_warp
bin=$(realpath "${CARGO_TARGET_DIR:-target}")/release
DURATION=${DURATION:-10s}

# wrk's summary: requests/s, p99 latency, and errors (non-2xx, socket errors, timeouts).
measure() {
    local label=$1; shift
    local out; out=$(wrk --latency "$@")
    local rps p99 errors
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
    printf '%-44s %10s req/s   p99 %8s   %s\n' "$label" "$rps" "$p99" "${errors:-no errors}"
}

PORT=8790 "$bin/hello_warp" & wait_for http://127.0.0.1:8790/
measure "warp hello (baseline)" -t2 -c64 -d"$DURATION" http://127.0.0.1:8790/

for frontend in warp hyper; do
    port=$([ $frontend = warp ] && echo 8791 || echo 8792)
    mkdir -p "$work/$frontend"
    (cd "$work/$frontend" && LOG_LEVEL=warn PORT=$port MELODYHUE_FRONTEND=$frontend exec \
        "$bin/melodyhue" >/dev/null 2>&1) &
    wait_for "http://127.0.0.1:$port/health"
    seed "http://127.0.0.1:$port"
    measure "$frontend GET /color/{user_id}" -t2 -c64 -d"$DURATION" "http://127.0.0.1:$port/color/$user"
    measure "$frontend GET /overlay/{id}" -t2 -c64 -d"$DURATION" "http://127.0.0.1:$port/overlay/$overlay"
    if [ $frontend = warp ]; then
        # The storm: 32 clients logging in as fast as argon2 lets them.
        wrk -t1 -c32 -d"$DURATION" --timeout 60s -s "$work/login.lua" "http://127.0.0.1:$port/auth/login" >"$work/storm.txt" &
        storm=$!
        sleep 1
        measure "warp GET /color during a login storm" -t1 -c16 -d"$DURATION" "http://127.0.0.1:$port/color/$user"
        wait $storm
        printf '%-44s %10s req/s\n' "  (the storm itself: POST /auth/login)" "$(awk '/Requests\/sec/ {print $2}' "$work/storm.txt")"
    fi
done
