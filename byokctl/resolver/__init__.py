"""The runtime resolver: which provider (or Neo) serves each AI action, and what it costs.

The application calls it on every AI action; it needs no CLI dependency (no click, no
rich). A resolve is a dict lookup in a table kept current by a background thread::

    from byokctl.resolver import Resolver

    resolver = Resolver.from_url("sqlite:////srv/byok/state.db")  # BYOK_MASTER_KEY from env
    route = resolver.resolve("acme-support", "assist")   # Route(provider, model, base_url, …)
    try:
        answer = call_model(route)                         # route.api_key() where needed
        resolver.report(route, "ok")
    except Exception as exc:
        answer = call_model(resolver.fallback(route, resolver.report(route, exc)))

    # or both in one call: the user never sees the provider's failure
    answer = resolver.run_with_fallback("acme-support", "summarize", call_model)
    resolver.close()                                      # flushes the credit buffer

See ``docs/resolver.md`` for reasons, costs, the breaker, e-mails and what a crash loses.
"""

from __future__ import annotations

from byokctl.resolver._resolver import Resolver
from byokctl.resolver._route import (
    BYOK_COST,
    DEFAULT_NEO_COSTS,
    FEATURES,
    ProviderResponse,
    Route,
)
from byokctl.resolver._status import (
    WorkspaceStatus,
    credits_to_dict,
    episode_to_dict,
    neo_caps,
)
from byokctl.resolver.mail import SMTP_FROM_ENV, SMTP_URL_ENV, SmtpConfig
from byokctl.store.runtime import BreakerPolicy, CreditUsage, Episode

__all__ = [
    "BYOK_COST",
    "DEFAULT_NEO_COSTS",
    "FEATURES",
    "SMTP_FROM_ENV",
    "SMTP_URL_ENV",
    "BreakerPolicy",
    "CreditUsage",
    "Episode",
    "ProviderResponse",
    "Resolver",
    "Route",
    "SmtpConfig",
    "WorkspaceStatus",
    "credits_to_dict",
    "episode_to_dict",
    "neo_caps",
]
