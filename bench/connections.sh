#!/usr/bin/env bash
# Connection-holding benchmark: RSS per idle keep-alive connection (HTTP/1.1 and HTTP/2
# cleartext) for nginx and stepgate, and a `wrk -c$CONNS` run on the public route counting the
# 5xx answers of each. Run by hand (bench/run.sh runs it last unless CONNS=0). See bench/README.md.
#
# Environment:
#   CONNS=10000       connections held (and wrk's -c)
#   WRK_DURATION=10s  how long the wrk -c$CONNS run lasts ("0" to skip it)
#   STEPGATE_BIN=...  this binary instead of `cargo build --release`
#   KEEP_TMP=1        keep the temporary directory
#
# Needs an open-file limit above CONNS for this shell (the servers and the holder inherit it):
# the README recommends `ulimit -n 65536` (LimitNOFILE=65536 under systemd).
set -euo pipefail

CONNS="${CONNS:-10000}"
WRK_DURATION="${WRK_DURATION:-10s}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

for tool in curl python3; do
    command -v "$tool" >/dev/null || die "$tool is needed (apt-get install $tool)"
done
NGINX="$(command -v nginx || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true)"
[[ -n "$NGINX" ]] || die "nginx is needed (apt-get install nginx)"

# The holder, both servers and wrk each hold CONNS descriptors (the servers CONNS more upstream).
want=$((CONNS * 2 + 1024))
ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
have="$(ulimit -n)"
if [[ "$have" != unlimited ]] && ((have < CONNS + 512)); then
    die "ulimit -n is $have: raise it above $((CONNS + 512)) (e.g. ulimit -n 65536) or lower CONNS"
fi

if [[ -n "${STEPGATE_BIN:-}" ]]; then
    BIN="$STEPGATE_BIN"
else
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release)
    target_dir="$(cd "$ROOT" && cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
    BIN="$target_dir/release/stepgate"
