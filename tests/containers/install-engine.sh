#!/usr/bin/env bash
# Install what the container path needs, when missing: Debian's Docker engine
# (docker.io: dockerd + containerd + runc), debootstrap (to build the
# PostgreSQL image without a registry) and docker-compose (v1, the client
# tests/test_compose.py drives). Needs root and apt; safe to re-run.
set -euo pipefail

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v docker-compose >/dev/null || missing+=(docker-compose)  # docker-compose.yml's tests
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-engine: need ${missing[*]}: run as root on a Debian-like system, or install them yourself" >&2
  exit 1
fi
# Two callers at once (two CI jobs, two helpers) must not fight over dpkg's lock.
exec 9>/var/lock/dbload-install-engine.lock
flock 9
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v docker-compose >/dev/null || missing+=(docker-compose)  # docker-compose.yml's tests
[ ${#missing[@]} -eq 0 ] && exit 0
echo "== installing ${missing[*]}"
apt-get update -qq
# No recommends: no docker-compose, no apparmor tools; we start dockerd ourselves.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
