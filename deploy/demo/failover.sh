#!/usr/bin/env bash
# The failover demo: against a cluster started with
#   docker compose -f compose.ha.yml up -d --build
# it shows the leader, creates a few pods, `docker kill`s the leader's
# container, prints how long the election of the next leader took and that every
# pod is still Running and bound exactly once, then `docker start`s the killed
# replica and shows it rejoin as a follower. Exits non-zero if any claim fails.
#
#   deploy/demo/failover.sh                    # controllers on localhost:8081-8083
#   deploy/demo/failover.sh --pods 5 --image busybox:1.36 --keep
#   deploy/demo/failover.sh --help             # every option (berth demo failover)
#
# It is `berth demo failover`; this script builds the CLI first.
# The docker CLI it runs talks to the engine in DOCKER_HOST, as compose does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# Needs Node 20 and npm on this machine (the CLI runs here; the docker CLI kills
# and starts the containers). tsc -b is incremental: a second or two when the
# CLI is already built, and a checkout older than the demo gets it rebuilt.
command -v node >/dev/null || { echo "the failover demo needs Node.js 20 and npm on this machine" >&2; exit 1; }
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
npx --no-install tsc -b apps/cli
# compose.ha.yml runs with authentication on: without a token of yours, use the
# stack's admin token, read from a controller container (docker access is root
# on the host anyway).
if [ -z "${BERTH_TOKEN:-}" ] && [ -z "${BERTH_TOKEN_FILE:-}" ]; then
  controller=$(docker ps -q --filter label=berth.role=controller | head -n 1)
  if [ -n "$controller" ]; then
    BERTH_TOKEN=$(docker exec "$controller" cat /secrets/admin-token) && export BERTH_TOKEN
  fi
fi
exec node apps/cli/dist/main.js demo failover "$@"
