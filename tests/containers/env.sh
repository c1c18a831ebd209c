# Source this (`. tests/containers/env.sh`) to run dbload or the container
# tests against the engine and image these scripts set up, on a machine
# without a registry (CI's .ci/run does the same).
#
# DBLOAD_PG_IMAGE: the image build-image.sh makes (dbload's default,
#   postgres:17-alpine, would need a pull).
# TESTCONTAINERS_RYUK_DISABLED: the reaper image cannot be pulled; dbload
#   removes its containers itself, and `dbload db prune` those of a process
#   killed outright.
# TESTCONTAINERS_CONNECTION_MODE: /.dockerenv exists on some VMs, and
#   testcontainers then connects to the bridge gateway, where --ip 127.0.0.1
#   published nothing; the docker host is right for a local engine.
#   (dbload itself falls back to 127.0.0.1 when the guess refuses; suites
#   using testcontainers directly need this.)
export DBLOAD_PG_IMAGE="${DBLOAD_PG_IMAGE:-postgres:15-bookworm}"
export TESTCONTAINERS_RYUK_DISABLED="${TESTCONTAINERS_RYUK_DISABLED:-true}"
export TESTCONTAINERS_CONNECTION_MODE="${TESTCONTAINERS_CONNECTION_MODE:-docker_host}"
