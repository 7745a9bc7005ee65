"""The runtime half of the store: provider health, failure episodes, notifications, credits.

What only runtime knows lives beside the configuration, in the same database, behind its
own small interface (:class:`RuntimeStore`) so that plans, drift and the configuration
contract never see it. Every method is one transaction on any backend; the decisions
that several processes must agree on are made *inside* that transaction:

- :meth:`RuntimeStore.record_failure` moves a provider's health (ok → open breaker, or
  → sticky) and opens at most one episode per workspace and provider (a unique index
  on open episodes is the arbiter);
- :meth:`RuntimeStore.claim_probe` grants the one half-open probe after a cooldown;
- :meth:`RuntimeStore.claim_notification` decides which process sends an episode's
  e-mail (a lease, so a crashed sender's episode is picked up again);
  :meth:`RuntimeStore.claim_low_balance` does the same for a low-balance episode's
  "running low" e-mail (``byokctl probe``).

Every write that changes where a workspace's traffic goes bumps the *runtime version*;
resolvers poll :meth:`RuntimeStore.versions` (the configuration serial and that
version, one cheap read) and reload only when either moved; on PostgreSQL each bump is
also announced (``NOTIFY``), so listening resolvers reload at once.

Times are POSIX seconds (``float``) at this interface so that callers can inject a
clock; backends store them in their native timestamp type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol, runtime_checkable

#: A provider's health for one credential fingerprint. ``ok`` may still count recent
#: transient failures; ``open`` is a tripped breaker (``open_until`` then the probe);
#: ``sticky`` stays until the credentials change.
HealthStatus = Literal["ok", "open", "sticky"]

#: How credit usage can be grouped in time.
Period = Literal["day", "month"]

#: The longest Retry-After honoured: a provider (or a proxy) may send any number, and a
#: breaker open for years is a bug, not caution; an hour later the probe asks again.
MAX_RETRY_AFTER_S: Final = 3600.0


def capped_retry_after(value: float | None) -> float | None:
    """``value`` within ``[0, MAX_RETRY_AFTER_S]``; ``None`` for none or a non-number (NaN).

    The one rule for a provider's Retry-After, used by the store's breaker decisions
    and by the resolver when it reads the header.
    """
    if value is None or value != value:  # noqa: PLR0124 - NaN is the one value unequal to itself
        return None
    return min(max(float(value), 0.0), MAX_RETRY_AFTER_S)


@dataclass(frozen=True)
class BreakerPolicy:
    """When transient failures trip the breaker, and for how long.

    ``threshold`` failures within ``window`` seconds (a fixed window that starts at the
    first failure) open the breaker for ``cooldown`` seconds (longer if the provider's
    Retry-After says so); then one probe is let through, and if it neither succeeds nor
    fails within ``probe_timeout`` seconds another probe may go.
    """

    threshold: int = 5
    window: float = 60.0
    cooldown: float = 30.0
    probe_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError("the breaker threshold must be at least 1")
        if min(self.window, self.cooldown, self.probe_timeout) <= 0:
            raise ValueError("breaker window, cooldown and probe timeout must be positive")


#: The one sticky outcome a successful probe never clears (``return: on_recovery``): a
#: key the provider refused stays refused until it is replaced.
NEVER_RECOVERS: Final = "invalid_key"


@dataclass(frozen=True)
class HealthRecord:
    """A provider's runtime health in one workspace, for one credential fingerprint."""

    workspace: str
    provider: str
    fingerprint: str
    status: HealthStatus
    #: The last failure's outcome (``invalid_key``, ``outage`` …); ``None`` if none.
    outcome: str | None
    failures: int
    window_started: float | None
    open_until: float | None
    probe_until: float | None
    #: When the current status began.
    since: float
    episode_id: int | None


