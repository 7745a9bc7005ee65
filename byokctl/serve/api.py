"""The resolver API under ``/api/v1`` (``docs/serve.md``; OpenAPI at ``/api/v1/openapi.json``).

Every endpoint checks its scope first, then its input; the resolver is called in a
worker thread when it may touch the store (report, clear, credits), inline when it is
a dictionary lookup (resolve). A key appears only in an ``include_key`` answer to a
caller with ``resolve:keys``; every API answer is ``Cache-Control: no-store``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from byokctl.classify import Outcome
from byokctl.resolver import FEATURES, ProviderResponse, Route, credits_to_dict, neo_caps
from byokctl.store.runtime import Period

from .access import Denied, denial_response
from .documents import (
    page_document,
    route_document,
    workspace_credits,
)
from .fleet import Query
from .openapi import OPENAPI
from .state import BadRequest, ServeState, field_str, read_json

OUTCOMES = tuple(o.value for o in Outcome)


def _state(request: Request) -> ServeState:
    state: ServeState = request.app.state.serve
    return state


def _answer(doc: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(doc, status)


async def resolve(request: Request) -> Response:
    state = _state(request)
    try:
        caller = state.access.require(request, "resolve")
        doc = await read_json(request)
        workspace = field_str(doc, "workspace")
        feature = field_str(doc, "feature", required=False) or "assist"
        include_key = doc.get("include_key", False)
        if not isinstance(include_key, bool):
            raise BadRequest(400, "'include_key' must be true or false")
        if include_key and not caller.may("resolve:keys"):
            raise Denied(403, "include_key needs a token with the 'resolve:keys' scope")
        try:
            route = state.resolver.resolve(workspace, feature)
        except ValueError:
            raise BadRequest(
                400, f"unknown feature {feature!r}", hint=f"one of: {', '.join(FEATURES)}"
            ) from None
    except Denied as denied:
        return denial_response(request, denied)
    except BadRequest as bad:
        return bad.response()
    state.metrics.resolves.labels(route.provider, route.reason).inc()
    state.metrics.credits.labels(route.provider, route.feature).inc(route.cost)
    out = route_document(route, state.book.keep(route))
    if include_key:
        out["api_key"] = route.api_key()
    return _answer(out)


def _outcome_of(doc: dict[str, Any]) -> str | ProviderResponse:
    if "outcome" in doc:
        outcome = doc["outcome"]
        if not isinstance(outcome, str) or outcome not in OUTCOMES:
            raise BadRequest(
                400, "'outcome' is not an outcome", hint=f"one of: {', '.join(OUTCOMES)}"
            )
        return outcome
    status = doc.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise BadRequest(
            400,
            "give 'outcome', or the provider's answer: 'status' (100-599), 'body', 'headers'",
        )
    body = doc.get("body", "")
    if not isinstance(body, str):
        raise BadRequest(400, "'body' must be the provider's answer as a string")
    headers = doc.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise BadRequest(400, "'headers' must be an object of strings")
    return ProviderResponse(status, body.encode("utf-8", "replace"), headers)


async def report(request: Request) -> Response:
    state = _state(request)
    try:
        state.access.require(request, "resolve")
        doc = await read_json(request)
        route_id = field_str(doc, "route_id")
        outcome = _outcome_of(doc)
    except Denied as denied:
        return denial_response(request, denied)
    except BadRequest as bad:
        return bad.response()
    route = state.book.take(route_id)
    if route is None:
        return BadRequest(
            404,
            "unknown or already reported route_id",
            hint="report once per resolve; routes are kept for an hour: resolve again",
        ).response()
    failure = await run_in_threadpool(state.resolver.report, route, outcome)
    if failure is None:
        if route.fingerprint is not None:
            await run_in_threadpool(state.fleet.patch, route.workspace)
        answer = outcome if isinstance(outcome, str) else "ok"
        return _answer({"outcome": answer if route.is_neo else "ok", "fallback": None})
    await run_in_threadpool(state.fleet.patch, route.workspace)
    fallback: Route = state.resolver.fallback(route, failure)
    state.metrics.fallbacks.labels(route.provider, str(failure.outcome)).inc()
    state.metrics.credits.labels(fallback.provider, fallback.feature).inc(fallback.cost)
    return _answer(
        {
            "outcome": str(failure.outcome),
            "sticky": failure.sticky,
            "detail": failure.detail,
            "retry_after": failure.retry_after,
            "fallback": route_document(fallback, state.book.keep(fallback)),
        }
    )


async def status(request: Request) -> Response:
    state = _state(request)
    try:
        state.access.require(request, "read")
    except Denied as denied:
        return denial_response(request, denied)
    return _answer({"workspaces": [s.to_dict() for s in state.fleet.rows()]})


async def workspace(request: Request) -> Response:
    state = _state(request)
    try:
        state.access.require(request, "read")
    except Denied as denied:
        return denial_response(request, denied)
    name = request.path_params["name"]
    row = state.fleet.get(name)
    if row is None:
        return BadRequest(404, f"no workspace {name!r} in the store").response()
    providers = await run_in_threadpool(state.store.provider_settings, name)
    credits = await run_in_threadpool(workspace_credits, state.resolver, name, state.clock())
    return _answer({**row.to_dict(), "providers": providers or {}, "credits": credits})


def _timestamp(text: str, name: str) -> float:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            400, f"{name}={text!r} is not a date", hint="YYYY-MM-DD or ISO 8601"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


async def credits(request: Request) -> Response:
    state = _state(request)
    try:
        state.access.require(request, "read")
        params = request.query_params
        name = params.get("workspace") or None
        since = params.get("since") or None
        given = params.get("period") or None
        if given not in (None, "day", "month"):
            raise BadRequest(400, f"period={given!r}", hint="period is day or month")
        period: Period | None = "day" if given == "day" else "month" if given else None
        start = None if since is None else _timestamp(since, "since")
    except Denied as denied:
        return denial_response(request, denied)
    except BadRequest as bad:
        return bad.response()
    usage = await run_in_threadpool(
        lambda: state.resolver.credit_usage(workspace=name, since=start, period=period)
    )
    caps = neo_caps(await run_in_threadpool(state.resolver.status), name)
    return _answer({**credits_to_dict(usage, caps, since=since), "period": period})


async def fleet(request: Request) -> Response:
    state = _state(request)
    try:
        state.access.require(request, "read")
    except Denied as denied:
        return denial_response(request, denied)
    page = await run_in_threadpool(state.fleet.page, Query.parse(request.query_params))
    doc = await run_in_threadpool(
        page_document, page, state.resolver, state.clock(), state.fleet.generation
    )
    return _answer(doc)


async def openapi(request: Request) -> Response:
    del request
    return _answer(OPENAPI)
