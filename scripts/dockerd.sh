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
# FINDINGS
set -euo pipefail

dir=${BERTH_DOCKERD_DIR:-/tmp/berth-dockerd}
sock=$dir/docker.sock
pidfile=$dir/dockerd.pid
log=$dir/dockerd.log
start_timeout=60 # seconds; a cold start here takes about 1 s
stop_timeout=20  # seconds before SIGKILL; dockerd gives leftover containers 15 s

# Every docker command in this script talks to the private engine only.
export DOCKER_HOST=unix://$sock

say() { printf '\033[1m[berth dockerd]\033[0m %s\n' "$*" >&2; }

# Bounded, so a wedged engine cannot hang a caller.
answering() { timeout 10 docker info >/dev/null 2>&1; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

dockerd_pid() { cat "$pidfile" 2>/dev/null || true; }

# Processes of this engine: dockerd, the containerd it supervises and the
# containerd shims. Each names a path under $dir on its command line, which sets
# them apart from any other engine on the machine.
engine_pids() {
  local p comm
  for p in /proc/[0-9]*; do
    comm=$(cat "$p/comm" 2>/dev/null) || continue
    case "$comm" in dockerd | containerd | containerd-shim*) ;; *) continue ;; esac
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "$dir/"; then echo "${p#/proc/}"; fi
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
  if ! alive "$pid"; then
    mkdir -p "$dir/data" "$dir/exec"
    # setsid: Ctrl-C in the terminal that ran `npm start` must not reach the
    # engine; `stop` shuts it down in order instead.
    setsid dockerd \
      --host "unix://$sock" \
      --data-root "$dir/data" \
      --exec-root "$dir/exec" \
      --pidfile "$pidfile" \
      --bridge=none --iptables=false --ip-masq=false --ip6tables=false --ip-forward=false \
      ${BERTH_DOCKERD_STORAGE_DRIVER:+--storage-driver "$BERTH_DOCKERD_STORAGE_DRIVER"} \
      </dev/null >>"$log" 2>&1 &
    pid=$!
  fi

  local deadline=$((SECONDS + start_timeout))
  until answering; do
    if ! alive "$pid"; then
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
    # shellcheck disable=SC2086 # one argument per container id
    if [ -n "$ids" ]; then docker rm -f $ids >/dev/null; fi
  fi

  local pid pids deadline
  pid=$(dockerd_pid)
  if alive "$pid"; then kill -TERM "$pid"; fi
  # dockerd stops its containerd and shims on SIGTERM; whatever is left after the
  # timeout (a wedged engine, or one that was SIGKILLed earlier) is killed.
  deadline=$((SECONDS + stop_timeout))
  while pids=$(engine_pids) && [ -n "$pids" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
  if [ -n "$pids" ]; then
    say "killing what is left of the engine: $(echo $pids)"
    # shellcheck disable=SC2086 # one argument per pid
    kill -KILL $pids 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status)
    if answering; then echo "$sock ($(docker info --format '{{.Driver}}'))"; else say "not running ($sock)"; exit 1; fi ;;
  env) echo "export DOCKER_HOST=unix://$sock" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
