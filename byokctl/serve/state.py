"""What one server process holds: its resolver, stores, access rules, routes, index, metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse

from byokctl.resolver import Resolver
from byokctl.store import Store
from byokctl.store.runtime import RuntimeStore

from ._routes import RouteBook
from .access import Access
from .fleet import FleetIndex
from .metrics import Metrics

#: The largest request body taken (a provider's error answer fits many times over).
MAX_BODY: Final = 256 * 1024


@dataclass
class ServeState:
    """The server's one resolver and what surrounds it; ``app.state.serve``."""

    resolver: Resolver
    store: Store
    runtime: RuntimeStore
    access: Access
    clock: Callable[[], float] = time.time
    book: RouteBook = field(default_factory=RouteBook)
    fleet: FleetIndex = field(init=False)
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.fleet = FleetIndex(
            self.resolver,
            self.runtime.versions,
            lambda name: self.runtime.episodes(workspace=name, open_only=True),
        )
        self.metrics = Metrics(self)


class BadRequest(Exception):
    """A request the API refuses with 4xx and a clear message (never a traceback)."""

    def __init__(self, status: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint

    def response(self) -> JSONResponse:
        doc: dict[str, Any] = {"error": self.message, "status": self.status}
        if self.hint:
            doc["hint"] = self.hint
        return JSONResponse(doc, self.status)


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused (413) past ``limit`` bytes without reading further."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BadRequest(413, f"the request body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"the request body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> dict[str, Any]:
    """The request's JSON object, or 400/413/415 saying what is wrong with it."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        # Also what keeps a web page elsewhere from posting here: JSON needs a preflight.
        raise BadRequest(415, "send the body as JSON (Content-Type: application/json)")
    raw = await read_body(request)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(400, "the body is not UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(
            400,
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
        ) from None
    if not isinstance(doc, dict):
        raise BadRequest(400, f"the body must be a JSON object, not {type(doc).__name__}")
    return doc


def field_str(doc: dict[str, Any], name: str, *, required: bool = True, limit: int = 200) -> str:
    """A string field of a request body, checked."""
    value = doc.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise BadRequest(400, f"{name!r} must be a non-empty string")
    if len(value) > limit:
        raise BadRequest(400, f"{name!r} is longer than {limit} characters")
    return value
