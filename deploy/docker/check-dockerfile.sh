#!/usr/bin/env bash
# Verifies deploy/docker/Dockerfile for real: builds it with the legacy builder
# (DOCKER_BUILDKIT=0, what docker 20.10 uses) and smoke-tests the image.
#
#   1. The base image. Where no registry serves node:20-slim, a stand-in is built
#      once and kept: Debian bookworm minbase (debootstrap from deb.debian.org,
#      as debian:bookworm-slim is), the host's Node 20 as /usr/local/bin/node, the
#      host's npm in /usr/local/lib/node_modules/npm with /usr/local/bin/npm and npx,
#      user and group `node` (1000) and the official image's docker-entrypoint.sh,
#      ENTRYPOINT and CMD; on a machine whose egress re-signs TLS, also the host's
#      extra CA bundle (NODE_EXTRA_CA_CERTS), without which npm ci cannot reach the
#      registry. Tagged $NODE_STANDIN (default
#      berth-test/node-slim-standin:local); skipped when that image exists.
#      NODE_IMAGE=node:20-slim (or any Node 20 image) uses that instead.
#   2. docker build --network host --build-arg NODE_IMAGE=... -f deploy/docker/Dockerfile
#      -t TAG .   (TAG: the first argument, default berth:dockerfile)
#   3. The image's interface (user 10001:10001, workdir /app, entrypoint, cmd,
#      NODE_ENV), its contents (workspace links resolve, no *.tsbuildinfo),
#      `controller --help`, `agent --help`, `berth --help`, and a controller
#      started from the image against an etcd on loopback ports, which must
#      elect itself leader (GET /v1/leader) and serve the dashboard's script.
#
# Usage: deploy/docker/check-dockerfile.sh [TAG]
# Talks to the engine in DOCKER_HOST (see scripts/dockerd.sh env); needs root for
# debootstrap the first time, and etcd, curl and jq on the host.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

tag=${1:-berth:dockerfile}
standin=${NODE_STANDIN:-berth-test/node-slim-standin:local}
base=${NODE_IMAGE:-$standin}
# The classic builder: the Dockerfile must build without BuildKit. (A docker CLI
# without buildx needs this anyway.)
export DOCKER_BUILDKIT=0

