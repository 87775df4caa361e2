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
