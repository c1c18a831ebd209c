#!/usr/bin/env bash
# The container tests, from nothing: install the engine when missing, start
# it, build the PostgreSQL image unless it is there, run `pytest -m container`
# (extra arguments go to pytest) and stop the engine again, whatever
# happened, when this script was the one that started it. .ci/run calls this;
# a contributor can too (as root, on a Debian-like machine).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."

t0=$(date +%s)
"$here/install-engine.sh"
if ! "$here/engine.sh" status >/dev/null; then
  trap '"$here/engine.sh" stop' EXIT
fi
"$here/engine.sh" start
"$here/build-image.sh"
t1=$(date +%s)
echo "== engine and image ready in $((t1 - t0)) s"

# shellcheck source=tests/containers/env.sh
source "$here/env.sh"
# No engine here is a broken setup, not a reason to skip; and the suite's
# own server (tests/conftest.py) is a container too.
env -u DBLOAD_DSN -u DATABASE_URL -u DBLOAD_TEST_DSN -u DBLOAD_TEST_SERVER \
  DBLOAD_TEST_REQUIRE_ENGINE=1 pytest -m container "$@"
