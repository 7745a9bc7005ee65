"""The resolver's settings, as one frozen value.

:meth:`~byokctl.resolver.Resolver.from_url` takes them as keyword arguments (its public
signature) and builds a :class:`ResolverOptions`; the constructor, for stores opened by
the caller, takes the value itself. Checked once, here: an invalid combination is a
:class:`ValueError` before any store is touched.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from byokctl.model import NEO
from byokctl.store.runtime import BreakerPolicy

from ._route import DEFAULT_NEO_COSTS, canonical_feature
from ._table import Neo
from .mail import SmtpConfig

#: Without a successful store read for this long, every action goes to Neo.
DEFAULT_MAX_STALENESS_S: Final = 60.0


@dataclass(frozen=True)
class ResolverOptions:
    """How a :class:`~byokctl.resolver.Resolver` behaves (every field has a default).

    - ``clock``: POSIX seconds (health times, leases, the ledger); tests inject their own.
    - ``refresh_interval``: the propagation bound: the store's versions are polled that
      often (default 1 s). ``None`` starts no threads: call ``refresh``, ``flush`` and
      ``deliver_notifications`` yourself (tests, one-shot commands); ``max_staleness`` is
      then not enforced.
    - ``flush_interval``: how often buffered credit charges are written (default 1 s).
    - ``breaker``: the circuit breaker's threshold, window, cooldown and probe timeout.
    - ``neo_costs``: credits per feature on Neo, over :data:`DEFAULT_NEO_COSTS`.
    - ``neo_model``, ``neo_base_url``: how Neo is described in routes.
    - ``env``: where ``BYOK_*`` settings are read (default: a copy of ``os.environ``).
    - ``max_staleness``: seconds without a successful store read after which every action
      goes to Neo (``store_unavailable``); ``None`` serves the last routes for as long as
      the store is away. Must exceed ``refresh_interval``.
    - ``listen``: wait for the store's change announcements where the backend has them
      (PostgreSQL ``LISTEN``), on a connection of its own (default on).
    - ``notify``: ``False`` never sends e-mail, whatever ``smtp``, ``env`` or a mailer say
      (the ``status`` and ``resolve`` commands only look).
    - ``smtp``: where e-mails go; ``None`` reads ``BYOK_SMTP_URL``/``BYOK_SMTP_FROM``
      from ``env`` (no URL there: this process sends none; episodes wait for one that can).
    """

    clock: Callable[[], float] = time.time
    refresh_interval: float | None = 1.0
    flush_interval: float = 1.0
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    neo_costs: Mapping[str, int] = field(default_factory=dict)
    neo_model: str = NEO
    neo_base_url: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    max_staleness: float | None = DEFAULT_MAX_STALENESS_S
    listen: bool = True
    notify: bool = True
    smtp: SmtpConfig | None = None
    #: Neo's description and its costs per feature (derived from the fields above).
    neo: Neo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        interval = self.refresh_interval
        if interval is not None and interval <= 0:
            raise ValueError("refresh_interval must be positive (or None for manual refresh)")
        staleness = self.max_staleness
        if staleness is not None and interval is not None and staleness <= interval:
            raise ValueError("max_staleness must be longer than refresh_interval")
        costs = {**DEFAULT_NEO_COSTS, **self.neo_costs}
        for feature in costs:
            canonical_feature(feature)
        # Frozen copies: the value must not change under a running resolver.
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        object.__setattr__(self, "neo_costs", MappingProxyType(costs))
        object.__setattr__(self, "neo", Neo(self.neo_costs, self.neo_model, self.neo_base_url))

    @property
    def staleness_bound(self) -> float | None:
        """``max_staleness`` where it is enforced: only while a thread keeps routes fresh."""
        return self.max_staleness if self.refresh_interval is not None else None

    def smtp_config(self) -> SmtpConfig | None:
        """Where this process sends e-mail: ``smtp``, else ``BYOK_SMTP_URL``; ``None``: nowhere."""
        if not self.notify:
            return None
        return self.smtp if self.smtp is not None else SmtpConfig.from_env(self.env)
