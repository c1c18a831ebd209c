"""The project's docker-compose.yml, for real: up, a run, down -v.

Through Debian's ``docker-compose`` (v1, the client available here;
tests/containers/install-engine.sh installs it) on the engine of
tests/containers/engine.sh, with the image ``$DBLOAD_PG_IMAGE`` names (the
compose file's own default is the official postgres:17-alpine; here the
local postgres:15-bookworm that tests/containers/build-image.sh builds).
Each test has a compose project and a free port of its own and takes it
down with its volume whatever happens.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from test_wait import free_port

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
IMAGE = os.environ.get("DBLOAD_TEST_IMAGE") or os.environ.get(
    "DBLOAD_PG_IMAGE", "postgres:15-bookworm"
)
# the compose file's own defaults
README_DSN = "postgresql://dbload:dbload@127.0.0.1:{port}/dbload"

pytestmark = [pytest.mark.slow, pytest.mark.container]


@dataclass
class Project:
    """A compose project of the repository's file, on ``port``."""

    name: str
    port: int
    files: tuple[Path, ...] = (COMPOSE_FILE,)

    @property
    def dsn(self) -> str:
        return README_DSN.format(port=self.port)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DBLOAD_PG_IMAGE": IMAGE, "DBLOAD_COMPOSE_PORT": str(self.port)}

    def compose(self, *args: str) -> subprocess.CompletedProcess[str]:
        files = [arg for f in self.files for arg in ("-f", str(f))]
        command = ["docker-compose", "-p", self.name, *files, *args]
        return subprocess.run(
            command, capture_output=True, text=True, env=self.env, timeout=300, check=True
        )

    def container(self) -> str:
        return self.compose("ps", "-q", "postgres").stdout.strip()

    def health(self) -> str:
        found = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Health.Status}}", self.container()],
            capture_output=True,
            text=True,
            check=True,
        )
        return found.stdout.strip()

    def leftovers(self) -> list[str]:
        """Containers and volumes of the project still there."""
        label = f"label=com.docker.compose.project={self.name}"
        found = []
        for kind in (["ps", "-aq"], ["volume", "ls", "-q"]):
            listed = subprocess.run(
                ["docker", *kind, "--filter", label], capture_output=True, text=True, check=True
            )
            found += listed.stdout.split()
        return found


def _missing(why: str) -> None:
    """Skip with the reason; fail in CI's container pass, where it is a broken setup."""
    if os.environ.get("DBLOAD_TEST_REQUIRE_ENGINE", "").strip():
        pytest.fail(f"{why}, and $DBLOAD_TEST_REQUIRE_ENGINE is set")
    pytest.skip(why)


@pytest.fixture
def project(docker_engine: None) -> Iterator[Project]:
    if shutil.which("docker-compose") is None:
        _missing("no docker-compose (tests/containers/install-engine.sh installs it)")
    inspect = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True)
    if inspect.returncode != 0:
        _missing(f"no local image {IMAGE} (tests/containers/build-image.sh builds it)")
    found = Project(f"dbload-test-{secrets.token_hex(4)}", free_port())
    try:
        yield found
    finally:
        subprocess.run(
            ["docker-compose", "-p", found.name, *(a for f in found.files for a in ("-f", str(f))),
             "down", "-v", "--remove-orphans"],
            capture_output=True, env=found.env, timeout=300,
        )  # fmt: skip


def _dbload(*args: str, dsn: str | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DBLOAD_CONNECT_TIMEOUT"}
    if dsn is not None:
        env["DBLOAD_DSN"] = dsn
    command = [sys.executable, "-m", "dbload", *args]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    return done.returncode, done.stdout, done.stderr


def test_up_then_run_at_once_waits_and_shows_the_server_view(project: Project) -> None:
    """The README's lines as written (`up -d`, then `DBLOAD_DSN=… dbload
    run`), the run following at once while the container still runs initdb."""
    project.compose("up", "-d")
    code, out, err = _dbload("run", "-n", "200", "-c", "2", "--json", "-", dsn=project.dsn)
    assert code == 0, err
    # one line at most (none when the container was faster than Python's start)
    waits = [line for line in err.splitlines() if line.startswith("waiting for the server")]
    assert len(waits) <= 1, err
    shown = project.dsn.replace(":dbload@", ":***@")
    assert all(line.startswith(f"waiting for the server at {shown} (") for line in waits)
    result = json.loads(out)
    assert result["transactions"]["ok"] == 200
    major = IMAGE.rsplit(":", 1)[-1].split("-")[0].split(".")[0]
    if major.isdigit():  # postgres:15-bookworm runs PostgreSQL 15
        assert result["database"]["server_version"].split(".")[0] == major
    server = result["server"]
    assert server["statements_skipped"] is None, server["statements_skipped"]
    calls = {s["query"]: s["calls"] for s in server["statements"]}
    assert calls.get("SELECT abalance FROM pgbench_accounts WHERE aid = $1") == 200
    project.compose("down", "-v")
    assert project.leftovers() == []


def test_healthy_means_ready_for_up_wait(project: Project) -> None:
    """`up -d --wait` returns when the healthcheck passes (Compose v2; v1
    has no --wait, so the health is polled as v2 does): by then the real
    server takes connections over TCP, with pg_stat_statements preloaded."""
    project.compose("up", "-d")
    deadline = time.monotonic() + 180
    while (status := project.health()) != "healthy":
        assert status == "starting", status
        assert time.monotonic() < deadline, "never healthy"
        time.sleep(0.2)
    # one attempt, no wait: healthy must mean ready, not the init scripts' server
    with psycopg.connect(project.dsn, connect_timeout=5) as conn:
        row = conn.execute("SHOW shared_preload_libraries").fetchone()
    assert row == ("pg_stat_statements",)
    code, _, err = _dbload("run", "-n", "50", "--connect-timeout", "0", "--dsn", project.dsn)
    assert code == 0, err
    assert "waiting for the server" not in err


def test_compare_servers_waits_for_a_compose_server_not_yet_up(project: Project) -> None:
    project.compose("up", "-d")
    code, out, err = _dbload(
        "compare", "-w", "select", "--modes", "sequential,async", "-c", "2", "-n", "100",
        "--servers", f"dsn:{project.dsn}",
    )  # fmt: skip
    assert code == 0, err
    assert len([line for line in err.splitlines() if line.startswith("waiting")]) <= 1, err
    assert f"dsn:127.0.0.1:{project.port}/dbload" in out


def test_a_compose_server_that_never_comes_up_times_out_clearly(
    project: Project, tmp_path: Path
) -> None:
    """A server that cannot start (a library it cannot load): the container
    exits, its port goes, and dbload gives up after --connect-timeout."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        'services:\n  postgres:\n    command: ["postgres", "-c",'
        ' "shared_preload_libraries=dbload_no_such_library"]\n'
    )
    project.files = (COMPOSE_FILE, broken)
    project.compose("up", "-d")
    code, _, err = _dbload("run", "-n", "10", "--connect-timeout", "3", "--dsn", project.dsn)
    assert code == 3, err
    lines = err.strip().splitlines()
    shown = project.dsn.replace(":dbload@", ":***@")
    assert len(lines) == 2, err
    assert lines[0].startswith(f"waiting for the server at {shown} (")
    assert lines[1].startswith(f"dbload: error: cannot connect to {shown}: ")
    assert lines[1].endswith("; still so after waiting 3 s (--connect-timeout)")
