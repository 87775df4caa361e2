#!/usr/bin/env bash
# Builds Berth's image locally, with no base image: there is no registry to pull
# one from. The image is one layer holding
#   /usr/bin/node             the host's node binary, and the shared libraries and
#                             dynamic loader it links (copied from ldd's list)
#   /bin/busybox, /bin/<applet>  Debian's static busybox: a shell for debugging and
#                             small tools (sh, sleep, nc, httpd, ...) for test pods
#   /usr/local/bin/berth-entrypoint  deploy/docker/entrypoint.sh: the first argument
#                             picks the program (controller, agent, berth); also
#                             linked as /usr/local/bin/berth, the CLI
#   /etc/passwd, /etc/group   a non-root user `berth` (10001); glibc's defaults
#                             need no nsswitch.conf to read /etc/hosts, which
#                             docker mounts in, as do resolv.conf and hostname
#   /app                      the built workspaces (apps/*/dist, libs/*/dist, their
#                             package.json) and production node_modules
# Workdir /app, user berth, default command `controller`; the same interface as
# the image deploy/docker/Dockerfile builds, so compose.ha.yml runs either:
#   docker run --rm --network host berth:local controller --help
#   docker run --rm --network host berth:local agent --help
#
# Usage: deploy/docker/build-local-image.sh [TAG]   (default $BERTH_IMAGE, else berth:local)
# Talks to the engine in DOCKER_HOST (see scripts/dockerd.sh env). Skips the build
# when TAG exists with the label berth.build-hash equal to the hash of the inputs
# (node, busybox, manifests, dist files, this script), so calling it before every
# test run costs well under a second. Times here: 0.3 s up to date, 4 s after a
# dist change, 14 s when the manifests changed (npm ci; its output is kept in
# .berth/image-deps). The image is about 150 MB, two thirds of it the node binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

tag=${1:-${BERTH_IMAGE:-berth:local}}
script=deploy/docker/build-local-image.sh

say() { printf '\033[1m[berth image]\033[0m %s\n' "$*" >&2; }
# shellcheck source=deploy/docker/lib.sh
source deploy/docker/lib.sh

if [ ! -d apps/controller/dist ]; then
  say "apps/controller/dist does not exist: build Berth first with: npx tsc -b"
  exit 1
fi
require_engine
require_busybox_static

node=$(readlink -f "$(command -v node)")
busybox=/bin/busybox
# The app files that go into the image, and therefore into the hash.
mapfile -t manifests < <(ls package.json package-lock.json apps/*/package.json libs/*/package.json)
mapfile -t dist_files < <(find apps/*/dist libs/*/dist -type f ! -name '*.tsbuildinfo' 2>/dev/null | LC_ALL=C sort)

hash=$(sha256sum "$script" deploy/docker/lib.sh deploy/docker/entrypoint.sh "$node" "$busybox" "${manifests[@]}" "${dist_files[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(docker image inspect --format '{{index .Config.Labels "berth.build-hash"}}' "$tag" 2>/dev/null)" = "$hash" ]; then
  say "$tag is up to date"
  echo "$tag"
  exit 0
fi

started=$SECONDS
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
root=$staging/rootfs
mkdir -p "$root/usr/bin" "$root/usr/local/bin" "$root/app"
# busybox, /tmp, and the unprivileged user berth (10001); glibc's defaults need
# no nsswitch.conf to read /etc/hosts, which docker mounts in.
stage_busybox_rootfs "$root" berth 10001

# node and everything the loader maps for it.
cp "$node" "$root/usr/bin/node"
copy_libs "$root" "$node"

install -m 755 deploy/docker/entrypoint.sh "$root/usr/local/bin/berth-entrypoint"
ln -s berth-entrypoint "$root/usr/local/bin/berth"

cp --parents "${manifests[@]}" "${dist_files[@]}" "$root/app/"

# Production dependencies from the lockfile, as a Dockerfile would install them;
# --prefer-offline takes them from the npm cache that `npm ci` filled. npm ci
# writes thousands of small files (about 8 s here) and most rebuilds change only
# dist, so the result is kept in .berth/ (git-ignored), keyed by the manifests.
deps_dir=$PWD/.berth/image-deps
deps=$deps_dir/$(sha256sum "${manifests[@]}" | sha256sum | cut -c1-16)
if [ ! -d "$deps" ]; then
  say "npm ci --omit=dev"
  rm -rf "$deps_dir"
  mkdir -p "$deps_dir/tmp"
  cp --parents "${manifests[@]}" "$deps_dir/tmp/"
  (cd "$deps_dir/tmp" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
  mv "$deps_dir/tmp" "$deps"
fi

old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
say "importing $tag"
# node_modules joins the rootfs as /app/node_modules, where its workspace links
# (node_modules/@berth/* -> ../../apps|libs/*) point at the copied workspaces;
# so do the workspaces' own node_modules, where npm puts a version that differs
# from the hoisted one (e.g. apps/controller/node_modules/@fastify/static).
mapfile -t nested < <(cd "$deps" && find ./apps ./libs -mindepth 2 -maxdepth 2 -name node_modules -type d 2>/dev/null | LC_ALL=C sort)
tar --numeric-owner --owner=0 --group=0 --transform 's,^\./\(node_modules\|apps\|libs\)\(/\|$\),./app/\1\2,' \
  -c -C "$root" . -C "$deps" ./node_modules "${nested[@]}" | docker import \
  --change 'ENTRYPOINT ["/usr/local/bin/berth-entrypoint"]' \
  --change 'CMD ["controller"]' \
  --change 'WORKDIR /app' \
  --change 'USER 10001:10001' \
  --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin NODE_ENV=production' \
  --change "LABEL berth.build-hash=$hash" \
  - "$tag" >/dev/null
# The image this one replaced is now untagged; drop it unless a container uses it.
if [ -n "$old_id" ]; then docker rmi "$old_id" >/dev/null 2>&1 || true; fi

size=$(docker image inspect --format '{{.Size}}' "$tag")
say "built $tag ($((size / 1024 / 1024)) MiB) in $((SECONDS - started))s"
echo "$tag"
