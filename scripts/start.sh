#!/usr/bin/env bash
# `npm start`: set up whatever is missing, build, and run a local HA cluster
# (etcd + 3 controllers) in the foreground. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec node libs/devcluster/dist/start-local.js "$@"
