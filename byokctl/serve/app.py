"""The ASGI application: routes, security headers, request timing, lifespan.

:func:`create_app` takes a :class:`~byokctl.serve.state.ServeState` (one resolver per
process); its lifespan starts the fleet index's thread and, at shutdown, stops it and
closes the resolver, which flushes the credit buffer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any, Final

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from byokctl.errors import StoreError

from . import api, pages
from .access import Denied, denial_response
from .metrics import CONTENT_TYPE
from .state import ServeState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: No inline script, no third-party origin: every script and style is a file of ours.
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: Final = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


class Guard:
    """Security headers on every answer, ``no-store`` on the API's, request durations."""

    def __init__(self, app: ASGIApp, state: ServeState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope.get("path", "")
        status = [500]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = [
                    h for h in message.get("headers", []) if h[0].lower() != b"cache-control"
                ] + list(SECURITY_HEADERS)
                no_store = path.startswith(("/api/", "/login", "/workspaces", "/metrics"))
                headers.append((b"cache-control", b"no-store" if no_store else b"no-cache"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            endpoint = scope.get("endpoint")
            template = getattr(endpoint, "__name__", None) or type(endpoint).__name__
            self.state.metrics.requests.labels(
                scope.get("method", "-"), template, str(status[0])
            ).observe(time.perf_counter() - started)


async def healthz(request: Request) -> Response:
    del request
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    state: ServeState = request.app.state.serve
    try:
        await run_in_threadpool(state.runtime.versions)
    except StoreError:
        return JSONResponse({"status": "store unavailable"}, 503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    state: ServeState = request.app.state.serve
    try:
        state.access.require(request, "read")
    except Denied as denied:
        return denial_response(request, denied)
    body = await run_in_threadpool(state.metrics.render)
    return PlainTextResponse(body, media_type=CONTENT_TYPE)


def routes() -> list[BaseRoute]:
    static = StaticFiles(directory=str(files("byokctl.serve") / "static"))
    return [
        Route("/", pages.fleet_page),
        Route("/workspaces/{name}", pages.workspace_page),
        Route("/workspaces/{name}/clear", pages.clear, methods=["POST"]),
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/api/v1/openapi.json", api.openapi),
        Route("/api/v1/resolve", api.resolve, methods=["POST"]),
        Route("/api/v1/report", api.report, methods=["POST"]),
        Route("/api/v1/status", api.status),
        Route("/api/v1/workspaces/{name}", api.workspace),
        Route("/api/v1/credits", api.credits),
        Route("/api/v1/fleet", api.fleet),
        Mount("/static", static, name="static"),
    ]


async def _not_found(request: Request, exc: Exception) -> Response:
    del exc
    return JSONResponse({"error": f"no such page: {request.url.path}", "status": 404}, 404)


async def _internal(request: Request, exc: Exception) -> Response:
    del request, exc  # logged by the server; never a traceback to the client
    return JSONResponse({"error": "internal error (see the server's log)", "status": 500}, 500)


def create_app(state: ServeState, *, close_resolver: bool = True) -> Starlette:
    """The application over ``state``; its shutdown closes the resolver (flushing credits)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        del app
        state.fleet.start(state.clock)
        try:
            yield
        finally:
            state.fleet.stop()
            if close_resolver:
                await run_in_threadpool(state.resolver.close)

    app = Starlette(
        routes=routes(),
        lifespan=lifespan,
        exception_handlers={404: _not_found, 500: _internal},
    )
    app.state.serve = state
    inner = app.build_middleware_stack

    def build() -> ASGIApp:
        return Guard(inner(), state)

    app.build_middleware_stack = build  # type: ignore[method-assign]
    return app
