"""The HTTP face of a server's runs: the page, its JSON API (OpenAPI at
``/openapi.json``), Server-Sent Events and the reports.

FastAPI rather than bare Starlette: the request body is a pydantic model,
so validation errors are 4xx with the field named, and the OpenAPI schema
that CI callers (and schemathesis) read is generated from the same model
rather than kept by hand beside it.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from dbload import __version__
from dbload.database.redact import redact
from dbload.drivers import ALL_DRIVERS
from dbload.errors import DbloadError
from dbload.measure.comparison import Comparison
from dbload.modes import MODES
from dbload.serve.config import is_loopback
from dbload.serve.request import RunRequest, check_request, workloads
from dbload.serve.runs import ENDED, Conflict, Runs, RunState

_Next = Callable[[Request], Awaitable[Response]]
TICK_S = 1.0  # one snapshot a second
COOKIE = "dbload_token"


@dataclass(frozen=True, slots=True)
class AppSettings:
    token: str | None = None
    workloads_dir: Path | None = None
    accept_runs: bool = True  # False: run --dashboard, which shows the CLI's one run


class Error(BaseModel):
    error: str


class Started(BaseModel):
    id: str
    status: str
    queue_position: int | None
    url: str
    events: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "The run cannot be done as asked (one line says why)"},
    401: {"model": Error, "description": "No or a wrong bearer token"},
}


def create_app(runs: Runs, settings: AppSettings) -> FastAPI:
    app = FastAPI(
        title="dbload",
        version=__version__,
        description="Start, watch, stop and keep dbload runs. A request names a target"
        " (GET /api/targets) and never carries a DSN.",
        responses=_ERRORS,
        # FastAPI's /docs and /redoc load their scripts from a CDN: none here
        # (the page ships everything it runs); the schema is /openapi.json
        docs_url=None,
        redoc_url=None,
    )
    _guard(app, settings)
    _errors(app)
    _pages(app, runs, settings)
    _api(app, runs, settings)
    return app


# -- safety ----------------------------------------------------------------------------


def _guard(app: FastAPI, settings: AppSettings) -> None:
    """A token when one is set (bearer header, or the cookie ``/?token=`` sets
    for the page and its event stream, which cannot send headers); and no
    request from another site's page (its Origin is not ours, or, without a
    token, the name it reached us by is not loopback's), so that a page open
    elsewhere in the browser cannot start runs on a loopback server."""

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        origin, host = request.headers.get("origin"), request.headers.get("host")
        if origin and urlsplit(origin).netloc != host:
            return JSONResponse({"error": f"cross-origin request from {origin}"}, 403)
        if settings.token is None:
            # without a token only loopback is served, so the name asked for
            # must be loopback's too: another name that resolves here is a
            # DNS-rebinding page, whose Origin matches its Host
            name = urlsplit(f"//{host}").hostname if host else None
            if name is not None and not is_loopback(name):
                return JSONResponse({"error": f"this server answers to loopback, not {host}"}, 421)
            return await call_next(request)
        given = request.query_params.get("token")
        if given is not None and request.url.path == "/":
            if not _same(given, settings.token):
                return JSONResponse({"error": "wrong token"}, 401)
            response: Response = RedirectResponse("/", 303)
            response.set_cookie(COOKIE, given, httponly=True, samesite="strict")
            return response
        header = request.headers.get("authorization", "")
        sent = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE)
        if sent is None or not _same(sent, settings.token):
            return JSONResponse(
                {"error": "this server needs a token: send 'Authorization: Bearer TOKEN'"
                 " (a browser: open /?token=TOKEN once)"},
                401,
                headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        return await call_next(request)


def _errors(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own (a body it cannot decode, 404, 405) in the API's shape
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the offending input is not echoed: it may be the DSN that was refused
        details = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"][1:] or first["loc"])
        line = f"{where}: {first['msg']}" if where else str(first["msg"])
        return JSONResponse({"error": line, "detail": jsonable_encoder(details)}, 422)


# -- the page and the reports -------------------------------------------------------


def _pages(app: FastAPI, runs: Runs, settings: AppSettings) -> None:
    static = files("dbload.serve") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        page = (static / "index.html").read_text(encoding="utf-8")
        page = page.replace("{{accept_runs}}", "true" if settings.accept_runs else "false")
        return HTMLResponse(page, headers={"Content-Security-Policy": _CSP})

    @app.get("/runs/{run_id}/report", response_class=HTMLResponse, tags=["reports"],
             responses=_PAGE_RESPONSES)  # fmt: skip
    def report(run_id: str) -> HTMLResponse:
        """The finished run as ``--out``'s report.html."""
        from dbload.report.html import render_html  # matplotlib: only when a report is asked

        saved = runs.store.load(run_id)
        if saved is None:
            return HTMLResponse(_missing(run_id), 404)
        return HTMLResponse(render_html(saved.comparison))

    @app.get("/report", response_class=HTMLResponse, tags=["reports"], responses=_PAGE_RESPONSES)
    def diff(ids: list[str] = Query(min_length=1, max_length=20)) -> HTMLResponse:
        """``dbload report A B``: the runs side by side, tps and p99 deltas against the first."""
        from dbload.report.html import render_html

        found = [(run_id, runs.store.load(run_id)) for run_id in ids]
        for run_id, saved in found:
            if saved is None:
                return HTMLResponse(_missing(run_id), 404)
        loaded = [(run_id, s) for run_id, s in found if s is not None]
        comparison = Comparison.of([r for _, s in loaded for r in s.results])
        names = [f"{run_id}.json" for run_id, s in loaded for _ in s.results]
        return HTMLResponse(render_html(comparison, deltas=True, sources=names))


