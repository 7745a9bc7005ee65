"""The :class:`Resolver`: routes from a cached table, outcomes to the store, e-mails, credits.

Threads: the application's threads call :meth:`Resolver.resolve` and
:meth:`Resolver.report`; one background thread polls the store's versions every
``refresh_interval`` (reloading the table when they moved) and flushes the credit
buffer; one more thread, only when SMTP is configured, sends failure e-mails so that a
slow mail server never delays an AI action.

The table is replaced, never mutated: a reader sees the old table or the new one.
Health changes this process causes are patched into its table at once; changes made
elsewhere arrive with the next poll, so every resolver agrees within
``refresh_interval`` seconds (plus one store read). On a store that announces changes
(PostgreSQL ``LISTEN/NOTIFY``, :class:`~byokctl.store.runtime.ChangeSource`) the same
thread waits on the feed and reloads as soon as a change is announced; the poll stays
as the safety net for a missed announcement or a lost connection.

Store outages: the first failed store call starts an outage (logged once, as a
warning); meanwhile routes come from the last table, failures reported are dropped
(not queued: a failure replayed later would open an episode for a moment long past,
and a provider that is still failing fails again after the outage), credit charges
are kept in memory, and nothing else touches the store until a poll succeeds (logged
once, as info). When the last successful read is older than ``max_staleness`` every
action goes to Neo with reason ``store_unavailable`` (fail closed).
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import re
import smtplib
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from byokctl.errors import StoreError
from byokctl.model import NEO, LiveState, redact_secret
from byokctl.store import MasterKey, Store, load_master_key, load_next_keys, open_store
from byokctl.store._health import capped_retry_after
from byokctl.store.runtime import (
    BreakerPolicy,
    ChangeFeed,
    ChangeSource,
    CreditUsage,
    Episode,
    Failure,
    HealthChange,
    HealthRecord,
    Period,
    RuntimeStore,
    open_runtime_store,
)

from . import _notify
from ._ledger import CreditBuffer
from ._route import (
    BYOK,
    DEFAULT_NEO_COSTS,
    FEATURES,
    PROVIDER_FAILED,
    STORE_ERROR,
    STORE_UNAVAILABLE,
    UNKNOWN_WORKSPACE,
    ProviderResponse,
    Route,
    canonical_feature,
)
from ._table import (
    Entry,
    HealthKey,
    Neo,
    all_fingerprints,
    build_table,
    neo_route,
    store_error_key,
    workspace_entries,
)

if TYPE_CHECKING:
    from byokctl.verify.classify import Classification, Outcome

_log = logging.getLogger("byokctl.resolver")
T = TypeVar("T")
_monotonic = time.monotonic

#: Without a successful store read for this long, every action goes to Neo.
DEFAULT_MAX_STALENESS_S = 60.0

#: How long one process may hold an episode's e-mail before another may try it.
NOTIFY_LEASE_S = 60.0
#: First retry of a failed e-mail after this many seconds, doubling up to the cap.
NOTIFY_RETRY_S = 30.0
NOTIFY_RETRY_CAP_S = 3600.0
#: The e-mail thread looks for episodes opened by other processes this often.
NOTIFY_POLL_S = 5.0
#: ``resolve`` waits at most this long for the store when it asks for a breaker's probe
#: (a busy store means "not now": the route stays Neo and it asks again a second later).
PROBE_CLAIM_WAIT_S = 0.05

#: A workspace name (the schema's slug): only such unknown names are charged to the ledger.
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class WorkspaceStatus:
    """Where one workspace's AI traffic goes now, why, since when, and its open episodes."""

    workspace: str
    enabled: str | None
    provider: str
    model: str
    reason: str
    since: float
    episodes: tuple[Episode, ...] = field(default=())


@dataclass(frozen=True)
class _Snapshot:
    state: LiveState
    version: int
    fingerprints: Mapping[HealthKey, str]
    health: Mapping[HealthKey, HealthRecord]


def _classify(provider: str, outcome: object, key: str | None) -> Classification:
    # Imported on first use: importing the verify package pulls httpx (and with it the
    # CLI's click and rich), which an application that only resolves never needs.
    from byokctl.verify.classify import (  # noqa: PLC0415
        Classification,
        Outcome,
        classify_exception,
        classify_response,
        meaning,
    )

    if isinstance(outcome, Classification):
        return outcome
    if isinstance(outcome, ProviderResponse):
        body = outcome.body.encode() if isinstance(outcome.body, str) else bytes(outcome.body)
        # The answer is untrusted: the key it was sent with is redacted before it is read.
        return classify_response(provider, outcome.status, outcome.headers, body, key=key)
    if isinstance(outcome, BaseException):
        return classify_exception(provider, outcome, key=key)
    value = Outcome(str(outcome))  # a valid outcome string: checked by _check_outcome
    return Classification(value, meaning(value))


