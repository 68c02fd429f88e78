#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: a number that a noisy machine does
# not change (req/s does). Run by hand, never in CI. See bench/README.md.
#
# Starts the demo app (its own process, not counted), stepgate under callgrind with collection
# off, signs in, then for each scenario switches collection on, sends N requests over one
# keep-alive connection with curl, switches it off, and prints instructions per request.
#
# Environment:
#   STEPGATE_BIN=...  the binary to profile (default: cargo build --release into
#                     $CARGO_TARGET_DIR or target/, with line tables for callgrind_annotate)
#   N=2000            requests per scenario
#   STORE=embedded    or "redis" (a redis-server of its own on a free port)
#   KEEP_TMP=1        keep the temporary directory (callgrind.out.* for callgrind_annotate)
set -euo pipefail

N="${N:-2000}"
STORE="${STORE:-embedded}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PASSWORD='bench-password-123'

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}
for tool in curl python3 valgrind callgrind_control; do
    command -v "$tool" >/dev/null || die "$tool is needed (apt-get install curl python3 valgrind)"
done

if [[ -n "${STEPGATE_BIN:-}" ]]; then
    BIN="$STEPGATE_BIN"
else
    log "cargo build --release (line tables on)"
    (cd "$ROOT" && CARGO_PROFILE_RELEASE_DEBUG=line-tables-only cargo build --release)
    target_dir="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    BIN="$target_dir/release/stepgate"
fi
[[ -x "$BIN" ]] || die "no stepgate binary at $BIN"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/stepgate-profile.XXXXXX")"
PIDS=()
cleanup() {
    local status=$?
    trap - EXIT
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill "$pid" 2>/dev/null || true; done
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do wait "$pid" 2>/dev/null || true; done
    if [[ $status -ne 0 ]]; then tail -n 20 "$TMP"/*.log >&2 || true; fi
    if [[ -n "${KEEP_TMP:-}" ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
    exit "$status"
}
trap cleanup EXIT

read -r UP_PORT GW_PORT REDIS_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')
wait_for_port() {
    for _ in $(seq 1 600); do
        kill -0 "$2" 2>/dev/null || die "$3 exited before listening on port $1"
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "$3 is not listening on port $1"
}

"$BIN" demo-app --listen "127.0.0.1:$UP_PORT" >"$TMP/upstream.log" 2>&1 &
PIDS+=($!)
wait_for_port "$UP_PORT" "$!" "the demo app"

if [[ "$STORE" == redis ]]; then
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
    PIDS+=($!)
    wait_for_port "$REDIS_PORT" "$!" "redis-server"
    store="$(printf '[store]\nkind = "redis"\nurl = "redis://127.0.0.1:%s/0"\nprefix = "profile"' "$REDIS_PORT")"
else
    store="$(printf '[store]\nkind = "embedded"\npath = "%s/stepgate.db"' "$TMP")"
fi
cat >"$TMP/stepgate.toml" <<EOF
[listen]
address = "127.0.0.1:$GW_PORT"
public_url = "http://localhost:$GW_PORT"
trusted_proxies = ["127.0.0.1/32"]

[upstream]
url = "http://127.0.0.1:$UP_PORT"

$store

[identity]
source = "builtin"
users_file = "$TMP/users.toml"

[sessions]
secret_key = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"

[access_log]
enabled = false

[[rule]]
name = "public"
path = "/public/**"
require = "none"

[default]
require = "aal1"
EOF
echo "$PASSWORD" | "$BIN" user add bench --users-file "$TMP/users.toml" >/dev/null

log "stepgate under callgrind (instrumentation off until measuring) on 127.0.0.1:$GW_PORT"
STEPGATE_LOG=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$TMP/callgrind.out.%p" \
    "$BIN" --config "$TMP/stepgate.toml" run >"$TMP/stepgate.log" 2>&1 &
PIDS+=($!)
GW_PID=$!
wait_for_port "$GW_PORT" "$GW_PID" "stepgate"

GW="http://127.0.0.1:$GW_PORT"
jar="$TMP/jar"
page="$(curl -sS -f -c "$jar" -b "$jar" "$GW/.stepgate/login")" || die "GET /.stepgate/login failed"
csrf="$(python3 -c 'import re,sys; print(re.search(r"name=\"csrf\" value=\"([^\"]*)\"", sys.stdin.read()).group(1))' <<<"$page")"
curl -sS -f -o /dev/null -c "$jar" -b "$jar" --data-urlencode username=bench --data-urlencode "password=$PASSWORD" \
    --data-urlencode "csrf=$csrf" --data-urlencode return=/ "$GW/.stepgate/login" || die "sign-in failed"

# scenario NAME PATH [curl args]: N requests on one connection; prints instructions per request.
scenario() {
    local name=$1 path=$2 out
    shift 2
    # Warm up: connections, caches, the session cache.
    curl -sS -f -o /dev/null "$@" "$GW$path?[1-50]" || die "warm-up of $name failed"
    callgrind_control -i on "$GW_PID" >/dev/null 2>&1
    curl -sS -f -o /dev/null "$@" "$GW$path?[1-50]" || die "warm-up of $name failed"
    callgrind_control -z "$GW_PID" >/dev/null 2>&1
    curl -sS -f -o /dev/null "$@" "$GW$path?[1-$N]" || die "$name failed"
    callgrind_control -d "$name" "$GW_PID" >/dev/null 2>&1
    callgrind_control -i off "$GW_PID" >/dev/null 2>&1
    out="$(ls -t "$TMP"/callgrind.out.* | head -n1)"
    cp "$out" "$TMP/$name.callgrind"
    awk -v n="$N" -v name="$name" '/^(summary|totals):/ { printf "%-10s %10.0f instructions per request\n", name, $2 / n; exit }' "$out"
}

scenario public /public/page
scenario signedin /account -b "$jar"
log "callgrind_annotate $TMP/{public,signedin}.callgrind shows where they go (KEEP_TMP=1 keeps them)"