# the pages' own errors are HTML; the guard's 401 is JSON, whatever the route's class
_PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "No saved run of that id", "content": {"text/html": {}}},
    401: {
        "description": "No or a wrong bearer token",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    },
}

_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'"


def _missing(run_id: str) -> str:
    from html import escape

    return f"<!DOCTYPE html><title>not found</title><p>no saved run {escape(run_id)!s}</p>"


# -- the API -------------------------------------------------------------------------


def _api(app: FastAPI, runs: Runs, settings: AppSettings) -> None:
    @app.get("/api/targets", tags=["setup"])
    def targets() -> list[dict[str, Any]]:
        """The databases this server runs on, by name (URLs redacted)."""
        out = []
        for name in runs.targets.names():
            busy = [s for s in runs.current() if s.job.target == name and s.status not in ENDED]
            out.append(
                {
                    **asdict(runs.targets.info(name)),
                    "running": [s.id for s in busy if s.status != "queued"],
                    "queued": [s.id for s in busy if s.status == "queued"],
                }
            )
        return out

    @app.get("/api/workloads", tags=["setup"])
    def workload_list() -> list[dict[str, Any]]:
        """Built-in workloads, then the server's --workloads folder."""
        return [asdict(w) for w in workloads(settings.workloads_dir)]

    @app.get("/api/modes", tags=["setup"])
    def modes() -> dict[str, list[str]]:
        """The concurrency modes and drivers a request may name."""
        return {"modes": list(MODES), "drivers": list(ALL_DRIVERS)}

    @app.post("/api/runs", status_code=202, response_model=Started, tags=["runs"],
              responses={409: {"model": Error}})  # fmt: skip
    def start(body: RunRequest) -> Any:
        """Queue a run on its target; it starts when the target is free."""
        if not settings.accept_runs:
            return JSONResponse({"error": "this dashboard shows one CLI run"}, 409)
        try:
            job = check_request(body, runs.targets.check(body.target), settings.workloads_dir)
            state = runs.submit(job)
        except DbloadError as exc:
            return JSONResponse({"error": _line(exc)}, 400)
        except Conflict as exc:
            return JSONResponse({"error": str(exc)}, 409)
        return Started(
            id=state.id,
            status=state.status,
            queue_position=runs.position(state),
            url=f"/api/runs/{state.id}",
            events=f"/api/runs/{state.id}/events",
        )

    @app.get("/api/runs", tags=["runs"])
    def history() -> list[dict[str, Any]]:
        """This server's runs and every result saved in its folder, newest first."""
        listed: dict[str, dict[str, Any]] = {}
        for state in runs.current():
            listed[state.id] = {
                "id": state.id,
                "status": state.status,
                "workload": state.job.workload,
                "target": state.job.target,
                "created_at": state.created_at,
                "error": state.error,
                "cells": state.summary,
                "saved": state.saved,
            }
        for stored in runs.store.history():
            listed.setdefault(
                stored.id, {**asdict(stored), "status": "saved", "target": None, "saved": True}
            )
        newest_first = sorted(
            listed.values(), key=lambda r: (str(r["created_at"]), str(r["id"])), reverse=True
        )
        return [strict_json(entry) for entry in newest_first]

    @app.get("/api/runs/{run_id}", tags=["runs"], responses={404: {"model": Error}})
    def run_view(run_id: str) -> Any:
        """The run now; ``result`` (the ``--json`` document) once it has ended."""
        state = runs.get(run_id)
        if state is not None:
            view = state.view(position=runs.position(state))
            view["result"] = state.result
            return JSONResponse(strict_json(view))
        saved = runs.store.load(run_id)
        if saved is None:
            return JSONResponse({"error": f"no run {run_id}"}, 404)
        document = json.loads(saved.path.read_text(encoding="utf-8"))
        return JSONResponse(strict_json({"id": run_id, "status": "saved", "result": document}))

    @app.post("/api/runs/{run_id}/stop", status_code=202, tags=["runs"],
              responses={404: {"model": Error}, 409: {"model": Error}})  # fmt: skip
    def stop(run_id: str) -> Any:
        """Stop the run (the partial result is kept and saved, as with Ctrl-C);
        a queued run is dropped."""
        try:
            state = runs.stop(run_id)
        except KeyError:
            return JSONResponse({"error": f"no run {run_id} on this server"}, 404)
        except Conflict as exc:
            return JSONResponse({"error": str(exc)}, 409)
        return {"id": state.id, "status": state.status, "stopping": True}

    @app.get("/api/runs/{run_id}/events", tags=["runs"], responses={404: {"model": Error}},
             response_class=StreamingResponse)  # fmt: skip
    def events(run_id: str) -> Any:
        """Server-Sent Events: a ``snapshot`` a second (each cell's new points),
        then one ``final`` with the summary; the first holds every point so far."""
        state = runs.get(run_id)
        if state is None:
            return JSONResponse({"error": f"no run {run_id} on this server"}, 404)
        return StreamingResponse(
            _stream(runs, state),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


async def _stream(runs: Runs, state: RunState) -> AsyncIterator[str]:
    sent = [0] * len(state.cells)
    number = 0
    while True:
        ended = state.ended.is_set()
        view = strict_json(state.view(sent, runs.position(state)))
        number += 1
        kind = "final" if ended else "snapshot"
        yield f"id: {number}\nevent: {kind}\ndata: {json.dumps(view, allow_nan=False)}\n\n"
        if ended:
            return
        for _ in range(int(TICK_S / 0.05)):  # the final one as soon as the run ends
            await asyncio.sleep(0.05)
            if state.ended.is_set():
                break


def strict_json(value: Any) -> Any:
    """JSON without NaN or infinities (JavaScript's JSON.parse takes neither): null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def _line(exc: BaseException) -> str:
    """One line, its passwords masked (as the CLI's): a message may quote what it refuses."""
    text = redact(str(exc).strip())
    return text.splitlines()[0] if text else type(exc).__name__


def _same(given: str, token: str) -> bool:
    """compare_digest on text takes ASCII only: a token is compared as UTF-8 bytes."""
    return secrets.compare_digest(given.encode("utf-8"), token.encode("utf-8"))