_ACCEPTED = (
    "Classification, Outcome, an outcome string such as 'ok', ProviderResponse, or an exception"
)


def _check_outcome(outcome: object) -> None:
    """A :class:`TypeError` / :class:`ValueError` for what ``report`` cannot take (a bug)."""
    from byokctl.verify.classify import Classification, Outcome  # noqa: PLC0415

    if isinstance(outcome, (Classification, BaseException)):
        return
    if isinstance(outcome, ProviderResponse):
        status = outcome.status
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError(
                f"ProviderResponse.status must be an int HTTP status, not {type(status).__name__}"
            )
        if not isinstance(outcome.body, (bytes, bytearray, str)):
            raise TypeError(
                f"ProviderResponse.body must be bytes, not {type(outcome.body).__name__}"
            )
        return
    if isinstance(outcome, str):
        if outcome not in Outcome._value2member_map_:
            values = ", ".join(o.value for o in Outcome)
            raise ValueError(f"cannot report {outcome!r}: an outcome string is one of {values}")
        return
    raise TypeError(f"cannot report {type(outcome).__name__}: report takes {_ACCEPTED}")


def _safe(c: Classification, key: str | None) -> Classification:
    """``c`` with a sanitized detail and a capped Retry-After (an app may have built it).

    ``key`` (the route's) is redacted from the detail in all its encodings first.
    """
    from byokctl.verify.classify import sanitize  # noqa: PLC0415

    detail = c.detail if isinstance(c.detail, str) else str(c.detail)
    detail = sanitize(redact_secret(detail, key) if key else detail)
    raw: object = c.retry_after
    ok = isinstance(raw, (int, float)) and not isinstance(raw, bool)
    retry = capped_retry_after(float(raw)) if ok else None  # type: ignore[arg-type]
    if detail == c.detail and retry == c.retry_after:
        return c
    return replace(c, detail=detail, retry_after=retry)


def _chargeable(workspace: object) -> bool:
    """Whether an unknown workspace name may go to the ledger: only a valid slug can."""
    return isinstance(workspace, str) and _SLUG.fullmatch(workspace) is not None


def _close_at_exit(ref: weakref.ReferenceType[Resolver]) -> None:
    """At interpreter exit: flush a resolver the application never closed."""
    resolver = ref()
    if resolver is not None:
        resolver.close()


