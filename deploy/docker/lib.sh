# shellcheck shell=bash
# Shared by the image build scripts (sourced; they define `say` first).

# Exits unless a Docker engine answers at DOCKER_HOST, saying how to start the private one.
require_engine() {
  if ! timeout 10 docker info >/dev/null 2>&1; then
    say "no Docker engine answers at ${DOCKER_HOST:-the default socket}; start the private one with:"
    # shellcheck disable=SC2016 # a command for the user to run, not to expand
    say '  bash scripts/dockerd.sh start && eval "$(bash scripts/dockerd.sh env)"'
    exit 1
  fi
}

# Installs Debian's busybox-static when missing (root), else says how. The static
# build matters: the dynamic `busybox` package would need its libraries copied too.
require_busybox_static() {
  if [ "$(dpkg-query -W -f '${Status}' busybox-static 2>/dev/null)" != "install ok installed" ]; then
    if [ "$(id -u)" != 0 ]; then
      say "busybox-static is missing: install it with: sudo apt-get update && sudo apt-get install -y busybox-static"
      exit 1
    fi
    say "apt-get update && apt-get install -y busybox-static"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
  fi
}

# Copies the shared libraries and the loader BINARY... link (ldd's list) into
# ROOT, each at the path ldd names, where the loader's built-in search path
# (/lib/x86_64-linux-gnu, ...) finds them.   Usage: copy_libs ROOT BINARY...
copy_libs() {
  local root=$1 lib
  shift
  for lib in $(for bin in "$@"; do ldd "$bin" || true; done | grep -oE '/[^ ]+' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# A minimal userland in ROOT: /tmp (1777), Debian's static busybox as
# /bin/busybox with a link per applet (sh, sleep, httpd, nc, ...), and
# /etc/passwd and /etc/group with root, nobody and, given NAME and ID, an
# unprivileged user NAME with uid and gid ID and home /tmp.
# Usage: stage_busybox_rootfs ROOT [NAME ID]
stage_busybox_rootfs() {
  local root=$1 name=${2:-} id=${3:-} applet
  mkdir -p "$root/bin" "$root/etc"
  install -d -m 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  {
    echo 'root:x:0:0:root:/root:/bin/sh'
    if [ -n "$name" ]; then echo "$name:x:$id:$id:$name:/tmp:/bin/sh"; fi
    echo 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false'
  } >"$root/etc/passwd"
  {
    echo 'root:x:0:'
    if [ -n "$name" ]; then echo "$name:x:$id:"; fi
    echo 'nogroup:x:65534:'
  } >"$root/etc/group"
}
