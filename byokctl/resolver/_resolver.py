"""The :class:`Resolver`: routes from a cached table, outcomes to the store, credits.

Threads: the application's threads call :meth:`Resolver.resolve` and
:meth:`Resolver.report`. The table and its refresh thread (polling, the change feed,
store outages) are the :class:`~byokctl.resolver._refresh.Refresher`'s; failure e-mails
are the :class:`~byokctl.resolver._notify.Notifier`'s, on a thread of their own, through
a :class:`~byokctl.resolver.mail.Mailer` (SMTP); the settings are one
:class:`~byokctl.resolver.options.ResolverOptions`. This module routes: resolve, report,
fallback, and what an operator reads (status, credits, clear).

During a store outage failures reported are dropped (not queued: a failure replayed
later would open an episode for a moment long past, and a provider that is still
failing fails again after the outage), and credit charges are kept in memory.
"""

from __future__ import annotations

import atexit
import functools
import logging
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

from byokctl.errors import StoreError
from byokctl.model import NEO, Workspace
from byokctl.store import MasterKey, Store
from byokctl.store.runtime import BreakerPolicy, CreditUsage, Period, RuntimeStore

from ._ledger import CreditBuffer
from ._low_balance import LowBalanceNotices
from ._notify import Notifier
from ._open import open_stores
from ._outcome import check_outcome, classify, unclassifiable
from ._policy import Policies, unavailable_guard
from ._probe import ProbeTarget, probe_targets, record_probe
from ._refresh import Refresher
from ._route import (
    PROVIDER_FAILED,
    STORE_UNAVAILABLE,
    UNKNOWN_WORKSPACE,
    ProviderResponse,
    Route,
    canonical_feature,
    chargeable,
)
from ._status import WorkspaceStatus, workspace_statuses
from ._table import Entry, neo_route
from .mail import Mailer, SmtpConfig, SmtpMailer
from .options import DEFAULT_MAX_STALENESS_S, ResolverOptions

if TYPE_CHECKING:
    from byokctl.classify import Classification, Outcome