@dataclass(frozen=True)
class Failure:
    """A classified failure to record (never the provider's raw text: ``detail`` is sanitized)."""

    workspace: str
    provider: str
    fingerprint: str
    outcome: str
    sticky: bool
    detail: str
    retry_after: float | None = None
    #: True when this was the breaker's half-open probe: only a probe's failure
    #: re-opens the breaker (requests already in flight when it opened do not).
    probe: bool = False


@dataclass(frozen=True)
class HealthChange:
    """What a health write did.

    ``changed`` is true when the route changed (and the runtime version was bumped);
    ``episode_opened`` is the id of an episode this call opened, if any.
    """

    health: HealthRecord | None
    changed: bool
    episode_opened: int | None = None


@dataclass(frozen=True)
class ProbeGrant:
    """The answer to a probe claim: granted, or when to ask again."""

    granted: bool
    retry_at: float


@dataclass(frozen=True)
class Episode:
    """One failure episode: from the failure that moved traffic to Neo until it ended."""

    id: int
    workspace: str
    provider: str
    fingerprint: str
    outcome: str
    sticky: bool
    detail: str
    opened_at: float
    closed_at: float | None
    close_reason: str | None
    notified_at: float | None
    notify_attempts: int
    notify_error: str | None


@dataclass(frozen=True)
class CreditEntry:
    """Aggregated ledger entry: ``actions`` actions costing ``credits`` in total, at ``at``.

    Both may be negative: a BYOK action that failed and was served by Neo is refunded.
    """

    workspace: str
    feature: str
    route: str
    actions: int
    credits: int
    at: float


@dataclass(frozen=True)
class CreditUsage:
    """A sum over the ledger: per workspace, feature and route (and period, if grouped)."""

    workspace: str
    feature: str
    route: str
    actions: int
    credits: int
    #: ``YYYY-MM-DD`` or ``YYYY-MM`` when grouped by period, else ``None``.
    period: str | None = None


