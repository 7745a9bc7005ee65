"""A loopback server that speaks the seven providers' APIs, for tests, demos and offline runs.

::

    with Sandbox(port=0, latency=0.1) as sb:
        sb.base_urls()   # {"BYOK_OPENAI_BASE_URL": "http://127.0.0.1:PORT/openai/v1", ...}
        sb.requests      # [LoggedRequest(method, path, provider, key_fingerprint, status)]

The API key chooses the behaviour (:data:`MARKERS`): ``sk-invalid-1`` is a revoked key,
``sk-ratelimited`` is rate limited, ``sk-anything`` is valid. ``docs/sandbox.md`` has the
full table and every provider's answers.
"""

from __future__ import annotations

from byokctl.catalog import SANDBOX_URL_ENV
from byokctl.sandbox._api import RETRY_AFTER_SECONDS
from byokctl.sandbox._markers import (
    FLAKY_FAILURES,
    MARKERS,
    Behaviour,
    Marker,
    behaviour_for,
    marker_table,
)
from byokctl.sandbox._server import (
    PROVIDER_APIS,
    LoggedRequest,
    Sandbox,
    base_urls_for,
)

__all__ = [
    "FLAKY_FAILURES",
    "MARKERS",
    "PROVIDER_APIS",
    "RETRY_AFTER_SECONDS",
    "SANDBOX_URL_ENV",
    "Behaviour",
    "LoggedRequest",
    "Marker",
    "Sandbox",
    "base_urls_for",
    "behaviour_for",
    "marker_table",
]