class Resolver:
    """Decides, for every AI action, whether the workspace's provider or Neo serves it.

    Use :meth:`from_url` (or pass stores you opened), then :meth:`resolve` per action and
    :meth:`report` per outcome, or :meth:`run_with_fallback` for both in one call;
    :meth:`close` at exit flushes the credit buffer. Thread-safe.
    """

    def __init__(
        self,
        store: Store,
        runtime: RuntimeStore,
        *,
        smtp: _notify.SmtpConfig | None = None,
        clock: Callable[[], float] = time.time,
        refresh_interval: float | None = 1.0,
        flush_interval: float = 1.0,
        breaker: BreakerPolicy | None = None,
        neo_costs: Mapping[str, int] | None = None,
        neo_model: str = NEO,
        neo_base_url: str | None = None,
        env: Mapping[str, str] | None = None,
        owns_stores: bool = False,
        max_staleness: float | None = DEFAULT_MAX_STALENESS_S,
        listen: bool = True,
        notify: bool = True,
    ) -> None:
        """Load the table from the stores; start the background threads.

        ``refresh_interval`` is the propagation bound: the store's versions are polled
        that often (default 1 s). ``refresh_interval=None`` starts no threads: call
        :meth:`refresh`, :meth:`flush` and :meth:`deliver_notifications` yourself
        (tests, one-shot commands); the staleness bound is then not enforced.
        ``listen`` (default on) waits for the store's change announcements where the
        backend has them (PostgreSQL), on a connection of its own.
        ``max_staleness``: seconds without a successful store read after which every
        action goes to Neo (``store_unavailable``); ``None`` serves the last routes
        for as long as the store is away. Must exceed ``refresh_interval``.
        ``smtp=None`` reads ``BYOK_SMTP_URL``/``BYOK_SMTP_FROM`` from ``env``; without an
        SMTP URL no e-mail is sent by this process (episodes wait for one that can).
        ``notify=False`` never sends e-mail, whatever ``smtp`` and ``env`` say (the
        ``status`` and ``resolve`` commands only look).

        An ``atexit`` hook (holding only a weak reference) closes a resolver the
        application forgot to close, so buffered credits reach the ledger on a normal
        exit; :meth:`close` removes it.
        """
        if refresh_interval is not None and refresh_interval <= 0:
            raise ValueError("refresh_interval must be positive (or None for manual refresh)")
        if (
            max_staleness is not None
            and refresh_interval is not None
            and max_staleness <= refresh_interval
        ):
            raise ValueError("max_staleness must be longer than refresh_interval")
        env = os.environ if env is None else env
        costs = {**DEFAULT_NEO_COSTS, **(neo_costs or {})}
        for feature in costs:
            canonical_feature(feature)
        self._store = store
        self._runtime = runtime
        self._owns_stores = owns_stores
        self._clock = clock
        self._env = dict(env)
        self._smtp = (
            None if not notify else smtp if smtp is not None else _notify.SmtpConfig.from_env(env)
        )
        self._breaker = breaker or BreakerPolicy()
        self._neo = Neo(costs, neo_model, neo_base_url)
        self._fp_key = runtime.fingerprint_key()
        self.refresh_interval = refresh_interval
        self._flush_interval = flush_interval
        # Enforced only while a background thread keeps the table fresh.
        self._max_staleness = max_staleness if refresh_interval is not None else None
        self._fresh_until = float("inf")
        #: monotonic time the current store outage began; None while the store answers
        self._down_since: float | None = None
        self._outage_lock = threading.Lock()
        self._ledger = CreditBuffer(runtime, clock)
        self._charge = self._ledger.append
        self._install_lock = threading.Lock()
        self._table: dict[str, dict[str, Entry]] = {}
        self._snap: _Snapshot | None = None
        self._stop = threading.Event()
        self._wake_notifier = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closed = False
        #: A reload's reconcile failed: retry it on the next refresh even if nothing moved.
        self._reconcile_pending = False
        #: Unexpected errors already logged with a traceback (each kind once).
        self._logged: set[str] = set()
        #: Unreadable workspace rows already logged: (workspace, rows digest).
        self._logged_unreadable: set[tuple[str, str]] = set()
        self._rejected_logged = 0
        # LISTEN before the first load: a change committed in between is then announced
        # (and reloaded) rather than missed until the next poll.
        self._feed: ChangeFeed | None = None
        if refresh_interval is not None and listen and isinstance(runtime, ChangeSource):
            self._feed = runtime.listen()
        try:
            self.refresh()
        except BaseException:
            if self._feed is not None:
                self._feed.close()
            raise
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)
        if refresh_interval is not None:
            self._start(self._background, "byokctl-resolver-refresh", refresh_interval)
            if self._smtp is not None:
                self._start(self._notifier, "byokctl-resolver-notify", NOTIFY_POLL_S)

    @classmethod
    def from_url(
        cls,
        store_url: str,
        *,
        master_key: MasterKey | None = None,
        extra_keys: Iterable[MasterKey] = (),
        smtp: _notify.SmtpConfig | None = None,
        clock: Callable[[], float] = time.time,
        refresh_interval: float | None = 1.0,
        flush_interval: float = 1.0,
        breaker: BreakerPolicy | None = None,
        neo_costs: Mapping[str, int] | None = None,
        neo_model: str = NEO,
        neo_base_url: str | None = None,
        env: Mapping[str, str] | None = None,
        max_staleness: float | None = DEFAULT_MAX_STALENESS_S,
        listen: bool = True,
        notify: bool = True,
    ) -> Resolver:
        """Open the store at ``store_url`` (``sqlite:///…`` or ``postgresql://…``).

        ``master_key`` defaults to ``BYOK_MASTER_KEY``/``BYOK_MASTER_KEY_FILE`` from
        ``env``; ``BYOK_MASTER_KEY_NEXT``/``_NEXT_FILE`` adds a rotation's next key.
        The resolver owns the stores it opens and closes them in :meth:`close`.
        The other options are the constructor's.
        """
        env = os.environ if env is None else env
        if master_key is None:
            master_key = load_master_key(env, store_url=store_url, byok_dir=Path(".byok")).key
        # A rotation's next key (BYOK_MASTER_KEY_NEXT) is accepted for decryption, so a
        # running resolver keeps its credentials through `byokctl store rotate-key`.
        extra_keys = (*extra_keys, *load_next_keys(env))
        store = open_store(store_url, master_key=master_key, extra_keys=extra_keys)
        try:
            runtime = open_runtime_store(store_url)
        except BaseException:
            store.close()
            raise
        try:
            return cls(
                store,
                runtime,
                smtp=smtp,
                clock=clock,
                refresh_interval=refresh_interval,
                flush_interval=flush_interval,
                breaker=breaker,
                neo_costs=neo_costs,
                neo_model=neo_model,
                neo_base_url=neo_base_url,
                env=env,
                owns_stores=True,
                max_staleness=max_staleness,
                listen=listen,
                notify=notify,
            )
        except BaseException:
            runtime.close()
            store.close()
            raise

    # -- the hot path ---------------------------------------------------------------

    def resolve(self, workspace: str, feature: str) -> Route:
        """The route for one AI action of ``workspace``; its cost goes to the ledger.

        ``feature`` is ``assist``, ``summarize`` or ``auto_reply`` (``auto-reply`` too);
        another is a :class:`ValueError`. Never raises for store trouble: a store that
        cannot be reached leaves the last known routes in place, for up to
        ``max_staleness`` seconds; then the route is Neo (``store_unavailable``).
        """
        if _monotonic() > self._fresh_until:
            return self._resolve_unavailable(workspace, feature)
        try:
            entry = self._table[workspace][feature]
        except KeyError:
            return self._resolve_miss(workspace, feature)
        if entry.breaker is not None:
            return self._resolve_open(entry)
        self._charge(entry.charge)
        return entry.route

    def peek(self, workspace: str, feature: str) -> Route:
        """The route the next action would take, without charging it or claiming a probe."""
        name = canonical_feature(feature)
        if _monotonic() > self._fresh_until:
            return neo_route(workspace, name, STORE_UNAVAILABLE, self._neo)
        entry = self._table.get(workspace, {}).get(name)
        if entry is None:
            return neo_route(workspace, name, UNKNOWN_WORKSPACE, self._neo)
        return entry.route

    def _resolve_miss(self, workspace: str, feature: str) -> Route:
        name = canonical_feature(feature)  # ValueError for an unknown feature
        entries = self._table.get(workspace)
        if entries is not None:
            return self.resolve(workspace, name)
        route = neo_route(workspace, name, UNKNOWN_WORKSPACE, self._neo)
        if _chargeable(workspace):
            self._charge((workspace, name, NEO, route.cost, 1))
        return route

    def _resolve_unavailable(self, workspace: str, feature: str) -> Route:
        route = neo_route(workspace, canonical_feature(feature), STORE_UNAVAILABLE, self._neo)
        if workspace in self._table or _chargeable(workspace):
            self._charge((workspace, route.feature, NEO, route.cost, 1))
        return route

    def _resolve_open(self, entry: Entry) -> Route:
        breaker = entry.breaker
        assert breaker is not None
        now = self._clock()
        if (
            now < breaker.retry_at
            or self._down_since is not None  # no probe can be granted without the store
            or not breaker.lock.acquire(blocking=False)
        ):
            self._charge(entry.charge)
            return entry.route
        try:
            # The cooldown is over: one process in the whole fleet gets the probe.
            # On the caller's thread, so bounded: a busy store is a refusal after
            # PROBE_CLAIM_WAIT_S (ask again later), never the store's 30 s busy timeout.
            grant = self._runtime.claim_probe(
                breaker.workspace,
                breaker.provider,
                breaker.fingerprint,
                now=now,
                lease=self._breaker.probe_timeout,
                wait=PROBE_CLAIM_WAIT_S,
            )
        except StoreError as exc:
            self._store_failed(exc)
            breaker.retry_at = now + 1.0
            self._charge(entry.charge)
            return entry.route
        finally:
            breaker.lock.release()
        # A refusal with no later time means our view is stale: wait for the refresh.
        breaker.retry_at = max(grant.retry_at, now + (self.refresh_interval or 1.0))
        if not grant.granted:
            self._charge(entry.charge)
            return entry.route
        probe = breaker.probe_routes[entry.route.feature]
        self._charge((probe.workspace, probe.feature, probe.provider, probe.cost, 1))
        return probe

    # -- outcomes -------------------------------------------------------------------

    def report(
        self,
        route: Route,
        outcome: Classification | Outcome | str | ProviderResponse | BaseException,
    ) -> Classification | None:
        """Report how the request on ``route`` went; return its classification if it failed.

        ``outcome`` is ``"ok"`` / ``Outcome.OK`` for success, a
        :class:`~byokctl.verify.classify.Classification` or ``Outcome``, a
        :class:`ProviderResponse` (status, body, headers: classified by body), or the
        exception the request raised (httpx or the official SDKs). A failure on a
        provider route refunds its charge (use :meth:`fallback` for the Neo route) and
        updates the shared health: sticky failures route the workspace to Neo until
        its credentials change; transient ones count toward the circuit breaker.
        Never raises for store trouble: while the store is unavailable the failure is
        classified and returned but not recorded (dropped; the outage is logged once);
        nor for bad data (a store or classification error is logged once, the
        classification returned). A report for credentials the workspace no longer has
        (a request that was in flight across a key change) is not recorded either.
        The returned (and recorded) ``detail`` is always sanitized, also for a
        ``Classification`` the application built itself.

        Raises :class:`TypeError` for an ``outcome`` of another type (``None``, an
        ``int``, ``bytes`` …; a :class:`ProviderResponse` whose ``status`` is not an
        ``int``) and :class:`ValueError` for a string that is not an ``Outcome`` value:
        those are programming errors, not provider failures.
        """
        if not isinstance(route, Route):
            raise TypeError(f"report takes the Route from resolve, not {type(route).__name__}")
        _check_outcome(outcome)
        if route.provider == NEO or route.fingerprint is None:
            return None
        if outcome == "ok" or (
            isinstance(outcome, ProviderResponse) and 200 <= outcome.status < 300
        ):
            self._guarded("record a success", self._report_success, route)
            return None
        try:
            key = route.api_key()
            c = _safe(_classify(route.provider, outcome, key), key)
        except Exception:
            self._log_unexpected("classify a failure")
            from byokctl.verify.classify import Classification, Outcome  # noqa: PLC0415

            c = Classification(Outcome.UNEXPECTED, "the failure could not be classified")
        if c.outcome == "ok":
            self._guarded("record a success", self._report_success, route)
            return None
        self._charge((route.workspace, route.feature, route.provider, -route.cost, -1))
        self._guarded("record a failure", self._report_failure, route, c)
        return c

    def _guarded(self, what: str, call: Callable[..., None], *args: object) -> None:
        """Run a store write for ``report``: never raise into the application."""
        try:
            call(*args)
        except StoreError as exc:
            self._store_failed(exc)
        except Exception:
            self._log_unexpected(what)

    def _log_unexpected(self, what: str) -> None:
        """Log an unexpected error once with its traceback (then at debug level)."""
        if what in self._logged:
            _log.debug("resolver: could not %s", what, exc_info=True)
            return
        self._logged.add(what)
        _log.exception("resolver: could not %s (logged once; later ones at debug level)", what)

    def _current(self, route: Route) -> tuple[_Snapshot | None, bool]:
        """The snapshot, and whether ``route`` carries the workspace's current credentials."""
        snap = self._snap
        if snap is None:
            return None, True
        return snap, snap.fingerprints.get((route.workspace, route.provider)) == route.fingerprint

    def _report_failure(self, route: Route, c: Classification) -> None:
        snap, current = self._current(route)
        if not current:
            return  # a late report for replaced credentials: the new ones' state stays
        known = snap.health.get((route.workspace, route.provider)) if snap is not None else None
        if known is not None and known.fingerprint == route.fingerprint:
            if known.status == "sticky":
                return  # already routed to Neo everywhere: nothing new to record
            if known.status == "open" and c.transient and not route.probe:
                return  # in flight when the breaker opened; it must not extend the cooldown
        if self._down_since is not None:
            return  # dropped, see the module docstring; never block the caller on the store
        failure = Failure(
            workspace=route.workspace,
            provider=route.provider,
            fingerprint=route.fingerprint or "",
            outcome=str(c.outcome),
            sticky=c.sticky,
            detail=c.detail,
            retry_after=c.retry_after,
            probe=route.probe,
        )
        change = self._runtime.record_failure(failure, now=self._clock(), policy=self._breaker)
        self._patch(route, change)
        if change.episode_opened is not None:
            _log.warning(
                "resolver: %s on %s failed (%s); Neo takes over",
                route.workspace,
                route.provider,
                c.outcome,
            )
            self._wake_notifier.set()

    def _report_success(self, route: Route) -> None:
        snap, current = self._current(route)
        if not current:
            return  # for replaced credentials: says nothing about the current ones
        known = snap.health.get((route.workspace, route.provider)) if snap else None
        if not route.probe and (known is None or known.status != "open"):
            return  # the common case: nothing to write
        if self._down_since is not None:
            return  # dropped: the next probe after the outage closes the breaker
        change = self._runtime.record_success(
            route.workspace, route.provider, route.fingerprint or "", now=self._clock()
        )
        self._patch(route, change)

    def fallback(self, route: Route, failure: Classification | None = None) -> Route:
        """The Neo route for the action that just failed on ``route`` (charged at Neo's cost)."""
        outcome = str(failure.outcome) if failure is not None else "unexpected"
        neo = neo_route(route.workspace, route.feature, f"{PROVIDER_FAILED}:{outcome}", self._neo)
        self._charge((neo.workspace, neo.feature, NEO, neo.cost, 1))
        return neo

    def run_with_fallback(self, workspace: str, feature: str, action: Callable[[Route], T]) -> T:
        """Run ``action`` on the workspace's route; if it raises there, report it and run it on Neo.

        ``action`` receives the route (provider, model, base URL, credentials) and makes
        the request, raising on failure as httpx (``raise_for_status``) and the official
        SDKs do. The user never sees a provider's failure; a failure on Neo propagates.
        """
        route = self.resolve(workspace, feature)
        if route.is_neo:
            return action(route)
        try:
            result = action(route)
        except Exception as exc:
            failure = self.report(route, exc)
            return action(self.fallback(route, failure))
        self.report(route, "ok")
        return result

    # -- keeping the table current ----------------------------------------------------

    def refresh(self) -> bool:
        """Reload from the store if its serial or runtime version moved; return whether it did.

        Raises :class:`~byokctl.errors.StoreError` if the store cannot be read (the
        background thread turns that into an outage, see the module docstring).
        """
        started = _monotonic()
        serial, version = self._runtime.versions()
        snap = self._snap
        if snap is not None and snap.state.serial == serial and snap.version == version:
            self._fresh(started)
            if self._reconcile_pending:
                self._reconcile(snap)
            return False
        fingerprints: Mapping[HealthKey, str]
        if snap is None or snap.state.serial != serial:
            state = self._store.read_state()
            fingerprints = all_fingerprints(state, self._fp_key)
        else:
            state, fingerprints = snap.state, snap.fingerprints
        health = {(h.workspace, h.provider): h for h in self._runtime.health()}
        new = _Snapshot(state, version, fingerprints, health)
        table = build_table(state, fingerprints, health, self._neo, self._env)
        with self._install_lock:
            self._snap, self._table = new, table
        self._fresh(started)
        self._log_unreadable(state)
        self._reconcile(new)
        return True

    def _log_unreadable(self, state: LiveState) -> None:
        """One warning per unreadable workspace's damage per process (not per reload)."""
        for ws in state.unreadable.values():
            seen = (ws.name, ws.rows_digest)
            if seen in self._logged_unreadable:
                continue
            self._logged_unreadable.add(seen)
            _log.warning(
                "resolver: workspace %r cannot be read from the store (%s); Neo serves it "
                "(%s) until its rows are repaired; the other workspaces are not affected",
                ws.name,
                ws.problem,
                STORE_ERROR,
            )

    def _fresh(self, read_at: float) -> None:
        """The table is current as of ``read_at``: restart the staleness clock, end an outage."""
        if self._max_staleness is not None:
            self._fresh_until = read_at + self._max_staleness
        if self._down_since is None:
            return
        with self._outage_lock:
            since, self._down_since = self._down_since, None
        if since is not None:
            _log.info(
                "resolver: the store %s is reachable again after %.1f s; routes are current",
                self._runtime.url,
                _monotonic() - since,
            )
            if self._feed is not None:
                self._feed.reconnect()  # its connection may not have survived the outage

    def _store_failed(self, exc: StoreError) -> None:
        """A store call failed: start an outage, logged once (not per request)."""
        with self._outage_lock:
            if self._down_since is not None:
                return
            self._down_since = _monotonic()
        staleness = (
            f"up to {self._max_staleness:g} s after the last successful read, then Neo "
            f"({STORE_UNAVAILABLE})"
            if self._max_staleness is not None
            else "until it is back"
        )
        _log.warning(
            "resolver: the store is unavailable (%s); serving the last known routes for %s. "
            "Failures reported meanwhile are not recorded; credits are kept in memory. "
            "Retrying every %g s.",
            exc,
            staleness,
            self.refresh_interval or 1.0,
        )

    @property
    def store_available(self) -> bool:
        """False from a failed store call until the next successful read."""
        return self._down_since is None

    def _reconcile(self, snap: _Snapshot) -> None:
        """Close episodes whose credentials changed or whose provider is gone.

        Only this reset replaces a record for new credentials (their failures are not
        recorded until it has run), so one that fails is retried on the next refresh.
        """
        self._reconcile_pending = False
        now = self._clock()
        for (name, provider), h in snap.health.items():
            current = snap.fingerprints.get((name, provider))
            if current == h.fingerprint:
                continue
            unreadable = snap.state.unreadable.get(name)
            if unreadable is not None and (name, provider) != store_error_key(unreadable):
                # Its credentials cannot be read, so nothing says they changed: the
                # provider's health stays as it was until the rows read again.
                continue
            if h.outcome == STORE_ERROR and unreadable is None:
                reason = "store_rows_repaired"
            else:
                reason = "provider_removed" if current is None else "credentials_changed"
            try:
                self._runtime.reset(
                    name, provider, fingerprint=h.fingerprint, reason=reason, now=now
                )
            except StoreError as exc:
                self._reconcile_pending = True  # the next refresh tries again
                self._store_failed(exc)
                return
        for ws in snap.state.unreadable.values():
            try:
                self._record_store_error(snap, ws.name, ws.problem, now)
            except StoreError as exc:
                self._reconcile_pending = True
                self._store_failed(exc)
                return

    def _record_store_error(self, snap: _Snapshot, name: str, problem: str, now: float) -> None:
        """Open (once) the failure episode of a workspace whose rows cannot be read.

        A sticky failure like any other: its episode e-mails the workspace's ``notify``
        list once, ``status`` lists it, and the reconcile above closes it when the rows
        read again. Its fingerprint is that of the damaged rows.
        """
        key = store_error_key(snap.state.unreadable[name])
        fp = snap.fingerprints[key]
        known = snap.health.get(key)
        if known is not None and known.fingerprint == fp and known.status == "sticky":
            return  # already recorded (by this process or another)
        failure = Failure(
            workspace=name,
            provider=key[1],
            fingerprint=fp,
            outcome=STORE_ERROR,
            sticky=True,
            detail=problem,
            retry_after=None,
            probe=False,
        )
        change = self._runtime.record_failure(failure, now=now, policy=self._breaker)
        if change.changed:
            with self._install_lock:
                current = self._snap
                if current is not None and change.health is not None:
                    self._snap = replace(current, health={**current.health, key: change.health})
        if change.episode_opened is not None:
            self._wake_notifier.set()

    def _patch(self, route: Route, change: HealthChange) -> None:
        """Apply a health change this process made, without waiting for the next poll."""
        if not change.changed:
            return
        with self._install_lock:
            snap = self._snap
            if snap is None:
                return
            health = dict(snap.health)
            key = (route.workspace, route.provider)
            if change.health is None:
                health.pop(key, None)
            else:
                health[key] = change.health
            live = snap.state.workspaces.get(route.workspace)
            table = dict(self._table)
            if live is not None:
                table[route.workspace] = workspace_entries(
                    live.workspace, snap.fingerprints, health, self._neo, self._env
                )
            self._snap = replace(snap, health=health)
            self._table = table

    # -- e-mails -------------------------------------------------------------------

    def deliver_notifications(self) -> int:
        """Send the e-mail of every open episode still owed one; return how many went out.

        Safe to call from many processes at once: the store grants each episode to one.
        """
        if self._smtp is None:
            return 0
        sent = 0
        for episode in self._runtime.pending_notifications(now=self._clock()):
            # Per episode: sending one may take a while (slow SMTP), and a lease or
            # retry time computed from a stale clock would expire early.
            now = self._clock()
            if not self._runtime.claim_notification(episode.id, now=now, lease=NOTIFY_LEASE_S):
                continue
            snap = self._snap
            live = snap.state.workspaces.get(episode.workspace) if snap else None
            recipients = tuple(live.workspace.notify) if live else ()
            unreadable = snap.state.unreadable.get(episode.workspace) if snap else None
            if unreadable is not None:
                recipients = unreadable.notify  # what its notify column still says
            if not recipients:
                self._runtime.record_notification(episode.id, (), now=now)
                continue
            cfg = live.workspace.providers.get(episode.provider) if live else None
            message = _notify.compose(
                episode,
                model=cfg.model if cfg else None,
                sender=self._smtp.sender,
                recipients=recipients,
            )
            try:
                _notify.send(self._smtp, message, recipients)
            except (OSError, smtplib.SMTPException) as exc:
                delay = min(
                    NOTIFY_RETRY_S * 2 ** max(episode.notify_attempts, 0), NOTIFY_RETRY_CAP_S
                )
                self._runtime.record_notification_failure(
                    episode.id, f"{type(exc).__name__}: {exc}", now=now, retry_at=now + delay
                )
                _log.warning(
                    "resolver: the failure e-mail for %s could not be sent (%s); retrying in %d s",
                    episode.workspace,
                    type(exc).__name__,
                    delay,
                )
                continue
            self._runtime.record_notification(episode.id, recipients, now=self._clock())
            sent += 1
        return sent

    # -- reading --------------------------------------------------------------------

    def flush(self) -> int:
        """Write buffered credit charges to the ledger now; return how many.

        Never raises for store trouble: the charges stay in memory for the next flush.
        Entries the store refuses as data (not an outage) are set aside and logged.
        """
        try:
            written = self._ledger.flush()
        except StoreError as exc:
            self._store_failed(exc)
            return 0
        finally:
            self._log_rejected()
        return written

    def _log_rejected(self) -> None:
        rejected = len(self._ledger.rejected)
        if rejected > self._rejected_logged:
            _log.warning(
                "resolver: %d credit ledger entries were refused by the store as data "
                "(not an outage) and set aside; the other entries were written",
                rejected - self._rejected_logged,
            )
        self._rejected_logged = rejected

    def status(self) -> list[WorkspaceStatus]:
        """Every workspace in the store: its route now, why, since when, open episodes."""
        snap = self._snap
        if snap is None:
            return []
        episodes: dict[str, list[Episode]] = {}
        for ep in self._runtime.episodes(open_only=True):
            episodes.setdefault(ep.workspace, []).append(ep)
        out = []
        for name, live in snap.state.workspaces.items():
            route = self._table[name][FEATURES[0]].route
            since = live.updated_at.timestamp()
            if route.reason != BYOK and route.provider == NEO and live.workspace.enabled:
                h = snap.health.get((name, live.workspace.enabled))
                since = h.since if h is not None else since
            out.append(
                WorkspaceStatus(
                    workspace=name,
                    enabled=live.workspace.enabled,
                    provider=route.provider,
                    model=route.model,
                    reason=route.reason,
                    since=since,
                    episodes=tuple(episodes.get(name, ())),
                )
            )
        for name, ws in snap.state.unreadable.items():
            h = snap.health.get(store_error_key(ws))
            route = self._table[name][FEATURES[0]].route
            out.append(
                WorkspaceStatus(
                    workspace=name,
                    enabled=ws.enabled,
                    provider=route.provider,
                    model=route.model,
                    reason=route.reason,
                    since=h.since if h is not None else self._clock(),
                    episodes=tuple(episodes.get(name, ())),
                )
            )
        out.sort(key=lambda st: st.workspace)
        return out

    def credit_usage(
        self,
        *,
        workspace: str | None = None,
        since: float | None = None,
        until: float | None = None,
        period: Period | None = None,
    ) -> list[CreditUsage]:
        """Sum the ledger per workspace, feature and route (and ``day``/``month``)."""
        return self._runtime.credit_usage(
            workspace=workspace, since=since, until=until, period=period
        )

    def clear(self, workspace: str) -> bool:
        """Forget the failure state of the workspace's providers (an operator's override)."""
        changed = False
        snap = self._snap
        for name, provider in list(snap.health if snap else ()):
            if name == workspace:
                changed |= self._runtime.reset(
                    name, provider, fingerprint=None, reason="cleared", now=self._clock()
                )
        self.refresh()
        return changed

    # -- threads and closing ---------------------------------------------------------

    def _start(self, target: Callable[[float], None], name: str, interval: float) -> None:
        thread = threading.Thread(target=target, args=(interval,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _background(self, interval: float) -> None:
        """Reload when a change is announced or the poll is due; flush credits on time."""
        feed = self._feed
        next_poll = _monotonic() + interval
        # As often as the poll if that is more often: a long interval between drains
        # lets the buffer of a busy process grow large.
        flush_every = min(interval, self._flush_interval)
        next_flush = _monotonic() + flush_every
        while not self._stop.is_set():
            timeout = max(0.0, min(next_poll, next_flush) - _monotonic())
            if feed is not None:
                announced = feed.wait(timeout)
            else:
                announced = False
                self._stop.wait(timeout)
            if self._stop.is_set():
                return
            now = _monotonic()
            if announced or now >= next_poll:
                next_poll = now + interval
                self._refresh_in_background()
            if now >= next_flush:
                next_flush = now + flush_every
                try:
                    if self._down_since is None:
                        self.flush()
                    else:
                        self._ledger.collect()  # bounded memory; written once the store is back
                except Exception:  # a bug must not kill the thread (routes stop refreshing)
                    self._log_unexpected("flush the credit buffer")

    def _refresh_in_background(self) -> None:
        try:
            self.refresh()
        except StoreError as exc:
            self._store_failed(exc)
        except Exception:  # a bug must not kill the thread: keep the last known routes
            _log.exception("resolver: refresh failed; keeping the last known routes")

    def _notifier(self, interval: float) -> None:
        while not self._stop.is_set():
            self._wake_notifier.wait(interval)
            self._wake_notifier.clear()
            if self._stop.is_set():
                return
            if self._down_since is not None:
                continue  # owed e-mails wait for the store (it records who sends them)
            try:
                self.deliver_notifications()
            except StoreError as exc:
                self._store_failed(exc)
            except Exception:
                _log.exception("resolver: sending failure e-mails failed")

    def close(self) -> None:
        """Stop the threads, flush the credit buffer, try owed e-mails once, close owned stores.

        Never leaves owned stores open: each step's failure is logged and the next runs.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._atexit)
        try:
            self._stop.set()
            self._wake_notifier.set()
            if self._feed is not None:
                self._feed.interrupt()
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()
            if self._feed is not None:
                self._feed.close()
            try:
                self.flush()
            except Exception:
                self._log_unexpected("flush the credit buffer")
            if self._ledger.unwritten:
                _log.warning(
                    "resolver: closing with %d credit ledger entries unwritten: the store is "
                    "unavailable",
                    self._ledger.unwritten,
                )
            if self._down_since is None:
                try:
                    self.deliver_notifications()
                except StoreError as exc:
                    self._store_failed(exc)
                except Exception:
                    _log.exception("resolver: closing: could not send failure e-mails")
        finally:
            if self._owns_stores:
                try:
                    self._runtime.close()
                finally:
                    self._store.close()

    def __enter__(self) -> Resolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Resolver({self._runtime.url!r})"