class RuntimeStore(Protocol):
    """Runtime state shared by every resolver process (see the module docstring)."""

    @property
    def url(self) -> str:
        """The store's URL, without credentials."""
        ...

    def fingerprint_key(self) -> bytes:
        """The store-wide random key credential fingerprints are computed with."""
        ...

    def versions(self) -> tuple[int, int]:
        """``(configuration serial, runtime version)`` in one cheap read."""
        ...

    def health(self) -> list[HealthRecord]:
        """Every health record."""
        ...

    def record_failure(
        self, failure: Failure, *, now: float, policy: BreakerPolicy
    ) -> HealthChange:
        """Count a failure; trip the breaker or go sticky; open at most one episode.

        A failure for another fingerprint than the record's changes nothing (a late
        report from replaced credentials must not wipe the new ones' state; only
        :meth:`reset` replaces a record when credentials change). A sticky failure
        while a transient episode is open closes that one (``escalated``) and opens a
        sticky one. ``retry_after`` is capped at one hour.
        """
        ...

    def record_success(
        self,
        workspace: str,
        provider: str,
        fingerprint: str,
        *,
        now: float,
        recover_sticky: bool = False,
    ) -> HealthChange:
        """A success for this fingerprint closes an open breaker and its episode (``recovered``).

        A sticky record is left alone: only new credentials clear it; with
        ``recover_sticky`` (``spec.fallback.return: on_recovery``) it closes too, unless
        its outcome is ``invalid_key``.
        """
        ...

    def claim_probe(
        self,
        workspace: str,
        provider: str,
        fingerprint: str,
        *,
        now: float,
        lease: float,
        wait: float | None = None,
        sticky_after: float | None = None,
    ) -> ProbeGrant:
        """Grant the one probe of an open breaker whose cooldown has passed (compare-and-set).

        ``sticky_after`` (``return: on_recovery``): a sticky record other than
        ``invalid_key`` is probed too, ``sticky_after`` seconds after it began.

        ``wait``: wait at most about this long for another writer's lock (the resolver
        asks on an application thread); when the store is busy that long the answer is
        a refusal (``ProbeGrant(False, now)``: ask again later), not an error.
        ``None`` waits as long as any other call.
        """
        ...

    def reset(
        self, workspace: str, provider: str, *, fingerprint: str | None, reason: str, now: float
    ) -> bool:
        """Forget the health record (only if it has ``fingerprint``, when given); close its episode.

        Returns whether anything changed. Used when credentials change, a provider is
        removed, or an operator clears a failure.
        """
        ...

    def episodes(self, *, workspace: str | None = None, open_only: bool = True) -> list[Episode]:
        """Episodes, newest first."""
        ...

    def pending_notifications(self, *, now: float) -> list[Episode]:
        """Open episodes whose e-mail is not sent yet and may be attempted now."""
        ...

    def claim_notification(self, episode_id: int, *, now: float, lease: float) -> bool:
        """Become this episode's one e-mail sender for ``lease`` seconds (compare-and-set)."""
        ...

    def record_notification(
        self, episode_id: int, recipients: Sequence[str], *, now: float
    ) -> None:
        """Record that the e-mail went out (to each recipient)."""
        ...

    def record_notification_failure(
        self, episode_id: int, error: str, *, now: float, retry_at: float
    ) -> None:
        """Release the claim after a failed send; another attempt may start at ``retry_at``."""
        ...

    def claim_low_balance(
        self, workspace: str, provider: str, fingerprint: str, *, now: float, lease: float
    ) -> bool:
        """Become the one sender of a low-balance episode's "running low" e-mail.

        An episode is a workspace's provider with credentials ``fingerprint`` seen below
        its ``low_balance``. True for exactly one caller (across processes and hosts) per
        episode, until it releases the claim or ``lease`` seconds pass without
        :meth:`record_low_balance_sent`; other credentials' episodes of the provider end.
        """
        ...

    def record_low_balance_sent(
        self, workspace: str, provider: str, fingerprint: str, *, now: float
    ) -> None:
        """The claimed e-mail went out: no other until :meth:`end_low_balance`."""
        ...

    def release_low_balance(
        self, workspace: str, provider: str, fingerprint: str, error: str
    ) -> None:
        """Give the claim back after a failed send: the next probe claims it again."""
        ...

    def end_low_balance(self, workspace: str, provider: str) -> bool:
        """The balance is at or above the threshold again: the episode ended (whether one had)."""
        ...

    def append_credits(self, entries: Sequence[CreditEntry]) -> None:
        """Append ledger entries in one transaction."""
        ...

    def charge_neo_capped(self, entry: CreditEntry, *, cap: int, since: float) -> int | None:
        """Append ``entry`` if the workspace's credits on its route since ``since`` fit ``cap``.

        Atomic across processes and hosts. Returns the credits spent since ``since``
        including this entry, or ``None`` (nothing written) when it would pass ``cap``.
        """
        ...

    def credit_usage(
        self,
        *,
        workspace: str | None = None,
        since: float | None = None,
        until: float | None = None,
        period: Period | None = None,
    ) -> list[CreditUsage]:
        """Sum the ledger per workspace, feature and route (and period), ``since <= at < until``."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


class ChangeFeed(Protocol):
    """Wake-ups when the store announces a change (one waiting thread at a time)."""

    @property
    def connected(self) -> bool:
        """Whether announcements can arrive now (else only polling finds changes)."""
        ...

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s; ``True`` if a change was announced or may have been missed."""
        ...

    def interrupt(self) -> None:
        """Make a :meth:`wait` in progress return now (from any thread)."""
        ...

    def reconnect(self) -> None:
        """Replace the connection at the next :meth:`wait` (it may be silently dead)."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


@runtime_checkable
class ChangeSource(Protocol):
    """A runtime store that can announce changes (see :class:`ChangeFeed`)."""

    def listen(self) -> ChangeFeed:
        """A new feed on its own connection."""
        ...
