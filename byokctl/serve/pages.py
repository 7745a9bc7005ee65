"""The HTML pages: the fleet at ``/``, one workspace, login, the operator's "clear".

Jinja2 with autoescaping on for every template; no inline script (the CSP forbids it):
``static/fleet.js`` keeps the fleet's rows current by polling ``/api/v1/fleet``. A form
that changes something (clear, logout) carries a CSRF token bound to the caller's
session or token, and only ``POST`` changes anything.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from byokctl.resolver import episode_to_dict

from .access import SESSION_COOKIE, Caller, Denied, log_denial
from .auth import SESSION_SECONDS
from .documents import daily_credits, fleet_row, page_document
from .fleet import SORTS, Query, iso
from .state import BadRequest, ServeState, read_body

_env = Environment(
    loader=PackageLoader("byokctl.serve", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def _state(request: Request) -> ServeState:
    state: ServeState = request.app.state.serve
    return state


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(template).render(**context), status)


def _denied_page(request: Request, denied: Denied) -> Response:
    log_denial(request, denied)
    if denied.status == 401:
        return render("login.html", 401, error=denied.message, next=request.url.path)
    return render("message.html", 403, title="Not allowed", message=denied.message)


def _common(state: ServeState, caller: Caller) -> dict[str, Any]:
    return {
        "csrf": state.access.sessions.csrf(caller.binding),
        "session": caller.via == "session",
        "admin": caller.may("admin"),
    }


async def fleet_page(request: Request) -> Response:
    state = _state(request)
    try:
        caller = state.access.require(request, "read")
    except Denied as denied:
        return _denied_page(request, denied)
    query = Query.parse(request.query_params)
    page = await run_in_threadpool(state.fleet.page, query)
    doc = await run_in_threadpool(
        page_document, page, state.resolver, state.clock(), state.fleet.generation
    )
    links = {
        "prev": urlencode(query.params(page=query.page - 1)) if query.page > 1 else None,
        "next": urlencode(query.params(page=query.page + 1)) if query.page < page.pages else None,
    }
    return render(
        "fleet.html",
        doc=doc,
        query=query,
        sorts=SORTS,
        links=links,
        **_common(state, caller),
    )


def _chart(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Bars for the inline SVG: BYOK below, Neo stacked on top, scaled to the busiest day."""
    width, height, gap = 600, 120, 2
    top = max((d["byok"] + d["neo"] for d in days), default=0) or 1
    bar = width / max(len(days), 1)
    bars = []
    for i, d in enumerate(days):
        byok_h = round(d["byok"] / top * height, 1)
        neo_h = round(d["neo"] / top * height, 1)
        x = round(i * bar, 1)
        bars.append(
            {
                "x": x,
                "w": round(bar - gap, 1),
                "byok_y": round(height - byok_h, 1),
                "byok_h": byok_h,
                "neo_y": round(height - byok_h - neo_h, 1),
                "neo_h": neo_h,
                "title": f"{d['day']}: {d['byok']} BYOK, {d['neo']} Neo",
            }
        )
    return {"width": width, "height": height, "bars": bars, "top": top}


def _workspace_context(state: ServeState, name: str) -> dict[str, Any] | None:
    row = state.fleet.get(name)
    if row is None:
        return None
    now = state.clock()
    providers = state.store.provider_settings(name) or {}
    episodes = state.runtime.episodes(workspace=name, open_only=False)[:50]
    audit = [
        {"who": e.who, "at": e.at.isoformat(timespec="seconds"), "operation": e.operation,
         "serial": e.serial, "changes": [c for c in e.changes if c.workspace == name]}
        for e in state.store.audit_log(limit=500)
        if any(c.workspace == name for c in e.changes)
    ][:20]  # fmt: skip
    days = daily_credits(state.resolver, name, now)
    return {
        "row": fleet_row(row, {}),
        "providers": providers,
        "episodes": [
            {**episode_to_dict(e), "closed_at": iso(e.closed_at), "close_reason": e.close_reason}
            for e in episodes
        ],
        "audit": audit,
        "chart": _chart(days),
        "days": days,
    }


async def workspace_page(request: Request) -> Response:
    state = _state(request)
    try:
        caller = state.access.require(request, "read")
    except Denied as denied:
        return _denied_page(request, denied)
    name = request.path_params["name"]
    context = await run_in_threadpool(_workspace_context, state, name)
    if context is None:
        return render("message.html", 404, title="Not found", message=f"no workspace {name!r}")
    return render(
        "workspace.html",
        name=name,
        cleared=request.query_params.get("cleared"),
        **context,
        **_common(state, caller),
    )


async def _form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise BadRequest(415, "send the form as application/x-www-form-urlencoded")
    raw = await read_body(request, limit=16 * 1024)
    parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


async def clear(request: Request) -> Response:
    state = _state(request)
    name = request.path_params["name"]
    try:
        caller = state.access.require(request, "admin")
        form = await _form(request)
    except Denied as denied:
        return _denied_page(request, denied)
    except BadRequest as bad:
        return render("message.html", bad.status, title="Bad request", message=bad.message)
    if not state.access.sessions.check_csrf(caller.binding, form.get("csrf", "")):
        log_denial(request, Denied(403, "missing or wrong CSRF token"))
        return render("message.html", 403, title="Not allowed", message="stale form: reload")
    if state.fleet.get(name) is None:
        return render("message.html", 404, title="Not found", message=f"no workspace {name!r}")
    changed = await run_in_threadpool(state.resolver.clear, name)
    await run_in_threadpool(state.fleet.patch, name)
    return RedirectResponse(f"/workspaces/{quote(name)}?cleared={'1' if changed else '0'}", 303)


async def login_form(request: Request) -> Response:
    state = _state(request)
    if state.access.open:
        return RedirectResponse("/", 303)
    return render("login.html", next=request.query_params.get("next", "/"))


async def login(request: Request) -> Response:
    state = _state(request)
    tokens = state.access.tokens
    if tokens is None:
        return RedirectResponse("/", 303)
    try:
        form = await _form(request)
    except BadRequest as bad:
        return render("login.html", bad.status, error=bad.message, next="/")
    scopes = tokens.scopes(form.get("token", "").strip())
    target = form.get("next", "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    if scopes is None:
        log_denial(request, Denied(401, "login with an unknown token"))
        return render("login.html", 401, error="unknown token", next=target)
    sid = state.access.sessions.create(scopes)
    response = RedirectResponse(target, 303)
    response.set_cookie(
        SESSION_COOKIE,
        sid,
        max_age=int(SESSION_SECONDS),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def logout(request: Request) -> Response:
    state = _state(request)
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        try:
            form = await _form(request)
        except BadRequest:
            form = {}
        if state.access.sessions.check_csrf(sid, form.get("csrf", "")):
            state.access.sessions.end(sid)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
