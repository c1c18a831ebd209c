"""``dbload serve``'s HTTP API against its own OpenAPI schema (``/openapi.json``),
with schemathesis: requests that fit the schema and requests that do not, to
every operation of a live server. Whatever is sent: no 5xx, a status the
schema documents, and a body of the documented type and shape.

A valid ``POST /api/runs`` starts a real run on the session's seeded database:
each one the fuzzing starts is stopped as soon as it is accepted, and the test
waits until all of them have ended. The server's runs are stopped and its
target closed when the module ends (``live_server``).

The cases come from schemathesis' strategies, driven by Hypothesis directly:
schemathesis' pytest loader for a schema that a fixture loads
(``schemathesis.pytest.from_fixture``) needs ``Node._nodeid``, which pytest
9.2 no longer has, and the schema only exists once the server is up. Bounded:
``$DBLOAD_FUZZ_EXAMPLES`` (default 40) examples an operation and direction,
no deadline (the machine is shared; timing is not what is tested).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from serve_helpers import live_server, wait_for_end

pytestmark = pytest.mark.slow  # ~10 s: a few hundred requests, and runs started and stopped

FUZZ = settings(
    max_examples=int(os.environ.get("DBLOAD_FUZZ_EXAMPLES", "40")),
    deadline=None,
    database=None,  # no .hypothesis/ folder left in the work tree
    suppress_health_check=[HealthCheck.too_slow],
)
TOKEN = "schema-test-token"

# Every operation of the schema, by schemathesis' label; a new one fails
# test_every_operation_is_fuzzed until it is put in its group here.
READS = ["GET /api/targets", "GET /api/workloads", "GET /api/modes", "GET /api/runs"]
BY_ID = [  # a random id names no run: 404 from each, never a 500
    "GET /api/runs/{run_id}",
    "POST /api/runs/{run_id}/stop",
    "GET /api/runs/{run_id}/events",
    "GET /runs/{run_id}/report",
]
DIFF = "GET /report"
START = "POST /api/runs"
OPERATIONS = [*READS, *BY_ID, DIFF, START]

Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Any]

# What every response is held to; the direction adds its own check below.
CONFORMANCE: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def server(seeded_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with live_server(seeded_dsn, tmp_path_factory.mktemp("serve-schema")) as url:
        yield url


@pytest.fixture(scope="module")
def schema(server: str) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{server}/openapi.json")


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as http:
        yield http


def operation(schema: BaseSchema, label: str) -> Operation:
    method, path = label.split(" ", 1)
    return schema[path][method]


def fuzz(
    op: Operation, mode: GenerationMode, check: Callable[[AnyCase], None], examples: int = 0
) -> None:
    """``check`` on each case Hypothesis draws from the operation's strategy
    (``examples``: fewer than FUZZ's)."""

    @settings(FUZZ, max_examples=examples or FUZZ.max_examples)
    @given(case=op.as_strategy(generation_mode=mode))
    def each(case: AnyCase) -> None:
        check(case)

    each()


def documented(schema: BaseSchema, case: AnyCase) -> set[str]:
    raw: dict[str, Any] = schema.raw_schema["paths"][case.operation.path]
    return set(raw[case.operation.method.lower()]["responses"])


def call_and_check(
    schema: BaseSchema,
    client: httpx.Client,
    case: AnyCase,
    mode: GenerationMode,
    started: list[str],
) -> schemathesis.Response:
    """The case's response, checked as its direction asks; a run it started
    is stopped first (``started`` gets its id)."""
    checks = list(CONFORMANCE)
    if mode == GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)
    elif case.operation.label != START:
        # not for runs: the schema cannot list the workload, mode and driver
        # names check_request takes, so a made-up name's 400 is right
        checks.append(positive_data_acceptance)
    response = case.call(timeout=30)
    if case.operation.label == START and response.status_code == 202:
        run_id = response.json()["id"]
        started.append(run_id)
        # at once: a body of the schema may ask for hours at 10,000 clients
        stop = client.post(f"/api/runs/{run_id}/stop")
        assert stop.status_code in (202, 409), stop.text  # 409: it has already ended
    assert response.status_code < 500, f"{response.status_code}: {case.as_curl_command()}"
    case.validate_response(response, checks=checks)
    return response


# -- the schema itself ---------------------------------------------------------------


def test_every_operation_is_fuzzed(schema: BaseSchema) -> None:
    labels = set()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an operation schemathesis cannot read
        labels.add(result.ok().label)
    assert labels == set(OPERATIONS)


# -- requests that fit the schema ----------------------------------------------------------


@pytest.mark.parametrize("label", [*READS, *BY_ID, DIFF])
def test_requests_that_fit_the_schema_get_documented_answers(
    schema: BaseSchema, client: httpx.Client, label: str
) -> None:
    def check(case: AnyCase) -> None:
        response = call_and_check(schema, client, case, GenerationMode.POSITIVE, [])
        if label in BY_ID:
            # ids the fuzzing makes up name no run: stop, view, events and
            # report say so (a 404), whatever characters the id has
            assert response.status_code == 404, case.as_curl_command()

    fuzz(operation(schema, label), GenerationMode.POSITIVE, check)


