#!/usr/bin/env bash
# Builds the small images Berth's Docker-runtime tests run as pods, with no base
# image and no registry (nothing can be pulled):
#   berth-test/busybox:local   Debian's static busybox as /bin/busybox, with a
#                              symlink per applet (sh, sleep, echo, httpd, nc, cat,
#                              wget, ...); default command `sh`.
#
# Usage: deploy/docker/build-test-images.sh   (talks to the engine in DOCKER_HOST,
# see scripts/dockerd.sh env). Skipped when the image already exists, so calling
# it before every test run costs a fraction of a second.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

tag=berth-test/busybox:local

say() { printf '\033[1m[berth test images]\033[0m %s\n' "$*" >&2; }
# shellcheck source=deploy/docker/lib.sh
source deploy/docker/lib.sh

require_engine
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
require_busybox_static

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
root=$staging/rootfs
mkdir -p "$root/www"
stage_busybox_rootfs "$root"

say "importing $tag"
tar --numeric-owner --owner=0 --group=0 -c -C "$root" . | docker import \
  --change 'CMD ["sh"]' \
  --change 'ENV PATH=/bin' \
  - "$tag" >/dev/null
echo "$tag"