_log = logging.getLogger("byokctl.resolver")
T = TypeVar("T")
_monotonic = time.monotonic


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
        options: ResolverOptions | None = None,
        *,
        mailer: Mailer | None = None,
        owns_stores: bool = False,
    ) -> None:
        """Load the table from the stores; start the background threads.

        ``options`` (:class:`~byokctl.resolver.options.ResolverOptions`) says how often to
        refresh, when to fail closed, what Neo costs, where e-mail goes; the defaults
        when ``None``. ``mailer`` delivers failure e-mails instead of the SMTP server the
        options name (never with ``notify=False``). ``owns_stores``: :meth:`close`
        closes the stores too.

        An ``atexit`` hook (holding only a weak reference) closes a resolver the
        application forgot to close, so buffered credits reach the ledger on a normal
        exit; :meth:`close` removes it.
        """
        self.options = options = options if options is not None else ResolverOptions()
        #: The propagation bound in seconds (``None``: manual refresh).
        self.refresh_interval = options.refresh_interval
        self._store = store
        self._runtime = runtime
        self._owns_stores = owns_stores
        self._clock = options.clock
        self._neo = options.neo
        self._closed = False
        self._ledger = CreditBuffer(runtime, options.clock)
        self.low_balance = LowBalanceNotices(runtime, options.clock)  # byokctl probe's e-mails
        #: The ledger's ``deque.append``, looked up once: ``resolve`` calls it every time.
        self._charge = self._ledger.append
        if not options.notify:
            mailer = None
        elif mailer is None and (smtp := options.smtp_config()) is not None:
            mailer = SmtpMailer(smtp)
        # Before the first load: an episode it opens wakes the notifier.
        self._notifier = (
            None
            if mailer is None
            else Notifier(
                runtime,
                mailer,
                clock=options.clock,
                snapshot=lambda: self._view.snap,
                available=lambda: self._view.available,
                store_failed=self._store_failed,
            )
        )
        self._view = Refresher(
            store,
            runtime,
            options,
            wake=self._wake,
            flush=self.flush,
            collect=self._ledger.collect,
        )
        self._policies = Policies(
            runtime, self._view, charge=self._charge, options=options, wake=self._wake
        )
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)
        if options.refresh_interval is not None:
            self._view.start(options.refresh_interval)
            if self._notifier is not None:
                self._notifier.start()

    @classmethod
    def from_url(
        cls,
        store_url: str,
        *,
        master_key: MasterKey | None = None,
        extra_keys: Iterable[MasterKey] = (),
        smtp: SmtpConfig | None = None,
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
        The other arguments are the fields of
        :class:`~byokctl.resolver.options.ResolverOptions` (``breaker=None`` and
        ``neo_costs=None``: the defaults; ``env=None``: ``os.environ``).
        """
        options = ResolverOptions(
            clock=clock,
            refresh_interval=refresh_interval,
            flush_interval=flush_interval,
            breaker=breaker or BreakerPolicy(),
            neo_costs=neo_costs or {},
            neo_model=neo_model,
            neo_base_url=neo_base_url,
            **({} if env is None else {"env": env}),
            max_staleness=max_staleness,
            listen=listen,
            notify=notify,
            smtp=smtp,
        )
        store, runtime = open_stores(
            store_url, options, master_key=master_key, extra_keys=extra_keys
        )
        try:
            return cls(store, runtime, options, owns_stores=True)
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
        view = self._view
        if _monotonic() > view.fresh_until:
            return self._resolve_unavailable(workspace, feature)
        try:
            entry = view.table[workspace][feature]
        except KeyError:
            return self._resolve_miss(workspace, feature)
        if entry.breaker is not None:
            return self._resolve_open(entry)
        if entry.capped is not None:
            return self._policies.charge_neo(entry.route, entry.capped)
        self._charge(entry.charge)
        return entry.route

    def peek(self, workspace: str, feature: str) -> Route:
        """The route the next action would take, without charging it or claiming a probe."""
        name = canonical_feature(feature)
        if _monotonic() > self._view.fresh_until:
            return neo_route(workspace, name, STORE_UNAVAILABLE, self._neo)
        entry = self._view.table.get(workspace, {}).get(name)
        if entry is None:
            return neo_route(workspace, name, UNKNOWN_WORKSPACE, self._neo)
        return entry.route if entry.capped is None else self._policies.peek(entry.route)

    def _resolve_miss(self, workspace: str, feature: str) -> Route:
        name = canonical_feature(feature)  # ValueError for an unknown feature
        entries = self._view.table.get(workspace)
        if entries is not None:
            return self.resolve(workspace, name)
        route = neo_route(workspace, name, UNKNOWN_WORKSPACE, self._neo)
        if chargeable(workspace):
            self._charge((workspace, name, NEO, route.cost, 1))
        return route

    def _resolve_unavailable(self, workspace: str, feature: str) -> Route:
        route = neo_route(workspace, canonical_feature(feature), STORE_UNAVAILABLE, self._neo)
        if workspace in self._view.table:
            return self._policies.fallback(route)  # neo: false holds, from the last table
        if chargeable(workspace):
            self._charge((workspace, route.feature, NEO, route.cost, 1))
        return route

    def _resolve_open(self, entry: Entry) -> Route:
        breaker = entry.breaker
        assert breaker is not None
        if not self._view.claim_probe(breaker):
            if entry.capped is not None:
                return self._policies.charge_neo(entry.route, entry.capped)
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
        :class:`~byokctl.classify.Classification` or ``Outcome``, a
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
        check_outcome(outcome)
        if route.provider == NEO or route.fingerprint is None:
            return None
        if outcome == "ok" or (
            isinstance(outcome, ProviderResponse) and 200 <= outcome.status < 300
        ):
            self._guarded("record a success", self._view.record_success, route)
            return None
        try:
            c = classify(route.provider, outcome, route.api_key())
        except Exception:
            self._view.log_unexpected("classify a failure")
            c = unclassifiable()
        if c.outcome == "ok":
            self._guarded("record a success", self._view.record_success, route)
            return None
        self._charge((route.workspace, route.feature, route.provider, -route.cost, -1))
        self._guarded("record a failure", self._view.record_failure, route, c)
        return c

    def probe_targets(self, workspaces: Iterable[Workspace] | None = None) -> list[ProbeTarget]:
        """The enabled providers to probe: of ``workspaces``, or of every stored workspace."""
        return probe_targets(self._view, workspaces)

    def _guarded(self, what: str, call: Callable[..., None], *args: object) -> None:
        """Run a store write for ``report``: never raise into the application."""
        try:
            call(*args)
        except StoreError as exc:
            self._view.store_failed(exc)
        except Exception:
            self._view.log_unexpected(what)

    def fallback(self, route: Route, failure: Classification | None = None) -> Route:
        """The Neo route for the action that just failed on ``route`` (charged at Neo's cost).

        Unless the workspace's ``spec.fallback`` forbids it: then the route is
        ``unavailable`` (``fallback_disabled:<outcome>``, or ``neo_cap_reached`` once the
        Neo credit cap is spent), cost 0: show "AI unavailable", never call Neo.
        """
        outcome = str(failure.outcome) if failure is not None else "unexpected"
        neo = neo_route(route.workspace, route.feature, f"{PROVIDER_FAILED}:{outcome}", self._neo)
        return self._policies.fallback(neo)

    def run_with_fallback(self, workspace: str, feature: str, action: Callable[[Route], T]) -> T:
        """Run ``action`` on the workspace's route; if it raises there, report it and run it on Neo.

        ``action`` receives the route (provider, model, base URL, credentials) and makes
        the request, raising on failure as httpx (``raise_for_status``) and the official
        SDKs do. The user never sees a provider's failure; a failure on Neo propagates.
        Where policy leaves the action no route (``unavailable``), ``action`` is not
        called: :class:`~byokctl.errors.AIUnavailableError` says why (show "AI unavailable").
        """
        route = self.resolve(workspace, feature)
        if route.is_neo or route.is_unavailable:
            return action(unavailable_guard(route))
        try:
            result = action(route)
        except Exception as exc:
            failure = self.report(route, exc)
            return action(unavailable_guard(self.fallback(route, failure)))
        self.report(route, "ok")
        return result

    def record_probe(
        self, workspace: str, outcome: Outcome | Classification, *, fingerprint: str
    ) -> Classification | None:
        """A probe with the credentials ``fingerprint`` names answered ``outcome`` (``_probe``)."""
        return record_probe(
            self._view, workspace, outcome, fingerprint=fingerprint, guarded=self._guarded
        )

    # -- keeping the table current ----------------------------------------------------

    def refresh(self) -> bool:
        """Reload from the store if its serial or runtime version moved; return whether it did.

        Raises :class:`~byokctl.errors.StoreError` if the store cannot be read (the
        background thread turns that into an outage, see ``docs/resolver.md``).
        """
        return self._view.refresh()

    @property
    def store_available(self) -> bool:
        """False from a failed store call until the next successful read."""
        return self._view.available

    @property
    def credits(self) -> CreditBuffer:
        """The credit buffer: charges not yet written (``len``), ``unwritten``, ``rejected``."""
        return self._ledger

    def _store_failed(self, exc: StoreError) -> None:
        self._view.store_failed(exc)

    def _wake(self) -> None:
        if self._notifier is not None:
            self._notifier.wake()

    # -- e-mails -------------------------------------------------------------------

    def deliver_notifications(self) -> int:
        """Send the e-mail of every open episode still owed one; return how many went out.

        Safe to call from many processes at once: the store grants each episode to one.
        """
        return 0 if self._notifier is None else self._notifier.deliver()

    # -- reading --------------------------------------------------------------------

    def flush(self) -> int:
        """Write buffered credit charges to the ledger now; return how many.

        Never raises for store trouble: the charges stay in memory for the next flush.
        Entries the store refuses as data (not an outage) are set aside and logged.
        """
        try:
            written = self._ledger.flush()
        except StoreError as exc:
            self._view.store_failed(exc)
            return 0
        finally:
            self._ledger.log_rejected()
        return written

    def status(self) -> list[WorkspaceStatus]:
        """Every workspace in the store: its route now, why, since when, open episodes."""
        snap, table = self._view.snap, self._view.table
        if snap is None:
            return []
        episodes = self._runtime.episodes(open_only=True)
        p = self._policies
        return workspace_statuses(
            snap, table, episodes, now=self._clock(), remaining=p.remaining, peek=p.peek
        )

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
        snap = self._view.snap
        for name, provider in list(snap.health if snap else ()):
            if name == workspace:
                changed |= self._runtime.reset(
                    name, provider, fingerprint=None, reason="cleared", now=self._clock()
                )
        self._view.refresh()
        return changed

    # -- closing ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop the threads, flush the credit buffer, try owed e-mails once, close owned stores.

        Never leaves owned stores open: each step's failure is logged and the next runs.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._atexit)
        try:
            if self._notifier is not None:
                self._notifier.stop()
            self._view.stop()
            try:
                self.flush()
            except Exception:
                self._view.log_unexpected("flush the credit buffer")
            if self._ledger.unwritten:
                _log.warning(
                    "resolver: closing with %d credit ledger entries unwritten: the store is "
                    "unavailable",
                    self._ledger.unwritten,
                )
            if self._view.available:
                try:
                    self.deliver_notifications()
                except StoreError as exc:
                    self._view.store_failed(exc)
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