def test_run_requests_that_fit_the_schema_start_or_are_refused(
    schema: BaseSchema, client: httpx.Client, restore_balances: None
) -> None:
    """Bodies of the right shape: accepted (202) or refused with one line
    (400 from check_request, 409, or 422 from the request model's own
    checks, such as a DSN in a field)."""
    started: list[str] = []

    def check(case: AnyCase) -> None:
        response = call_and_check(schema, client, case, GenerationMode.POSITIVE, started)
        assert response.status_code in (202, 400, 409, 422), case.as_curl_command()

    fuzz(operation(schema, START), GenerationMode.POSITIVE, check)
    # every run stopped that way ends (saved or not): none is left queued or running
    for run_id in started:
        view = wait_for_end(client, run_id)
        assert view["status"] in ("stopped", "done", "failed"), view


# -- requests that do not fit it ---------------------------------------------------------


@pytest.mark.parametrize("label", [START, DIFF])
def test_requests_against_the_schema_are_refused(
    schema: BaseSchema, client: httpx.Client, label: str
) -> None:
    """Wrong types, missing or extra fields, bodies that are not JSON: a
    documented 4xx with its error line, never a run (the other operations have
    nothing to get wrong: no parameters, or a free-form string in the path)."""
    started: list[str] = []  # none should be; call_and_check stops any at once

    def check(case: AnyCase) -> None:
        call_and_check(schema, client, case, GenerationMode.NEGATIVE, started)

    fuzz(operation(schema, label), GenerationMode.NEGATIVE, check)


# -- by hand: ids and states the fuzzing would not make -------------------------------


@pytest.mark.parametrize(
    "run_id", ["x", ".json", "a..b", "20260101-000000-abcdef", "a b", "é", "0" * 200]
)
def test_an_unknown_id_is_404_everywhere(client: httpx.Client, run_id: str) -> None:
    for method, path in (
        ("POST", f"/api/runs/{run_id}/stop"),
        ("GET", f"/api/runs/{run_id}"),
        ("GET", f"/api/runs/{run_id}/events"),
    ):
        response = client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert set(response.json()) == {"error"}
    assert client.get(f"/runs/{run_id}/report").status_code == 404
    assert client.get("/report", params={"ids": ["x", run_id]}).status_code == 404


def test_stopping_an_ended_run_is_a_conflict(client: httpx.Client) -> None:
    started = client.post("/api/runs", json={"mode": "sequential", "transactions": 5})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    assert wait_for_end(client, run_id)["status"] == "done"
    again = client.post(f"/api/runs/{run_id}/stop")
    assert again.status_code == 409
    assert "already ended" in again.json()["error"]


# -- bugs the fuzzing found, each kept as a test of its own ----------------------------


@pytest.mark.parametrize("path", ["/runs/{run_id}/report", "/report"])
def test_the_report_pages_document_their_404(schema: BaseSchema, path: str) -> None:
    responses = schema.raw_schema["paths"][path]["get"]["responses"]
    assert "404" in responses, sorted(responses)


def test_a_body_that_is_not_utf8_json_gets_an_error_line(client: httpx.Client) -> None:
    response = client.post(
        "/api/runs", content=b'{"mode": "\xff"}', headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert isinstance(response.json().get("error"), str), response.text


@pytest.mark.parametrize(
    "wrong",
    [{"max_tries": True}, {"seed": "5"}, {"warmup": "0"}, {"concurrency": True}],
    ids=["true-for-an-integer", "string-for-an-integer", "string-for-a-number", "true-clients"],
)
def test_a_field_of_the_wrong_type_is_refused(client: httpx.Client, wrong: dict[str, Any]) -> None:
    body = {"mode": "sequential", "transactions": 5, **wrong}
    response = client.post("/api/runs", json=body)
    if response.status_code == 202:  # the bug: a real run, stopped (or already done)
        client.post(f"/api/runs/{response.json()['id']}/stop")
    assert response.status_code == 422, response.text


def test_a_tiny_rate_is_refused_or_run(client: httpx.Client) -> None:
    body = {"mode": "async", "rate": 1e-300, "transactions": 1}
    started = client.post("/api/runs", json=body)
    if started.status_code == 400:  # refused at the request: fine
        return
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    try:
        view = wait_for_end(client, run_id, timeout=3)
    except AssertionError:  # waiting for its first transaction, decades away: fine too
        client.post(f"/api/runs/{run_id}/stop")
        view = wait_for_end(client, run_id)
    assert "internal error" not in (view["error"] or ""), view["error"]


# -- with a token: every operation's 401 ---------------------------------------------


@pytest.fixture(scope="module")
def token_schema(seeded_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BaseSchema]:
    results: Path = tmp_path_factory.mktemp("serve-schema-token")
    with live_server(seeded_dsn, results, token=TOKEN) as url:
        yield schemathesis.openapi.from_url(
            f"{url}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
        )


@pytest.mark.parametrize("label", OPERATIONS)
def test_without_the_token_every_operation_is_a_documented_401(
    token_schema: BaseSchema, label: str
) -> None:
    def check(case: AnyCase) -> None:
        response = case.call(timeout=30)  # no Authorization header
        assert response.status_code == 401, case.as_curl_command()
        case.validate_response(response, checks=CONFORMANCE)

    # a few: the guard answers before any parameter is read
    fuzz(operation(token_schema, label), GenerationMode.POSITIVE, check, examples=5)
