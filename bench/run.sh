#!/usr/bin/env bash
# Benchmarks stepgate against nginx as a plain reverse proxy, in front of the same upstream
# (stepgate's demo app). Run by hand, never in CI. See bench/README.md.
#
# Environment:
#   DURATION=10s      how long wrk measures each scenario
#   WARMUP=2s         a wrk run before each measurement, not recorded ("0" to skip)
#   THREADS=2         wrk threads
#   CONNECTIONS=64    wrk connections
#   ROUNDS=3          measurements of every scenario, interleaved; the medians are reported
#   STEPGATE_BIN=...  benchmark this binary instead of building with `cargo build --release`
#   KEEP_TMP=1        keep the temporary directory (configs, logs, database) after the run
#   CONNS=10000       connections for the connection-holding scenario (bench/connections.sh), 0 skips it
set -euo pipefail

DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-64}"
ROUNDS="${ROUNDS:-3}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="$ROOT/bench/out"
PASSWORD='bench-password-123'

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# --- tools ------------------------------------------------------------------------------------

for tool in curl python3; do
    command -v "$tool" >/dev/null || die "$tool is needed (apt-get install $tool)"
done

find_nginx() { command -v nginx || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; } || true; }

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v redis-server >/dev/null || missing+=(redis-server)
[[ -n "$(find_nginx)" ]] || missing+=(nginx)
if ((${#missing[@]})); then
    log "installing ${missing[*]} with apt-get"
    sudo=()
    [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}"
fi
NGINX="$(find_nginx)"
[[ -n "$NGINX" ]] || die "nginx is still missing after apt-get install"

# --- build ------------------------------------------------------------------------------------

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

# --- processes and cleanup --------------------------------------------------------------------

TMP="$(mktemp -d "${TMPDIR:-/tmp}/stepgate-bench.XXXXXX")"
PIDS=()

cleanup() {
    local status=$?
    trap - EXIT
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill "$pid" 2>/dev/null || true; done
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do wait "$pid" 2>/dev/null || true; done
    if [[ $status -ne 0 ]]; then
        for f in "$TMP"/*.log "$TMP"/nginx/*.log; do
            [[ -s "$f" ]] || continue
            printf -- '--- last lines of %s\n' "$f" >&2
            tail -n 20 "$f" >&2
        done
    fi
    if [[ -n "${KEEP_TMP:-}" ]]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Distinct free ports, held open together while they are chosen.
read -r UP_PORT NGINX_PORT GW_PORT REDIS_PORT GWR_PORT NGINX_AUTH0_PORT NGINX_FA0_PORT NGINX_FA_PORT < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
')

# Waits until something accepts TCP connections on $1, while process $2 ($3) is alive.
wait_for_port() {
    local port=$1 pid=$2 name=$3
    for _ in $(seq 1 200); do
        kill -0 "$pid" 2>/dev/null || die "$name exited before listening on port $port"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    die "$name is not listening on port $port after 10 s"
}

# Fails unless GET $1 (with optional extra curl arguments) answers 200 with a body containing $2.
expect_page() {
    local url=$1 needle=$2 body
    shift 2
    body="$(curl -sS --max-time 10 -f "$@" "$url")" || die "GET $url failed"
    [[ "$body" == *"$needle"* ]] || die "GET $url did not contain '$needle'"
}

# --- upstream: the demo app --------------------------------------------------------------------

log "demo app on 127.0.0.1:$UP_PORT"
"$BIN" demo-app --listen "127.0.0.1:$UP_PORT" >"$TMP/upstream.log" 2>&1 &
PIDS+=($!)
UP_PID=$!
wait_for_port "$UP_PORT" "$!" "the demo app"

# --- nginx: a plain keep-alive reverse proxy ----------------------------------------------------

mkdir -p "$TMP/nginx"
nginx_user=""
[[ "$(id -u)" -eq 0 ]] && nginx_user="user root;"
cat >"$TMP/nginx/nginx.conf" <<EOF
$nginx_user
worker_processes auto;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
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
        listen 127.0.0.1:$NGINX_PORT;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
    # Forward-auth: a zero-cost auth server (it says yes to everything)...
    upstream auth0 {
        server 127.0.0.1:$NGINX_AUTH0_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NGINX_AUTH0_PORT;
        location / {
            return 200;
        }
    }
    # ...and stepgate's /.stepgate/auth, asked the same way.
    upstream stepgate_auth {
        server 127.0.0.1:$GW_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NGINX_FA0_PORT;
        location = /_auth {
            internal;
            proxy_pass http://auth0/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI \$request_uri;
            proxy_set_header X-Original-Method \$request_method;
        }
        location / {
            auth_request /_auth;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
    server {
        listen 127.0.0.1:$NGINX_FA_PORT;
        location = /_auth {
            internal;
            proxy_pass http://stepgate_auth/.stepgate/auth;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host \$host;
            proxy_set_header X-Original-URI \$request_uri;
            proxy_set_header X-Original-Method \$request_method;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
        location / {
            auth_request /_auth;
            auth_request_set \$stepgate_user \$upstream_http_x_stepgate_user;
            auth_request_set \$stepgate_level \$upstream_http_x_stepgate_level;
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Stepgate-User \$stepgate_user;
            proxy_set_header X-Stepgate-Level \$stepgate_level;
        }
    }
}
EOF
"$NGINX" -t -q -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" ||
    die "nginx rejected the generated config $TMP/nginx/nginx.conf"
log "nginx on 127.0.0.1:$NGINX_PORT"
"$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx.log" 2>&1 &
PIDS+=($!)
NGINX_PID=$!
wait_for_port "$NGINX_PORT" "$!" "nginx"

# --- stepgate ---------------------------------------------------------------------------------

SECRET="$(openssl rand -hex 32 2>/dev/null || python3 -c 'import secrets; print(secrets.token_hex(32))')"
# write_config FILE PORT STORE_TOML
write_config() {
    cat >"$1" <<EOF
[listen]
address = "127.0.0.1:$2"
public_url = "http://localhost:$2"
trusted_proxies = ["127.0.0.1/32"]

[upstream]
url = "http://127.0.0.1:$UP_PORT"

$3

[identity]
source = "builtin"
users_file = "$TMP/users.toml"

[sessions]
secret_key = "$SECRET"

# nginx runs with access_log off: so does stepgate (audit records stay on).
[access_log]
enabled = false

[[rule]]
name = "public"
path = "/public/**"
require = "none"

[default]
require = "aal1"
EOF
}
write_config "$TMP/stepgate.toml" "$GW_PORT" "$(printf '[store]\nkind = "embedded"\npath = "%s/stepgate.db"' "$TMP")"
write_config "$TMP/stepgate-redis.toml" "$GWR_PORT" \
    "$(printf '[store]\nkind = "redis"\nurl = "redis://127.0.0.1:%s/0"\nprefix = "bench"' "$REDIS_PORT")"
echo "$PASSWORD" | "$BIN" user add bench --users-file "$TMP/users.toml" >/dev/null

log "redis-server on 127.0.0.1:$REDIS_PORT"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$TMP" >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
wait_for_port "$REDIS_PORT" "$!" "redis-server"

log "stepgate (embedded store) on 127.0.0.1:$GW_PORT"
STEPGATE_LOG="${STEPGATE_LOG:-warn}" "$BIN" --config "$TMP/stepgate.toml" run >"$TMP/stepgate.log" 2>&1 &
PIDS+=($!)
GW_PID=$!
wait_for_port "$GW_PORT" "$!" "stepgate"
log "stepgate (redis store) on 127.0.0.1:$GWR_PORT"
STEPGATE_LOG="${STEPGATE_LOG:-warn}" "$BIN" --config "$TMP/stepgate-redis.toml" run >"$TMP/stepgate-redis.log" 2>&1 &
PIDS+=($!)
GWR_PID=$!
wait_for_port "$GWR_PORT" "$!" "stepgate (redis)"

UP="http://127.0.0.1:$UP_PORT"
NGX="http://127.0.0.1:$NGINX_PORT"
GW="http://127.0.0.1:$GW_PORT"
GWR="http://127.0.0.1:$GWR_PORT"
FA0="http://127.0.0.1:$NGINX_FA0_PORT"
FA="http://127.0.0.1:$NGINX_FA_PORT"

# --- sign in ----------------------------------------------------------------------------------

# sign_in BASE_URL -> prints "Cookie: name=value" for a fresh signed-in session
sign_in() {
    local base=$1 jar page csrf status name value
    jar="$(mktemp "$TMP/jar.XXXXXX")"
    page="$(curl -sS --max-time 10 -f -c "$jar" -b "$jar" "$base/.stepgate/login")" ||
        die "GET $base/.stepgate/login failed"
    csrf="$(python3 -c '
import re, sys
for tag in re.findall(r"<input\b[^>]*>", sys.stdin.read()):
    if re.search(r"\bname=\"csrf\"", tag):
        m = re.search(r"\bvalue=\"([^\"]*)\"", tag)
        if m:
            print(m.group(1))
            break
' <<<"$page")"
    [[ -n "$csrf" ]] || die "no csrf field in the login page"
    status="$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -c "$jar" -b "$jar" \
        --data-urlencode "username=bench" --data-urlencode "password=$PASSWORD" \
        --data-urlencode "csrf=$csrf" --data-urlencode "return=/" "$base/.stepgate/login")"
    [[ "$status" == 30[0-9] ]] || die "POST $base/.stepgate/login answered $status, expected a redirect"
    # Netscape cookie jar: tab-separated, name in field 6, value in field 7.
    read -r name value < <(awk -F'\t' \
        '$6 == "stepgate_session" || $6 == "__Host-stepgate_session" { print $6, $7; exit }' "$jar") ||
        die "no session cookie after signing in at $base"
    printf 'Cookie: %s=%s' "$name" "$value"
}
log "signing in as 'bench' on both gateways"
COOKIE="$(sign_in "$GW")"
COOKIE_R="$(sign_in "$GWR")"

# Every target must serve the page it is measured on before anything is measured.
expect_page "$UP/public/x" "Public page"
expect_page "$NGX/public/x" "Public page"
expect_page "$GW/public/x" "Public page"
expect_page "$NGX/account" "Your account"
expect_page "$GW/account" "Signed in as <strong>bench</strong>" -H "$COOKIE"
expect_page "$GWR/account" "Signed in as <strong>bench</strong>" -H "$COOKIE_R"
expect_page "$FA0/account" "Your account"
# Through nginx asking stepgate: the app names the user stepgate vouched for.
expect_page "$FA/account" "bench" -H "$COOKIE"
fa_status="$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "$FA/account")"
[[ "$fa_status" == 401 ]] || die "nginx asking stepgate let /account through without a session ($fa_status)"

# --- measure ----------------------------------------------------------------------------------

mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/wrk-*.txt
declare -A RPS P99 CPU BAD SPREAD

# "1.23ms" / "850.00us" / "1.05s" -> milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (!match(v, /^[0-9.]+/)) { print "nan"; exit }
        n = substr(v, 1, RLENGTH); u = substr(v, RLENGTH + 1)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.2f", n
    }'
}

# CPU time (user + system, in clock ticks) used so far by process $1 and its children that are
# still running (nginx's workers are children of its master).
cpu_ticks() {
    local pid total=0 fields
    for pid in "$1" $(pgrep -P "$1" 2>/dev/null || true); do
        read -ra fields < <(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}
CLK_TCK="$(getconf CLK_TCK)"

# run_wrk ID PID URL [extra wrk options...]: one measurement of scenario ID, appended to its
# lists. PID is the server whose CPU time per request is reported (with its child processes).
run_wrk() {
    local id=$1 pid=$2 url=$3 out="$OUT_DIR/wrk-$1-$ROUND.txt" before after rps p99 cpu bad
    shift 3
    log "($id, round $ROUND/$ROUNDS) $url"
    if [[ "$WARMUP" != "0" ]]; then
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$@" "$url" >/dev/null
    fi
    before="$(cpu_ticks "$pid")"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$out"
    after="$(cpu_ticks "$pid")"
    rps="$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")"
    [[ -n "$rps" ]] || die "could not read Requests/sec from $out"
    p99="$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")"
    cpu="$(awk -v t=$((after - before)) -v hz="$CLK_TCK" '/ requests in / {
        if ($1 > 0) printf "%.1f", t / hz * 1e6 / $1; else print "nan" }' "$out")"
    bad="$(awk '
        /Non-2xx or 3xx responses:/ { n += $NF }
        /Socket errors:/ { for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) { sub(",", "", $i); n += $i } }
        END { print n + 0 }' "$out")"
    RPS[$id]+="$rps " P99[$id]+="$p99 " CPU[$id]+="$cpu "
    BAD[$id]=$((${BAD[$id]:-0} + bad))
    printf '    %s req/s, p99 %s ms, %s µs CPU per request, %s errors\n' "$rps" "$p99" "$cpu" "$bad" >&2
}

# median LIST FORMAT: the median of a space-separated list of numbers, printed with FORMAT.
median() { tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk -v f="$2" '{ v[NR] = $1 } END {
    printf f, (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Rounds interleave the scenarios, so that a slow spell of the machine touches them all alike;
# each figure reported is the median over the rounds.
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    run_wrk a "$UP_PID" "$UP/public/x"
    run_wrk b "$NGINX_PID" "$NGX/public/x"
    run_wrk c "$GW_PID" "$GW/public/x"
    run_wrk d "$NGINX_PID" "$NGX/account"
    run_wrk e "$GW_PID" "$GW/account" -H "$COOKIE"
    run_wrk f "$GWR_PID" "$GWR/account" -H "$COOKIE_R"
    run_wrk g "$NGINX_PID" "$FA0/account"
    run_wrk h "$GW_PID" "$FA/account" -H "$COOKIE"
done
for id in a b c d e f g h; do
    SPREAD[$id]="$(tr ' ' '\n' <<<"${RPS[$id]}" | awk 'NF' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "–" hi }')"
    RPS[$id]="$(median "${RPS[$id]}" %.0f)" P99[$id]="$(median "${P99[$id]}" %.2f)"
    CPU[$id]="$(median "${CPU[$id]}" %.1f)"
done

# --- report -----------------------------------------------------------------------------------

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

row() { # ID SCENARIO [NGINX_ID]
    local id=$1 what=$2 base=${3:-} rps_vs="" p99_vs="" cpu_vs=""
    if [[ -n "$base" ]]; then
        rps_vs="$(ratio "${RPS[$id]}" "${RPS[$base]}")"
        p99_vs="$(ratio "${P99[$id]}" "${P99[$base]}")"
        cpu_vs="$(ratio "${CPU[$id]}" "${CPU[$base]}")"
    fi
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$id" "$what" "${RPS[$id]}" \
        "${SPREAD[$id]}" "${P99[$id]}" "${CPU[$id]}" "${BAD[$id]}" "$rps_vs" "$p99_vs" "$cpu_vs"
}

commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git -C "$ROOT" diff --quiet HEAD 2>/dev/null; then commit="$commit (with uncommitted changes)"; fi
cpu="$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)"
nginx_version="$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"

RESULTS="$OUT_DIR/results.md"
{
    echo "# stepgate benchmark"
    echo
    echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), stepgate $commit"
    echo "- $(uname -srm), $(nproc) CPUs${cpu:+ ($cpu)}; everything on this host over loopback"
    echo "- wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency (warm-up: $WARMUP), $ROUNDS interleaved rounds, medians; $nginx_version,"
    echo "  worker_processes auto, upstream keepalive 64; upstream: stepgate demo-app"
    echo
    echo "| | Scenario | Req/s | Req/s range | p99 (ms) | CPU µs/req | Errors | Req/s vs nginx | p99 vs nginx | CPU vs nginx |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    row a "upstream direct, \`/public/x\`"
    row b "nginx, \`/public/x\`"
    row c "stepgate, \`/public/x\` (public rule)" b
    row d "nginx, \`/account\` (no auth)"
    row e "stepgate embedded, \`/account\` (session cookie, aal1)" d
    row f "stepgate redis, \`/account\` (session cookie, aal1)" d
    row g "nginx \`auth_request\` → zero-cost auth (\`return 200\`), \`/account\`"
    row h "nginx \`auth_request\` → stepgate \`/.stepgate/auth\`, \`/account\` (session, aal1)" g
    echo
    echo "Forward-auth (h) vs stepgate as the proxy (e): $(ratio "${RPS[h]}" "${RPS[e]}")x req/s."
    echo "CPU µs/req in (g) is nginx's; in (h) it is stepgate's alone (nginx works too: see g)."
    echo
    echo "Redis vs embedded on the signed-in route: $(ratio "${RPS[f]}" "${RPS[e]}")x req/s (target >= 0.9)."
    echo
    echo "Errors: non-2xx/3xx responses plus socket errors (must be 0)."
    echo "Req/s vs nginx: higher is better, 1.00 is parity. p99 vs nginx: lower is better."
    echo "CPU µs/req: user + system CPU time of the server's processes during the run, per request"
    echo "(nginx: master and workers; stepgate: all its threads, including the audit log writer)."
} >"$RESULTS"

echo
cat "$RESULTS"
echo
log "written to ${RESULTS#"$ROOT"/}; raw wrk output in ${OUT_DIR#"$ROOT"/}/wrk-*.txt"

for id in a b c d e f g h; do
    [[ "${BAD[$id]}" == 0 ]] || die "scenario $id had ${BAD[$id]} errors: the numbers above are not comparable"
done

# The connection-holding scenario: RSS per idle connection and wrk -c$CONNS (CONNS=0 skips it).
if [[ "${CONNS:-10000}" != 0 ]]; then
    log "connection-holding scenario (bench/connections.sh, CONNS=${CONNS:-10000})"
    STEPGATE_BIN="$BIN" CONNS="${CONNS:-10000}" "$ROOT/bench/connections.sh" | tee -a "$RESULTS"
fi
