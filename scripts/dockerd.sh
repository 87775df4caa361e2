#!/usr/bin/env bash
# A private Docker engine for Berth's tests and `npm start`.
#
#   scripts/dockerd.sh start    install docker.io if missing (root only), start the
#                               engine, wait until it answers, print its socket
#   scripts/dockerd.sh stop     remove Berth's containers, stop the engine and
#                               every process it started
#   scripts/dockerd.sh status   print the socket and storage driver and exit 0 if
#                               the engine answers, else exit 1
#   scripts/dockerd.sh env      print `export DOCKER_HOST=unix://...` for eval
#
# Everything lives under $BERTH_DOCKERD_DIR (default /tmp/berth-dockerd): socket,
# data root, exec root, pidfile, log. A system dockerd, if any, is never used or
# touched. The data root survives `stop` so the image cache (and therefore the
# skip-if-unchanged check of deploy/docker/build-local-image.sh) survives too.
#
# Networking: Berth pods use host networking only (SPEC.md section 6), so the
# engine gets no bridge, writes no iptables rules and leaves the host's
# ip_forward sysctl alone.
#
# Found on the machine this was written on (Debian 12: docker.io 20.10.24,
# containerd 1.6.20, runc 1.1.5; a VM with kernel 6.x, cgroup v1 with the
# cgroupfs driver, /tmp on ext4):
#  * dockerd 20.10 accepts all five network flags below (--ip6tables=false needs
#    no --experimental) and then has only the `host` and `none` networks.
#  * Storage: dockerd's own choice is overlay2, and it works; where overlay is
#    unavailable (e.g. /tmp itself on overlayfs) dockerd falls back by itself.
#    BERTH_DOCKERD_STORAGE_DRIVER forces a driver: vfs works too but copies the
#    whole image for every container (15 s per `docker run` of Berth's image here).
#  * --cpus and --memory are accepted and enforced (a busy loop at --cpus 0.5 is
#    throttled to 50%; allocating past --memory 64m is OOM-killed); only blkio
#    weights are unsupported (a warning in the log). pause/unpause work (freezer).
#  * dockerd runs its own containerd under exec/ unless a system containerd
#    listens on /run/containerd/containerd.sock, which it would then share.
set -euo pipefail

dir=${BERTH_DOCKERD_DIR:-/tmp/berth-dockerd}
sock=$dir/docker.sock
pidfile=$dir/dockerd.pid
log=$dir/dockerd.log
start_timeout=60 # seconds; a start takes under a second here
stop_timeout=20  # seconds before SIGKILL; dockerd gives leftover containers 15 s

# Every docker command in this script talks to the private engine only.
export DOCKER_HOST=unix://$sock

say() { printf '\033[1m[berth dockerd]\033[0m %s\n' "$*" >&2; }

# Bounded, so a wedged engine cannot hang a caller.
answering() { timeout 10 docker info >/dev/null 2>&1; }

# Exists and is not a zombie: an exited engine is re-parented to PID 1, which
# may take a moment to reap it, and kill -0 succeeds on a zombie.
running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# The pid of our dockerd, if it runs (a pid in a stale pidfile may have been reused).
dockerd_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  if running "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then echo "$pid"; fi
}

# Processes of this engine: dockerd, the containerd it supervises and the
# containerd shims. Each names a path under $dir on its command line, which sets
# them apart from any other engine on the machine.
engine_pids() {
  local p comm cmdline
  for p in /proc/[0-9]*; do
    comm=$(cat "$p/comm" 2>/dev/null) || continue
    case "$comm" in dockerd | containerd | containerd-shim*) ;; *) continue ;; esac
    cmdline=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) || continue
    if [[ $cmdline == *"$dir/"* ]]; then echo "${p#/proc/}"; fi
  done
}

# One start or stop at a time: test files running in parallel may all call start.
lock() {
  mkdir -p "$dir"
  exec 9>"$dir/lock"
  flock 9
}

install_engine() {
  if [ "$(id -u)" != 0 ]; then
    say "dockerd is missing: install it with: sudo apt-get update && sudo apt-get install -y --no-install-recommends docker.io"
    exit 1
  fi
  # The package's postinst would start a system dockerd, which creates the docker0
  # bridge and iptables rules; policy-rc.d exit 101 forbids starting services.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  say "apt-get update && apt-get install -y --no-install-recommends docker.io"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
}

start() {
  lock
  if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then install_engine; fi
  if answering; then echo "$sock"; return; fi

  local pid
  pid=$(dockerd_pid)
  if [ -z "$pid" ]; then
    mkdir -p "$dir/data" "$dir/exec"
    # setsid: Ctrl-C in the terminal that ran `npm start` must not reach the
    # engine; `stop` shuts it down in order instead. 9>&-: the engine must not
    # inherit the lock, or it would hold it for its whole life.
    setsid dockerd \
      --host "unix://$sock" \
      --data-root "$dir/data" \
      --exec-root "$dir/exec" \
      --pidfile "$pidfile" \
      --bridge=none --iptables=false --ip-masq=false --ip6tables=false --ip-forward=false \
      ${BERTH_DOCKERD_STORAGE_DRIVER:+--storage-driver "$BERTH_DOCKERD_STORAGE_DRIVER"} \
      </dev/null >>"$log" 2>&1 9>&- &
    pid=$!
  fi

  local deadline=$((SECONDS + start_timeout))
  until answering; do
    if ! running "$pid"; then
      say "dockerd exited; the end of $log:"; tail -n 20 "$log" >&2; exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "dockerd did not answer on $sock within ${start_timeout}s; see $log"; exit 1
    fi
    sleep 0.2
  done
  say "dockerd $(docker version --format '{{.Server.Version}}') on $sock, storage driver $(docker info --format '{{.Driver}}'), log $log"
  echo "$sock"
}

stop() {
  lock
  if answering; then
    local ids
    ids=$( { docker ps -aq --filter label=berth.node; docker ps -aq --filter label=berth.pod; } | sort -u)
    # Bounded and not fatal: the engine must be stopped whatever happens here.
    # shellcheck disable=SC2086 # one argument per container id
    if [ -n "$ids" ]; then
      timeout "$stop_timeout" docker rm -f $ids >/dev/null || say "could not remove every Berth container"
    fi
  fi

  local pid pids=() deadline
  pid=$(dockerd_pid)
  if [ -n "$pid" ]; then
    kill -TERM "$pid"
    deadline=$((SECONDS + stop_timeout))
    while running "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  fi
  # A dockerd that exits normally has stopped its containerd, and the shims with
  # it. Whatever is left (the engine was wedged, or was SIGKILLed earlier) is
  # killed, with the containers' init processes, which outlive their shims; a
  # container's init takes every process of its pid namespace with it.
  mapfile -t pids < <(engine_pids)
  if [ "${#pids[@]}" -gt 0 ]; then
    mapfile -t -O "${#pids[@]}" pids < <(ps -o pid= --ppid "$(IFS=,; echo "${pids[*]}")" | tr -d ' ')
    say "killing what is left of the engine: ${pids[*]}"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    deadline=$((SECONDS + 5))
    for pid in "${pids[@]}"; do
      while running "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    done
  fi
  rm -f "$pidfile"
  # dockerd leaves the host network namespace bind-mounted at exec/netns/default,
  # and a killed engine leaves its containers' mounts; unmounted, $dir can be deleted.
  awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount "$m" || say "could not unmount $m"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if answering; then echo "$sock ($(docker info --format '{{.Driver}}'))"; else say "not running ($sock)"; exit 1; fi ;;
  env) echo "export DOCKER_HOST=unix://$sock" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
