"""``--junit PATH``: thresholds as JUnit XML test cases, for CI dashboards.

The shape is the one Jenkins' junit-10.xsd describes and pytest and k6
write, which GitLab, GitHub test reporters and Jenkins all read: a
``<testsuites>`` root, one ``<testsuite>`` per run (per cell of a compare),
one ``<testcase>`` per threshold, a ``<failure>`` (message: the threshold
and the value observed) when it failed.

Every suite also has a test case "run succeeded", with or without
thresholds: the CLI fails a run in which no transaction succeeded (or that
was interrupted, aborted or lost a worker) whatever its thresholds say, and
the dashboard should show the same failure the exit code did. A run where
only some transactions failed passes it, as it exits 0, with the warning in
its ``<system-out>``.

Pure functions of a :class:`~dbload.measure.result.Result` (or a
:class:`~dbload.measure.comparison.Comparison`) returning the XML text.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from dbload.measure.comparison import Comparison, shows_drivers
from dbload.measure.result import Result
from dbload.measure.thresholds import Verdict
from dbload.report.console import outcome, summary_line

RUN_SUCCEEDED = "run succeeded"
# what XML 1.0 cannot hold, even escaped (a server message may carry it)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def junit_run(result: Result, verdicts: Sequence[Verdict] = ()) -> str:
    """One run (``dbload run --junit``): one suite."""
    return _document([(result, verdicts)])


def junit_compare(comparison: Comparison, verdicts: Sequence[Sequence[Verdict]] = ()) -> str:
    """``dbload compare --junit``: one suite per cell, ``verdicts[i]`` being
    cell i's (none given: the "run succeeded" cases alone)."""
    cells = list(verdicts) or [()] * len(comparison.results)
    return _document(list(zip(comparison.results, cells, strict=True)))


def _document(runs: list[tuple[Result, Sequence[Verdict]]]) -> str:
    root = ET.Element("testsuites", name="dbload")
    # compare --drivers: cells of one mode and clients differ by their driver
    with_driver = shows_drivers(result for result, _ in runs) and len(runs) > 1
    suites = [
        _suite(root, i, result, verdicts, with_driver) for i, (result, verdicts) in enumerate(runs)
    ]
    root.set("tests", str(sum(tests for tests, _, _ in suites)))
    root.set("failures", str(sum(failures for _, failures, _ in suites)))
    root.set("errors", "0")
    root.set("time", _seconds(sum(time for _, _, time in suites)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite(
    root: ET.Element,
    index: int,
    result: Result,
    verdicts: Sequence[Verdict],
    with_driver: bool = False,
) -> tuple[int, int, float]:
    """Append run ``result``'s suite; returns its tests, failures and time."""
    mode = f"{result.mode} {result.driver}" if with_driver else result.mode
    cell = f"{mode} c={result.concurrency}"
    classname = f"dbload.{_dotless(result.workload)}.{_dotless(mode)}_c{result.concurrency}"
    suite = ET.SubElement(
        root,
        "testsuite",
        name=_text(f"dbload {result.workload}: {cell}"),
        tests=str(1 + len(verdicts)),
        failures="0",
        errors="0",
        skipped="0",
        time=_seconds(result.duration_s),
        timestamp=_timestamp(result.started_at),
        hostname="localhost",  # not recorded in a result; the schemas' stand-in
        id=str(index),
        package=f"dbload.{_dotless(result.workload)}",
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in _properties(result):
        ET.SubElement(properties, "property", name=name, value=_text(value))
    failures = _run_case(suite, classname, result)
    for verdict in verdicts:
        failures += _threshold_case(suite, classname, verdict)
    suite.set("failures", str(failures))
    ET.SubElement(suite, "system-out").text = summary_line(result)
    ET.SubElement(suite, "system-err")
    return 1 + len(verdicts), failures, result.duration_s


def _properties(result: Result) -> list[tuple[str, str]]:
    return [
        ("workload", result.workload),
        ("scripts", ", ".join(result.scripts)),
        ("mode", result.mode),
        ("driver", result.driver),
        ("driver_version", result.driver_label),
        ("concurrency", str(result.concurrency)),
        ("seed", str(result.seed)),
        ("server_version", result.database.server_version),
    ]


def _run_case(suite: ET.Element, classname: str, result: Result) -> int:
    """The "run succeeded" case; 1 when it failed."""
    case = ET.SubElement(
        suite, "testcase", name=RUN_SUCCEEDED, classname=classname, time=_seconds(result.duration_s)
    )
    why = _why_failed(result)
    if why is not None:
        ET.SubElement(case, "failure", message=_text(why), type="run").text = _text(why)
        return 1
    found = outcome(result)
    if found is not None:  # some failed: a pass, as the exit code is 0
        ET.SubElement(case, "system-out").text = _text(f"warning: {found.message}")
    return 0


def _why_failed(result: Result) -> str | None:
    if result.incidents:
        return result.incidents[0]
    if result.aborted:
        return f"aborted after {result.failed:,} failed transactions (--max-errors)"
    if result.interrupted:
        return "interrupted: the result is partial"
    found = outcome(result)
    return found.message if found is not None and found.level == "error" else None


def _threshold_case(suite: ET.Element, classname: str, verdict: Verdict) -> int:
    """One threshold's case; 1 when it failed."""
    threshold = verdict.threshold
    case = ET.SubElement(suite, "testcase", name=_text(threshold.text), classname=classname)
    case.set("time", "0")
    if verdict.passed:
        return 0
    failure = ET.SubElement(case, "failure", message=_text(verdict.describe()), type="threshold")
    failure.text = _text(
        f"{threshold.metric}: observed {_observed(verdict)}, required"
        f" {threshold.op} {threshold.value:g}"
    )
    return 1


def _observed(verdict: Verdict) -> str:
    if math.isnan(verdict.actual):
        return "nothing (no successful transaction)"
    return f"{verdict.actual:.6g}"


def _timestamp(started_at: str) -> str:
    """ISO 8601 without a zone, as Ant writes it (the run's time is UTC)."""
    try:
        when = dt.datetime.fromisoformat(started_at)
    except ValueError:
        return started_at
    if when.tzinfo is not None:
        when = when.astimezone(dt.UTC).replace(tzinfo=None)
    return when.isoformat(timespec="seconds")


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _dotless(name: str) -> str:
    """A name as one part of a dotted class name (CI tools split on dots)."""
    return re.sub(r"[^\w+-]+", "_", name) or "workload"


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)
