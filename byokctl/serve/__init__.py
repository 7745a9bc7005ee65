"""``byokctl serve``: the resolver over HTTP, the fleet status page, Prometheus metrics.

An ASGI application (Starlette, served by uvicorn) over one
:class:`~byokctl.resolver.Resolver` per process: the JSON API under ``/api/v1``
(:mod:`.api`, OpenAPI at ``/api/v1/openapi.json``), the pages (:mod:`.pages`, Jinja2
autoescaped, scripts as files under ``static/``), ``/metrics`` (:mod:`.metrics`), access
by tokens and scopes (:mod:`.auth`, :mod:`.access`). Needs the ``serve`` extra
(``pip install 'byokctl[serve]'``). See ``docs/serve.md``.
"""

from __future__ import annotations

from .server import access_for, is_loopback, open_state, run

__all__ = ["access_for", "is_loopback", "open_state", "run"]
