# Shared by the load scripts (sourced, with `set -euo pipefail` and `$work` set by the caller).

command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)" >&2; exit 1; }

# The login figures measure argon2's throughput from one client (wrk, on loopback), so the
# servers let that client have as many hashes in flight as wrk has connections (by default
# admission control allows 4 per client network and queues 8).
export PASSWORD_HASH_PER_CLIENT=64 PASSWORD_HASH_QUEUE=64

# Waits (10 s at most) until `$1` answers 2xx.
wait_for() {
    for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "no answer from $1" >&2
    exit 1
}

# The wrk script of the login load: the account `seed` makes, with its right password (the
# throttle counts failures only, so it never throttles this).
cat >"$work/login.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"username_or_email":"bench@example.com","password":"bench-password"}'
wrk.headers["Content-Type"] = "application/json"
LUA

# Registers the bench account on the server at `$1` and gives it an overlay; sets `user`
# (its id) and `overlay` (the overlay's id).
seed() {
    local base=$1 body token
    body=$(curl -fs -X POST "$base/auth/register" -H 'content-type: application/json' \
        -d '{"username":"bench","email":"bench@example.com","password":"bench-password"}')
    user=$(sed -E 's/.*"user_id":"([^"]+)".*/\1/' <<<"$body")
    token=$(sed -E 's/.*"access_token":"([^"]+)".*/\1/' <<<"$body")
    overlay=$(curl -fs -X POST "$base/overlays/" -H "authorization: Bearer $token" \
        -H 'content-type: application/json' -d '{"name":"Bench"}' | sed -E 's/.*"id":"([^"]+)".*/\1/')
}