say() { printf '\033[1m[berth dockerfile]\033[0m %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }
# shellcheck source=deploy/docker/lib.sh
source deploy/docker/lib.sh

work=$(mktemp -d)
container=
etcd_pid=
cleanup() {
  if [ -n "$container" ]; then docker rm -f "$container" >/dev/null 2>&1 || true; fi
  if [ -n "$etcd_pid" ]; then
    kill "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
  fi
  # debootstrap mounts proc and sys in its target while it runs; a failed run may
  # leave them, and nothing under them may be deleted.
  awk -v d="$work/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount "$m" || say "could not unmount $m"
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

require_engine
for tool in etcd curl jq; do
  command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install -y ${tool/etcd/etcd-server})"
done

# The official image's entrypoint (docker-library/node, docker-entrypoint.sh):
# runs `node` when the first argument is a flag or no command. The Dockerfile
# sets its own ENTRYPOINT; the stand-in has this one so a missing one shows.
# shellcheck disable=SC2016 # the script's text, expanded when it runs
official_entrypoint='#!/bin/sh
set -e

# Run command with node if the first argument contains a "-" or is not a system command. The last
# part inside the "{}" is a workaround for the following bug in ash/dash:
# https://bugs.debian.org/cgi-bin/bugreport.cgi?bug=874264
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi

exec "$@"
'

build_standin() {
  [ "$(id -u)" = 0 ] || fail "building $standin needs root (debootstrap, chroot); or pass NODE_IMAGE=<a Node 20 image>"
  if ! command -v debootstrap >/dev/null; then
    say "apt-get update && apt-get install -y debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  local root=$work/rootfs node npm_dir version started=$SECONDS
  node=$(readlink -f "$(command -v node)")
  version=$("$node" --version)
  case "$version" in v20.*) ;; *) fail "the host's node is $version; the stand-in for node:20-slim needs Node 20" ;; esac
  npm_dir=$(npm root -g 2>/dev/null)/npm
  [ -f "$npm_dir/bin/npm-cli.js" ] || fail "npm not found at $npm_dir"

  say "debootstrap --variant=minbase bookworm (log: $work/debootstrap.log)"
  if ! debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    fail "debootstrap"
  fi

  # As docker-library/node's bookworm-slim Dockerfile lays Node out.
  install -m 755 "$node" "$root/usr/local/bin/node"
  mkdir -p "$root/usr/local/lib/node_modules"
  cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
  printf '%s' "$official_entrypoint" >"$root/usr/local/bin/docker-entrypoint.sh"
  chmod 755 "$root/usr/local/bin/docker-entrypoint.sh"
  chroot "$root" groupadd --gid 1000 node
  chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  chroot "$root" node --version >/dev/null || fail "node does not run in the stand-in's root"
  # Where egress goes through a proxy that re-signs TLS, the host's Node and npm
  # trust an extra CA bundle (NODE_EXTRA_CA_CERTS, npm's cafile) and so must the
  # base image, or npm ci cannot reach the registry (SELF_SIGNED_CERT_IN_CHAIN).
  # The stand-in gets the host's bundle; node:20-slim has no such thing, nor does
  # the Dockerfile need it on an ordinary network.
  local ca
  ca=${NODE_EXTRA_CA_CERTS:-$(npm config get cafile 2>/dev/null)}
  ca_change=()
  if [ -n "$ca" ] && [ "$ca" != null ] && [ -f "$ca" ]; then
    say "the stand-in trusts the host's extra CA bundle $ca (NODE_EXTRA_CA_CERTS)"
    install -D -m 644 "$ca" "$root/usr/local/etc/standin-extra-ca.pem"
    ca_change=(--change 'ENV NODE_EXTRA_CA_CERTS=/usr/local/etc/standin-extra-ca.pem')
  fi
  # What the slim images leave out; docker provides /dev, resolv.conf and hostname.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
  : >"$root/etc/resolv.conf"

  say "importing $standin"
  tar --numeric-owner --exclude='./dev/*' -c -C "$root" . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=${version#v}" \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["node"]' \
    "${ca_change[@]}" \
    - "$standin" >/dev/null
  say "built $standin in $((SECONDS - started))s"
}

if [ "$base" = "$standin" ] && ! docker image inspect "$standin" >/dev/null 2>&1; then
  build_standin
fi

say "docker build --network host --build-arg NODE_IMAGE=$base -f deploy/docker/Dockerfile -t $tag ."
started=$SECONDS
docker build --network host --build-arg "NODE_IMAGE=$base" -f deploy/docker/Dockerfile -t "$tag" .
say "built $tag in $((SECONDS - started))s"
docker image ls "$tag" >&2

# --- the interface: the same as build-local-image.sh's image
got=$(docker image inspect --format '{{json .Config.User}} {{json .Config.WorkingDir}} {{json .Config.Entrypoint}} {{json .Config.Cmd}}' "$tag")
want='"10001:10001" "/app" ["/usr/local/bin/berth-entrypoint"] ["controller"]'
[ "$got" = "$want" ] || fail "image config is $got, want $want"
docker image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$tag" | grep -qx 'NODE_ENV=production' ||
  fail "NODE_ENV=production is not set"
say "ok: user, workdir, entrypoint, cmd, NODE_ENV"

run() { docker run --rm --network host "$@"; }

uid=$(run "$tag" id -u)
gid=$(run "$tag" id -g)
[ "$uid" != 0 ] || fail "the image runs as root"
[ "$uid:$gid" = 10001:10001 ] || fail "the image runs as $uid:$gid, want 10001:10001"
say "ok: id -u $uid, id -g $gid"

