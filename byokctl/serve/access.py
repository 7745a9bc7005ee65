"""Who is asking: a Bearer token, a login session's cookie, or the open loopback server.

:func:`identify` names the caller; :func:`denial` answers 401 (no or unknown
credentials) or 403 (known, but without the scope) and logs it: method, path, client,
the reason, never the token. Without a tokens file the server is open to its loopback
clients only, and checks the ``Host`` header so that a web page elsewhere cannot reach
it by a DNS name that resolves to 127.0.0.1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .auth import OPEN_SCOPES, Sessions, Tokens, hash_token

_log = logging.getLogger("byokctl.serve")

SESSION_COOKIE: Final = "byok_session"
#: Host names a browser uses for a loopback server (the DNS-rebinding guard).
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


@dataclass(frozen=True)
class Caller:
    """An identified caller: its scopes and what its CSRF token is bound to."""

    scopes: frozenset[str]
    #: A session id, a token's digest, or ``open``: the CSRF token's binding.
    binding: str
    via: str

    def may(self, scope: str) -> bool:
        return scope in self.scopes


class Denied(Exception):
    """Why a request is refused: ``status`` 401 or 403 and a message safe to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Access:
    """The server's access rules: its tokens (``None``: open loopback) and sessions."""

    tokens: Tokens | None
    sessions: Sessions

    @property
    def open(self) -> bool:
        return self.tokens is None

    def identify(self, request: Request) -> Caller:
        """The caller, or :class:`Denied` (401) for bad or missing credentials."""
        header = request.headers.get("authorization")
        if self.tokens is None:
            host = request.headers.get("host", "").rsplit(":", 1)[0].lower()
            if host not in LOOPBACK_HOSTS:
                raise Denied(403, f"host {host!r} is not a loopback name (an open server)")
            return Caller(OPEN_SCOPES, "open", "open")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Denied(401, "the Authorization header must be `Bearer <token>`")
            scopes = self.tokens.scopes(token.strip())
            if scopes is None:
                raise Denied(401, "unknown token")
            return Caller(scopes, hash_token(token.strip()), "token")
        sid = request.cookies.get(SESSION_COOKIE)
        if sid:
            scopes = self.sessions.scopes(sid)
            if scopes is not None:
                return Caller(scopes, sid, "session")
            raise Denied(401, "the session has ended: log in again")
        raise Denied(401, "a token is required (Authorization: Bearer <token>, or log in)")

    def require(self, request: Request, scope: str) -> Caller:
        """The caller if it has ``scope``; else :class:`Denied` (401 or 403)."""
        caller = self.identify(request)
        if not caller.may(scope):
            raise Denied(403, f"this token lacks the {scope!r} scope")
        return caller


def log_denial(request: Request, denied: Denied) -> None:
    """One line per denial: no token, no cookie, no body."""
    client = request.client.host if request.client else "-"
    _log.warning(
        "serve: denied %s %s from %s: %d %s",
        request.method,
        request.url.path,
        client,
        denied.status,
        denied.message,
    )


def denial_response(request: Request, denied: Denied) -> Response:
    """The JSON answer to a denied API request."""
    log_denial(request, denied)
    headers = {"WWW-Authenticate": "Bearer"} if denied.status == 401 else {}
    return JSONResponse(
        {"error": denied.message, "status": denied.status}, denied.status, headers=headers
    )