fi
[[ -x "$BIN" ]] || die "no stepgate binary at $BIN"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/stepgate-conns.XXXXXX")"
PIDS=()
cleanup() {
    local status=$?
    trap - EXIT
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill "$pid" 2>/dev/null || true; done
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do wait "$pid" 2>/dev/null || true; done
    if [[ $status -ne 0 ]]; then
        for f in "$TMP"/*.log "$TMP"/nginx/*.log; do
            [[ -s "$f" ]] && { printf -- '--- last lines of %s\n' "$f" >&2; tail -n 20 "$f" >&2; }
        done
    fi
    [[ -n "${KEEP_TMP:-}" ]] && log "kept $TMP" || rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r UP_PORT NGX_PORT NGX2_PORT GW_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')

wait_for_port() {
    local port=$1 pid=$2 name=$3
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || die "$name exited before listening on port $port"
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    die "$name is not listening on port $port after 10 s"
}

log "demo app on 127.0.0.1:$UP_PORT"
"$BIN" demo-app --listen "127.0.0.1:$UP_PORT" >"$TMP/upstream.log" 2>&1 &
PIDS+=($!)
wait_for_port "$UP_PORT" "$!" "the demo app"

# Both servers keep idle connections far longer than the run lasts.
mkdir -p "$TMP/nginx"
nginx_user=""
[[ "$(id -u)" -eq 0 ]] && nginx_user="user root;"
cat >"$TMP/nginx/nginx.conf" <<EOF
$nginx_user
worker_processes auto;
worker_rlimit_nofile $((CONNS * 2 + 1024));
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events {
    worker_connections $((CONNS * 2 + 1024));
}
http {
    access_log off;
    keepalive_timeout 600s;
    keepalive_requests 1000000;
    client_header_timeout 600s;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream app {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NGX_PORT;
        listen 127.0.0.1:$NGX2_PORT http2;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
}
EOF
SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
: >"$TMP/users.toml"
cat >"$TMP/stepgate.toml" <<EOF
[listen]
address = "127.0.0.1:$GW_PORT"
public_url = "http://localhost:$GW_PORT"
header_timeout = "600s"
idle_timeout = "600s"
max_connections = $((CONNS * 2))

[upstream]
url = "http://127.0.0.1:$UP_PORT"

[store]
kind = "embedded"
path = "$TMP/stepgate.db"

[identity]
source = "builtin"
users_file = "$TMP/users.toml"

[sessions]
secret_key = "$SECRET"

[access_log]
enabled = false

[[rule]]
name = "public"
path = "/public/**"
require = "none"

[default]
require = "aal1"
EOF
# Both servers start afresh for each protocol, so that each count starts from an idle process.
start_servers() {
    "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" >>"$TMP/nginx.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=($NGINX_PID)
    wait_for_port "$NGX_PORT" "$NGINX_PID" "nginx"
    STEPGATE_LOG="${STEPGATE_LOG:-warn}" "$BIN" --config "$TMP/stepgate.toml" run >>"$TMP/stepgate.log" 2>&1 &
    GW_PID=$!
    PIDS+=($GW_PID)
    wait_for_port "$GW_PORT" "$GW_PID" "stepgate"
    for url in "http://127.0.0.1:$NGX_PORT/public/x" "http://127.0.0.1:$GW_PORT/public/x"; do
        curl -sSf --max-time 10 -H 'Host: localhost' "$url" >/dev/null || die "GET $url failed"
    done
}
stop_servers() {
    kill "$NGINX_PID" "$GW_PID" 2>/dev/null || true
    wait "$NGINX_PID" "$GW_PID" 2>/dev/null || true
}
rss_of() { awk '/VmRSS/ { print $2 }' "/proc/$1/status"; }

log "nginx on 127.0.0.1:$NGX_PORT (HTTP/1.1) and :$NGX2_PORT (h2c); stepgate on 127.0.0.1:$GW_PORT (both)"
# hold NAME PORT PID PROTO -> "proto n before_kb held_kb bytes_per_conn ok"
hold() {
    local line
    line="$(python3 "$ROOT/bench/hold.py" --port "$2" --pids "$3" -n "$CONNS" --proto "$4")"
    log "$1 $4: $line"
    echo "$line"
}
declare -A PER OK AFTER
for proto in h1 h2; do
    start_servers
    nginx_port=$NGX_PORT
    [[ $proto == h2 ]] && nginx_port=$NGX2_PORT
    for target in "nginx $nginx_port $NGINX_PID" "stepgate $GW_PORT $GW_PID"; do
        read -r name port pid <<<"$target"
        read -r _ _ _ _ per ok < <(hold "$name" "$port" "$pid" "$proto")
        PER["$name-$proto"]=$per
        OK["$name-$proto"]=$ok
    done
    sleep 2 # the connections have closed: what stepgate gives back
    AFTER[$proto]="$(rss_of "$GW_PID")"
    stop_servers
done
start_servers

# wrk with CONNS connections on the public route: how many answers were 5xx (wrk counts every
# non-2xx/3xx), and socket errors.
declare -A NON2XX SOCKERR REQS
if [[ "$WRK_DURATION" != 0 ]] && command -v wrk >/dev/null; then
    for target in "nginx $NGX_PORT" "stepgate $GW_PORT"; do
        read -r name port <<<"$target"
        out="$(wrk -t2 -c"$CONNS" -d"$WRK_DURATION" --timeout 10s -H 'Host: localhost' \
            "http://127.0.0.1:$port/public/x" 2>&1 || true)"
        REQS[$name]="$(awk '/requests in/ { print $1 }' <<<"$out")"
        NON2XX[$name]="$(awk '/Non-2xx/ { print $NF }' <<<"$out")"
        SOCKERR[$name]="$(grep -o 'Socket errors:.*' <<<"$out" || echo 'Socket errors: none')"
        log "wrk -c$CONNS $name: ${REQS[$name]:-?} requests, ${NON2XX[$name]:-0} non-2xx, ${SOCKERR[$name]}"
        sleep 2
    done
fi

kb() { awk -v b="$1" 'BEGIN { printf "%.1f KB", b / 1024 }'; }
echo
echo "| $CONNS idle keep-alive connections | nginx | stepgate | stepgate / nginx |"
echo "|---|---|---|---|"
for proto in h1 h2; do
    n="${PER[nginx-$proto]}" s="${PER[stepgate-$proto]}"
    label="HTTP/1.1"
    [[ $proto == h2 ]] && label="HTTP/2 (h2c)"
    printf '| RSS per connection, %s | %s | %s | %s |\n' "$label" "$(kb "$n")" "$(kb "$s")" \
        "$(awk -v a="$s" -v b="$n" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
done
printf '| connections held (of %s): h1, h2 | %s, %s | %s, %s | |\n' "$CONNS" \
    "${OK[nginx-h1]}" "${OK[nginx-h2]}" "${OK[stepgate-h1]}" "${OK[stepgate-h2]}"
echo "| stepgate RSS 2 s after they closed: h1, h2 | | ${AFTER[h1]} KB, ${AFTER[h2]} KB | |"
if [[ -n "${REQS[nginx]:-}" ]]; then
    printf '| wrk -c%s public route: requests, non-2xx | %s, %s | %s, %s | |\n' "$CONNS" \
        "${REQS[nginx]}" "${NON2XX[nginx]:-0}" "${REQS[stepgate]}" "${NON2XX[stepgate]:-0}"
fi
