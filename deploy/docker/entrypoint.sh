#!/bin/sh
# Entrypoint of Berth's image (both builds: deploy/docker/Dockerfile and
# deploy/docker/build-local-image.sh). One image runs every Berth program; the
# first argument picks which:
#   controller [flags]   a controller replica (the default command)
#   agent [flags]        a node agent
#   berth [args]         the CLI (also installed as /usr/local/bin/berth)
#   etcd-auth [flags]    one-shot: etcd's users and roles for Berth, auth on
#   --flag ...           flags alone go to the controller
#   anything else        executed as is (sh, node, ...)
# Every flag also has a BERTH_* environment variable; `controller --help` and
# `agent --help` list them.
set -e
app=${BERTH_APP_DIR:-/app}
if [ "$(basename "$0")" = berth ]; then
  exec node "$app/apps/cli/dist/main.js" "$@"
fi
case "${1:-controller}" in
  controller) [ $# -gt 0 ] && shift; exec node "$app/apps/controller/dist/main.js" "$@" ;;
  agent) shift; exec node "$app/apps/agent/dist/main.js" "$@" ;;
  berth | cli) shift; exec node "$app/apps/cli/dist/main.js" "$@" ;;
  etcd-auth) shift; exec node "$app/apps/controller/dist/etcd-auth-init.js" "$@" ;;
  -*) exec node "$app/apps/controller/dist/main.js" "$@" ;;
  *) exec "$@" ;;
esac
