#!/usr/bin/env bash
# The entrypoint of dbload's locally built PostgreSQL image: the official
# postgres image's contract, for the parts testcontainers, docker compose and
# dbload use. On the first start with an empty $PGDATA: initdb as
# $POSTGRES_USER (default postgres) with $POSTGRES_PASSWORD and
# $POSTGRES_INITDB_ARGS, create $POSTGRES_DB, run /docker-entrypoint-initdb.d/*
# (*.sh sourced or run, *.sql and *.sql.gz through psql) on a server that
# listens on its socket only; then exec the real server. All as user postgres.
set -Eeo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

init_database() {
  : "${POSTGRES_USER:=postgres}"
  : "${POSTGRES_DB:=$POSTGRES_USER}"
  local auth=${POSTGRES_HOST_AUTH_METHOD:-}
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "error: the database is uninitialized and POSTGRES_PASSWORD is not set" >&2
    echo "       (set it, or POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without one)" >&2
    exit 1
  fi
  [ -n "$auth" ] || auth=scram-sha-256
  local pwfile
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of words, as in the official image
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" $POSTGRES_INITDB_ARGS
  rm -f "$pwfile"
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  # A server on the socket only: nothing outside sees it ready before the
  # init scripts ran (testcontainers waits on psql over 127.0.0.1).
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p 5432" start
  local psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  if [ "$POSTGRES_DB" != postgres ]; then
    "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  export PGUSER=$POSTGRES_USER PGDATABASE=$POSTGRES_DB PGPASSWORD=${POSTGRES_PASSWORD:-}
  local f
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then echo "$0: running $f"; "$f"
        else echo "$0: sourcing $f"; . "$f"; fi ;;
      *.sql) echo "$0: running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) echo "$0: running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
      *) if [ -e "$f" ]; then echo "$0: ignoring $f"; fi ;;
    esac
  done
  unset PGPASSWORD
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo
  echo "PostgreSQL init process complete; ready for start up."
  echo
}

# `docker run IMAGE -c shared_buffers=1GB` means postgres with those options.
if [ "${1:0:1}" = - ]; then
  set -- postgres "$@"
fi

if [ "$1" = postgres ]; then
  if [ "$(id -u)" = 0 ]; then
    # As the official image does: own the directories, then start over as
    # postgres, so initdb, the init scripts and the server all run as postgres.
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$0" "$@"
  fi
  if [ ! -s "$PGDATA/PG_VERSION" ]; then
    init_database
  else
    echo "PostgreSQL Database directory appears to contain a database; Skipping initialization"
  fi
  exec "$@"
fi

exec "$@"
