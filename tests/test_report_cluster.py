"""How a --cluster run reads: the per-worker table in the terminal report,
the ``cluster`` section of the JSON (and back through ``dbload report``),
the HTML page; then one real run on a LocalCluster through the CLI.

Rendering is a pure function of a Result: the records are built here, on a
real run's Result, so every figure (and a lost worker) is known exactly.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from dbload.errors import UsageError
from dbload.measure.comparison import Comparison
from dbload.measure.result import ClusterInfo, ClusterWorker, Result
from dbload.report.compare_console import print_report
from dbload.report.console import CLUSTER_HEADS, print_run, render
from dbload.report.html import render_html
from dbload.report.json_ import to_dict, write_json
from dbload.report.load import load_result, load_saved

SCHEDULER = "tcp://10.0.0.1:8786"
WORKERS = (
    ClusterWorker(
        address="tcp://10.0.0.2:40825",
        host="10.0.0.2",
        clients="clients 0-3",
        ok=26_864,
        failed=3,
        tps=5321.152,
        p99_ms=5.971,
        client_cpu_s=1.79,
        clock_offset_ms=0.0012,
    ),
    ClusterWorker(
        address="tcp://10.0.0.3:41345",
        host="loadgen-<b>",  # user-controlled text in the page: must be escaped
        clients="clients 4-7",
        ok=39_136,
        failed=0,
        tps=7751.958,
        p99_ms=None,
        client_cpu_s=None,
        clock_offset_ms=-12.5,
        lost=True,
    ),
)


@pytest.fixture(scope="module")
def plain(small_comparison: Comparison) -> Result:
    """A real async run, on this machine (no cluster)."""
    result = small_comparison.results[2]
    assert result.mode == "async" and result.cluster is None
    return result


@pytest.fixture(scope="module")
def clustered(plain: Result) -> Result:
    """The same run as if two Dask workers had run it, one of them lost;
    a 5 s window, so CPU % is 100 * s / 5."""
    cluster = ClusterInfo(scheduler=SCHEDULER, workers=WORKERS)
    return dataclasses.replace(plain, cluster=cluster, duration_s=5.0)


def _text(result: Result, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None)
    print_run(console, result)
    return console.export_text()


def _row(text: str, address: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(address))
    return line.split()


# -- the terminal -------------------------------------------------------------


def test_the_console_has_a_row_per_worker_under_the_scheduler(clustered: Result) -> None:
    text = _text(clustered)
    assert f"per Dask worker (scheduler {SCHEDULER})" in text
    heads = next(line for line in text.splitlines() if line.startswith("worker "))
    assert heads.split() == " ".join(CLUSTER_HEADS[:-1]).split()
    first = _row(text, WORKERS[0].address)
    # address, host, ids, ok, failed, tps, p99, CPU s, CPU % of one core over 5 s, offset
    assert first == [
        "tcp://10.0.0.2:40825",
        "10.0.0.2",
        "0-3",
        "26,864",
        "3",
        "5,321.2",
        "5.971",
        "1.79",
        "36",
        "%",
        "+0.001",
    ]
    lost = _row(text, WORKERS[1].address)
    assert lost[:2] == ["tcp://10.0.0.3:41345", "LOST"]
    assert lost[2:] == [
        "loadgen-<b>",
        "4-7",
        "39,136",
        "0",
        "7,752.0",
        "n/a",
        "n/a",
        "n/a",
        "-12.500",
    ]
    assert text.count("LOST") == 1


def test_the_table_sits_after_the_summary_and_before_the_statements(clustered: Result) -> None:
    text = _text(clustered)
    assert text.index("cpu ") < text.index("per Dask worker") < text.index("per statement")
    assert text.rstrip().splitlines()[-1].startswith("mode=async c=2 ")  # the summary line last


def test_a_run_on_this_machine_has_no_cluster_table(plain: Result, clustered: Result) -> None:
    text = _text(plain)
    assert "Dask" not in text and "scheduler" not in text
    # the rest of the report is the same with and without the table
    without = dataclasses.replace(clustered, cluster=None)
    assert _text(without) == _text(dataclasses.replace(plain, duration_s=5.0))


def test_the_table_keeps_every_figure_at_80_columns(clustered: Result) -> None:
    console = Console(width=80, record=True, color_system=None)
    console.print(render(clustered))
    text = console.export_text()
    table = text[text.index("per Dask worker") : text.index("per statement")]
    assert "…" not in table and max(len(line) for line in table.splitlines()) <= 80
    for figure in ("26,864", "5,321.2", "5.971", "1.79", "36 %", "+0.001", "-12.500", "LOST"):
        assert figure in table, figure


# -- JSON, and back -----------------------------------------------------------


def test_json_has_the_cluster_section(clustered: Result) -> None:
    data = json.loads(json.dumps(to_dict(clustered)))
    assert data["cluster"]["scheduler"] == SCHEDULER
    first, second = data["cluster"]["workers"]
    assert list(first) == [
        "address",
        "host",
        "clients",
        "ok",
        "failed",
        "tps",
        "p99_ms",
        "client_cpu_s",
        "clock_offset_ms",
        "lost",
    ]
    assert first["clients"] == "clients 0-3" and first["ok"] == 26_864 and first["lost"] is False
    assert first["tps"] == 5321.152 and first["clock_offset_ms"] == 0.0012
    assert second["p99_ms"] is None and second["client_cpu_s"] is None and second["lost"] is True


def test_a_run_on_this_machine_has_a_null_cluster(plain: Result) -> None:
    assert to_dict(plain)["cluster"] is None


def test_the_cluster_section_round_trips(clustered: Result, tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_json(path, to_dict(clustered))
    loaded = load_result(path)
    assert loaded.cluster == clustered.cluster
    assert to_dict(loaded) == json.loads(path.read_text())


def test_dbload_report_re_renders_the_table(clustered: Result, tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_json(path, to_dict(clustered))
    console = Console(width=200, record=True, color_system=None)
    print_report(console, [load_saved(path)])
    assert console.export_text() == _text(clustered)


@pytest.mark.parametrize("drop", [True, False])
def test_files_without_a_cluster_load_as_none(plain: Result, tmp_path: Path, drop: bool) -> None:
    data = to_dict(plain)
    if drop:  # written before --cluster existed
        del data["cluster"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    assert load_result(path).cluster is None


@pytest.mark.parametrize(
    ("keys", "value", "named"),
    [
        (("workers",), None, "cluster.workers"),
        (("workers", 0, "ok"), "many", "cluster.workers[0].ok"),
        (("workers", 1, "lost"), 1, "cluster.workers[1].lost"),
        (("scheduler",), 8786, "cluster.scheduler"),
    ],
)
def test_a_bad_cluster_field_is_named(
    clustered: Result, tmp_path: Path, keys: tuple[str | int, ...], value: object, named: str
) -> None:
    data = to_dict(clustered)
    node = data["cluster"]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError) as info:
        load_result(path)
    assert str(info.value).endswith(f"field {named} is missing or invalid")


# -- HTML -----------------------------------------------------------------------


def test_the_page_has_the_workers_table(clustered: Result) -> None:
    page = render_html(Comparison.of([clustered]))
    section = page[page.index("<h2>Dask workers</h2>") :]
    section = section[: section.index("</section>")]
    assert f"<code>{SCHEDULER}</code>" in section
    assert section.count("<tr>") == 1 + len(WORKERS)  # the head and a row each
    for head in CLUSTER_HEADS:
        assert f">{head}</th>" in section
    for cell in ("tcp://10.0.0.2:40825", "26,864", "5,321.2", "5.971", "36 %", "+0.001"):
        assert f">{cell}</td>" in section
    assert '<b class="worse">LOST</b>' in section
    assert "loadgen-&lt;b&gt;" in section and "loadgen-<b>" not in page


def test_the_page_of_runs_on_this_machine_has_no_workers_table(
    small_comparison: Comparison,
) -> None:
    assert "Dask workers" not in render_html(small_comparison)


def test_the_page_of_several_runs_names_the_clustered_one(plain: Result, clustered: Result) -> None:
    page = render_html(Comparison.of([plain, clustered]))
    assert page.count("<h2>Dask workers") == 1
    assert "<h2>Dask workers of run 2 (" in page


# -- one real run ---------------------------------------------------------------


@pytest.mark.slow
def test_a_local_cluster_run_reports_its_workers(seeded_dsn: str, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    out_file = tmp_path / "cluster.json"
    args = ["run", "--cluster", "local:2", "-n", "400", "-c", "4", "--seed", "7"]
    proc = subprocess.run(
        [sys.executable, "-m", "dbload", *args, "--json", str(out_file)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "DBLOAD_DSN": seeded_dsn},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out_file.read_text())
    cluster = data["cluster"]
    assert cluster["scheduler"].startswith("tcp://")
    workers = cluster["workers"]
    assert len(workers) == 2 and len({w["address"] for w in workers}) == 2
    assert sum(w["ok"] for w in workers) == 400 == data["transactions"]["ok"]
    assert [w["clients"] for w in workers] == ["clients 0-1", "clients 2-3"]
    assert not any(w["lost"] for w in workers)
    assert all(w["client_cpu_s"] is not None and w["client_cpu_s"] > 0 for w in workers)
    assert f"per Dask worker (scheduler {cluster['scheduler']})" in proc.stdout
    for worker in workers:
        assert worker["address"] in proc.stdout
