#!/usr/bin/env bash
# Prepares a fresh Debian machine for Berth: etcd, npm dependencies, build.
# Sourced by scripts/start.sh and scripts/test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\033[1m[berth setup]\033[0m %s\n' "$*" >&2; }

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  say "Node.js >= 20 is required (found $(node --version))."; exit 1
fi

apt_updated=0
apt_install() {
  if [ "$(id -u)" != "0" ]; then
    say "missing: $* — install it with: sudo apt-get update && sudo apt-get install -y $*"; exit 1
  fi
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  say "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  apt_install etcd-server etcd-client
fi

# The dashboard's browser test drives Debian's chromium through playwright-core (no browser download).
# Only the test run needs it (scripts/test.sh sets BERTH_SETUP_BROWSER=1).
if [ "${BERTH_SETUP_BROWSER:-0}" = 1 ] && ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = "0" ]; then
    apt_install chromium
  else
    say "chromium is missing: the dashboard browser test will be skipped (install it with: sudo apt-get install -y chromium)"
  fi
fi

# The compose test brings compose.ha.yml up with Debian's docker-compose (v1.29; `docker compose`
# v2 is not packaged for bookworm). Only the test run needs it (scripts/test.sh sets BERTH_SETUP_COMPOSE=1).
if [ "${BERTH_SETUP_COMPOSE:-0}" = 1 ] && ! command -v docker-compose >/dev/null; then
  if [ "$(id -u)" = "0" ]; then
    apt_install docker-compose
  else
    say "docker-compose is missing: the compose test will fail (install it with: sudo apt-get install -y docker-compose)"
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

say "building (tsc -b)"
npx --no-install tsc -b
# tsc does not set the executable bit the workspace bins (npx berth, berth-controller, berth-agent) need,
# and `npm ci` links no bin whose file did not exist yet (before the first build).
chmod +x apps/*/dist/main.js
if [ ! -L node_modules/.bin/berth ]; then
  npm rebuild --ignore-scripts --loglevel=error >/dev/null
fi