# Contents: every workspace link resolves, nested node_modules came along, no
# build metadata, the entrypoint is executable and the CLI link is in place.
# shellcheck disable=SC2016 # expanded by the container's shell
run "$tag" sh -euc '
  for l in /app/node_modules/@berth/*; do
    [ -L "$l" ] || { echo "$l is not a link"; exit 1; }
    [ -f "$l/package.json" ] || { echo "$l -> $(readlink "$l") does not resolve"; exit 1; }
  done
  for f in apps/agent/dist/main.js apps/cli/dist/main.js apps/controller/dist/main.js \
           libs/core/dist/index.js libs/scheduler/dist/index.js libs/store/dist/index.js; do
    [ -f "/app/$f" ] || { echo "/app/$f is missing"; exit 1; }
  done
  [ -f /app/apps/controller/dist/ui/app.js ] || { echo "the dashboard script is missing"; exit 1; }
  if [ -d /app/apps/controller/node_modules ]; then :; else echo "apps/controller/node_modules is missing"; exit 1; fi
  meta=$(find /app -name "*.tsbuildinfo")
  [ -z "$meta" ] || { echo "build metadata in the image: $meta"; exit 1; }
  [ "$(stat -c %a /usr/local/bin/berth-entrypoint)" = 755 ] || { echo "berth-entrypoint is not mode 755"; exit 1; }
  [ "$(readlink /usr/local/bin/berth)" = berth-entrypoint ] || { echo "/usr/local/bin/berth is not a link to berth-entrypoint"; exit 1; }
  ! touch /app/x 2>/dev/null || { echo "/app is writable by the user"; exit 1; }
  node --input-type=module -e "for (const m of [\"@berth/core\", \"@berth/store\", \"@berth/scheduler\", \"@berth/controller\"]) await import(m)"
' || fail "image contents"
say "ok: /app/node_modules/@berth/* resolve, dist present, no *.tsbuildinfo, entrypoint 755, berth link"

for args in "controller --help" "agent --help" "berth --help"; do
  # shellcheck disable=SC2086 # one word per argument
  out=$(run "$tag" $args) || fail "$args"
  say "ok: $args: $(head -n 1 <<<"$out")"
done
out=$(run --entrypoint berth "$tag" --help) || fail "--entrypoint berth --help"
say "ok: --entrypoint berth --help: $(head -n 1 <<<"$out")"

# --- a controller from the image against a real etcd
read -r etcd_port peer_port api_port < <(node -e '
  const net = require("node:net");
  (async () => {
    const servers = [];
    for (let i = 0; i < 3; i++) {
      const s = net.createServer();
      await new Promise((resolve) => s.listen(0, "127.0.0.1", resolve));
      servers.push(s);
    }
    console.log(servers.map((s) => s.address().port).join(" "));
    for (const s of servers) s.close();
  })();')
etcd_url=http://127.0.0.1:$etcd_port
etcd --name dfcheck --data-dir "$work/etcd" \
  --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "dfcheck=http://127.0.0.1:$peer_port" >"$work/etcd.log" 2>&1 &
etcd_pid=$!

# poll SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds; fails after SECONDS.
poll() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
etcd_healthy() {
  kill -0 "$etcd_pid" 2>/dev/null || { tail -n 20 "$work/etcd.log" >&2; fail "etcd exited"; }
  [ "$(curl -fsS "$etcd_url/health" 2>/dev/null | jq -r .health 2>/dev/null)" = true ]
}
poll 30 etcd_healthy || { tail -n 20 "$work/etcd.log" >&2; fail "etcd did not get healthy"; }
say "ok: etcd answers on $etcd_url"

container=berth-dfcheck-$$
started=$SECONDS
docker run -d --name "$container" --network host "$tag" \
  controller --etcd "$etcd_url" --port "$api_port" --id df1 >/dev/null
api=http://127.0.0.1:$api_port
df1_leads() {
  if [ "$(docker inspect --format '{{.State.Running}}' "$container")" != true ]; then
    docker logs "$container" 2>&1 | tail -n 30 >&2
    fail "the controller container exited"
  fi
  leader=$(curl -fsS "$api/v1/leader" 2>/dev/null) && [ "$(jq -r .leaderId <<<"$leader")" = df1 ]
}
leader=
poll 60 df1_leads || {
  docker logs "$container" 2>&1 | tail -n 30 >&2
  fail "df1 is not the leader after 60s (last answer: ${leader:-none})"
}
say "ok: controller df1 elected itself leader $((SECONDS - started))s after docker run; GET /v1/leader: $leader"
curl -fsS "$api/dashboard/app.js" -o /dev/null || fail "GET /dashboard/app.js"
say "ok: GET /dashboard/app.js"
started=$SECONDS
docker stop -t 10 "$container" >/dev/null
say "ok: docker stop took $((SECONDS - started))s, exit code $(docker inspect --format '{{.State.ExitCode}}' "$container")"

say "all checks passed: $tag"
