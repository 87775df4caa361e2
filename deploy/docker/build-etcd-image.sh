#!/usr/bin/env bash
# Builds an etcd image locally, with no base image and no registry: Debian's
# etcd-server and etcd-client binaries (etcd 3.4 on bookworm) and the C library
# they link, nothing else. compose.ha.yml runs it when ETCD_IMAGE names it; on a
# machine with a registry the default is the upstream image
# (quay.io/coreos/etcd), which has the same interface: `etcd` and `etcdctl` on
# PATH, configured through ETCD_* / ETCDCTL_* environment variables.
#
#   /usr/local/bin/etcd, /usr/local/bin/etcdctl
#   /lib/x86_64-linux-gnu/libc.so.6, /lib64/ld-linux-x86-64.so.2 (ldd's list)
#   /tmp, /etcd-data (the data dir compose.ha.yml mounts a named volume on)
#
# Usage: deploy/docker/build-etcd-image.sh [TAG]   (default $ETCD_IMAGE, else berth/etcd:local)
# Talks to the engine in DOCKER_HOST; skipped (well under a second) when TAG
# exists with the label berth.build-hash equal to the hash of its inputs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

tag=${1:-${ETCD_IMAGE:-berth/etcd:local}}
script=deploy/docker/build-etcd-image.sh

say() { printf '\033[1m[berth etcd image]\033[0m %s\n' "$*" >&2; }
# shellcheck source=deploy/docker/lib.sh
source deploy/docker/lib.sh

require_engine
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
  say "etcd is missing: install it with: sudo apt-get update && sudo apt-get install -y etcd-server etcd-client"
  exit 1
fi
etcd=$(readlink -f "$(command -v etcd)")
etcdctl=$(readlink -f "$(command -v etcdctl)")

hash=$(sha256sum "$script" deploy/docker/lib.sh "$etcd" "$etcdctl" | sha256sum | cut -d' ' -f1)
if [ "$(docker image inspect --format '{{index .Config.Labels "berth.build-hash"}}' "$tag" 2>/dev/null)" = "$hash" ]; then
  say "$tag is up to date"
  echo "$tag"
  exit 0
fi

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
root=$staging/rootfs
mkdir -p "$root/usr/local/bin" "$root/etcd-data"
install -d -m 1777 "$root/tmp"
cp "$etcd" "$root/usr/local/bin/etcd"
cp "$etcdctl" "$root/usr/local/bin/etcdctl"
# Go binaries built with cgo: the C library and the loader they link.
copy_libs "$root" "$etcd" "$etcdctl"

old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
say "importing $tag ($("$etcd" --version | head -n 1))"
tar --numeric-owner --owner=0 --group=0 -c -C "$root" . | docker import \
  --change 'CMD ["etcd"]' \
  --change 'ENV PATH=/usr/local/bin ETCDCTL_API=3 ETCD_DATA_DIR=/etcd-data' \
  --change 'WORKDIR /' \
  --change "LABEL berth.build-hash=$hash" \
  - "$tag" >/dev/null
if [ -n "$old_id" ]; then docker rmi "$old_id" >/dev/null 2>&1 || true; fi
echo "$tag"
