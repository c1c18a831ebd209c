#!/usr/bin/env bash
# The Docker engine for dbload's container tests, started by hand (no systemd):
#
#   tests/containers/engine.sh start    # start dockerd unless one answers; wait for it
#   tests/containers/engine.sh status   # exit 0 when an engine answers
#   tests/containers/engine.sh stop     # stop the dockerd this script started
#
# dockerd runs as root with --ip 127.0.0.1, so ports published by containers
# (testcontainers publishes PostgreSQL's) listen on loopback only. It adds
# iptables rules and a docker0 bridge, removed again when it stops. Safe to
# call from several processes at once: start and stop hold a lock.
set -euo pipefail

state=${DBLOAD_ENGINE_STATE:-/run/dbload-engine}
pidfile="$state/dockerd.pid"
log=${DBLOAD_ENGINE_LOG:-/var/log/dbload-dockerd.log}
wait_s=${DBLOAD_ENGINE_WAIT:-60}

answers() { timeout 5 docker info >/dev/null 2>&1; }

our_pid() {  # the pid in our pidfile, when that process is still a dockerd
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ] && echo "$pid"
}

lock() {
  mkdir -p "$state"
  exec 9>"$state/lock"
  flock -w 120 9 || { echo "engine.sh: $state/lock held for 120 s" >&2; exit 1; }
}

start() {
  lock
  if answers; then
    echo "engine: already running ($(docker version -f '{{.Server.Version}}' 2>/dev/null))"
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "engine.sh: no engine answers and starting dockerd needs root" >&2
    exit 1
  fi
  command -v dockerd >/dev/null || { echo "engine.sh: no dockerd: run tests/containers/install-engine.sh" >&2; exit 1; }
  if pid=$(our_pid); then  # ours, but not answering: a hung or half-started engine
    echo "engine: dockerd $pid does not answer; restarting it" >&2
    stop_locked
  fi
  echo "== starting dockerd (log: $log)"
  # setsid: not in the caller's process group, so a Ctrl-C in a test run
  # or the end of a CI step's group does not take the engine with it.
  setsid dockerd --ip 127.0.0.1 --pidfile "$state/dockerd.self.pid" >>"$log" 2>&1 </dev/null 9>&- &
  echo $! >"$pidfile"
  local waited=0
  until answers; do
    if ! our_pid >/dev/null; then
      echo "engine.sh: dockerd exited at start; the end of $log:" >&2
      tail -n 15 "$log" >&2
      exit 1
    fi
    if [ "$waited" -ge "$wait_s" ]; then
      echo "engine.sh: dockerd did not answer within $wait_s s; see $log" >&2
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "engine: started dockerd $(cat "$pidfile") ($(docker version -f '{{.Server.Version}}'))"
}

stop_locked() {
  local pid
  if ! pid=$(our_pid); then
    rm -f "$pidfile"
    echo "engine: no dockerd started by this script is running"
    return 0
  fi
  kill -TERM "$pid"
  # dockerd stops its containers (10 s grace each, in parallel) and containerd.
  for _ in $(seq 60); do
    [ -d "/proc/$pid" ] || break
    sleep 0.5
  done
  if [ -d "/proc/$pid" ]; then
    echo "engine: dockerd $pid ignored SIGTERM for 30 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  echo "engine: stopped dockerd $pid"
}

case "${1:-}" in
  start) start ;;
  stop) lock; stop_locked ;;
  status) if answers; then echo "engine: answering"; else echo "engine: not answering"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
