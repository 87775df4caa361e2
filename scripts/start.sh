#!/usr/bin/env bash
# `npm start`: set up whatever is missing, build, and run a local HA cluster
# (etcd + 3 controllers) in the foreground. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

# Pods (and nodes added with POST /v1/nodes) run as containers when a Docker engine is
# available: start a private one (it keeps running after Ctrl-C; stop it with
# `bash scripts/dockerd.sh stop`). Without one they run as processes.
if bash scripts/dockerd.sh start >/dev/null && eval "$(bash scripts/dockerd.sh env)" \
  && bash deploy/docker/build-local-image.sh >/dev/null && bash deploy/docker/build-test-images.sh >/dev/null; then
  echo "[berth] Docker engine at $DOCKER_HOST: pods run as containers, POST /v1/nodes starts node containers"
else
  unset DOCKER_HOST
  echo "[berth] no Docker engine: pods run as host processes, POST /v1/nodes starts agent processes"
fi
exec node libs/devcluster/dist/start-local.js "$@"
