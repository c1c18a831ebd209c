#!/usr/bin/env bash
# Build dbload's PostgreSQL image from Debian's packages, without a registry:
#
#   tests/containers/build-image.sh           # build unless the image exists
#   tests/containers/build-image.sh --force   # rebuild
#
# debootstrap --variant=minbase bookworm, Debian's postgresql-15 in the chroot,
# our docker-entrypoint.sh (the official image's POSTGRES_* and
# /docker-entrypoint-initdb.d contract), then `docker import` with the
# official image's ENTRYPOINT, CMD, ENV and VOLUME. Named postgres:15-bookworm
# ($DBLOAD_PG_IMAGE overrides), the official tag with the same PostgreSQL and
# contract, so a test written against the official image runs unchanged.
# Needs root, a running engine (engine.sh start) and a Debian mirror.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

image=${DBLOAD_PG_IMAGE:-postgres:15-bookworm}
suite=${DBLOAD_IMAGE_SUITE:-bookworm}
major=${DBLOAD_IMAGE_PG_MAJOR:-15}
mirror=${DBLOAD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# debootstrap's downloads are kept: a rebuild on the same machine fetches nothing.
cache=${DBLOAD_DEBOOTSTRAP_CACHE:-/var/cache/dbload-debootstrap}
force=${1:-}

have() { docker image inspect "$image" >/dev/null 2>&1; }

if [ "$force" != --force ] && have; then
  echo "image: $image kept ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}'))"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "build-image.sh: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "build-image.sh: no debootstrap: run tests/containers/install-engine.sh" >&2; exit 1; }

# One build at a time; the second caller finds the image the first built.
mkdir -p /run/dbload-engine
exec 9>/run/dbload-engine/build.lock
flock -w 600 9 || { echo "build-image.sh: another build held the lock for 600 s" >&2; exit 1; }
if [ "$force" != --force ] && have; then
  echo "image: $image built meanwhile by another caller"
  exit 0
fi

root=$(mktemp -d /var/tmp/dbload-rootfs.XXXXXX)
cleanup() {
  umount -l "$root/var/cache/apt/archives" 2>/dev/null || true
  umount -l "$root/proc" 2>/dev/null || true
  # never through a mount still there: that would empty the cache or /proc
  mountpoint -q "$root/var/cache/apt/archives" || mountpoint -q "$root/proc" || rm -rf "$root"
}
trap cleanup EXIT
mkdir -p "$cache"

echo "== debootstrap $suite (minbase) into $root"
t0=$(date +%s)
debootstrap --variant=minbase --cache-dir="$cache" "$suite" "$root" "$mirror" >"$root.log" 2>&1 \
  || { tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
t1=$(date +%s)

echo "== postgresql-$major in the chroot"
# No cluster from the package (the entrypoint makes one in $PGDATA) and no
# service started inside the chroot.
mkdir -p "$root/etc/postgresql-common/createcluster.d"
echo 'create_main_cluster = false' >"$root/etc/postgresql-common/createcluster.d/dbload.conf"
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
# The chroot's downloads go to the same cache, outside the image.
mkdir -p "$cache/partial"
mount --bind "$cache" "$root/var/cache/apt/archives"
chroot "$root" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 sh -c "
  apt-get update -qq &&
  apt-get install -y -qq --no-install-recommends postgresql-$major >/dev/null" \
  >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
umount "$root/var/cache/apt/archives" "$root/proc"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/locale/* "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
install -m 0755 "$here/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
mkdir -p "$root/docker-entrypoint-initdb.d" "$root/var/lib/postgresql/data"
chroot "$root" chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
t2=$(date +%s)

echo "== docker import $image"
old_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
tar -C "$root" --numeric-owner -c . | docker import \
  --change "ENV PATH=/usr/lib/postgresql/$major/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change 'ENV PGDATA=/var/lib/postgresql/data' \
  --change 'ENV LANG=C.UTF-8' \
  --change "ENV PG_MAJOR=$major" \
  --change 'VOLUME /var/lib/postgresql/data' \
  --change 'EXPOSE 5432' \
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  --change 'CMD ["postgres"]' \
  --message "dbload: Debian $suite + postgresql-$major (tests/containers/build-image.sh)" \
  - "$image" >/dev/null
t3=$(date +%s)
# The image it replaces, unless a container still uses it.
[ -n "$old_id" ] && docker rmi "$old_id" >/dev/null 2>&1 || true
echo "image: $image built in $((t3 - t0)) s (debootstrap $((t1 - t0)) s, postgresql $((t2 - t1)) s, import $((t3 - t2)) s), $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}')"
