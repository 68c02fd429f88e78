#!/usr/bin/env bash
# Installs the external programs the tests use as independent judges: oathtool (TOTP codes),
# redis-server and redis-cli (the Redis store), Debian's Chromium and playwright-core (the
# browser test with a virtual authenticator; no browser is downloaded), openssl (a test CA for
# TLS, to the gateway and to Redis), curl (an HTTPS client), nginx and Caddy (real front
# proxies in front of the forward-auth endpoint) and promtool (Debian's prometheus package,
# which checks the /metrics output), and npm's oidc-provider (a real OpenID provider).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v oathtool >/dev/null || need+=(oathtool)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v nginx >/dev/null || need+=(nginx)
command -v caddy >/dev/null || need+=(caddy)
command -v promtool >/dev/null || need+=(prometheus)
command -v node >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
# playwright-core only drives the browser above; PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD keeps it so.
if [ ! -d e2e/node_modules/playwright-core ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix e2e --no-audit --no-fund
fi
# oidc-provider: the real OpenID provider of the OIDC tests (tests/idp/provider.mjs).
if [ ! -d tests/idp/node_modules/oidc-provider ]; then
  npm ci --prefix tests/idp --no-audit --no-fund
fi
