"""The routing table kept current: reloads, the change feed, store outages, the refresh thread.

The :class:`Refresher` owns what :meth:`~byokctl.resolver.Resolver.resolve` reads: the
table (``table[workspace][feature] -> Entry``), the snapshot it was built from, and
the staleness deadline. The table is replaced, never mutated: a reader sees the old
table or the new one. Health changes this process causes are patched in at once
(:meth:`Refresher.patch`); changes made elsewhere arrive with the next poll, so every
resolver agrees within ``refresh_interval`` seconds (plus one store read). On a store
that announces changes (PostgreSQL ``LISTEN/NOTIFY``,
:class:`~byokctl.store.runtime.ChangeSource`) the thread waits on the feed and reloads
as soon as a change is announced; the poll stays as the safety net for a missed
announcement or a lost connection. The same thread flushes the credit buffer.

Store outages: the first failed store call starts an outage (logged once, as a
warning); meanwhile routes come from the last table, and nothing else touches the store
until a poll succeeds (logged once, as info). When the last successful read is older
than ``max_staleness`` every action goes to Neo with reason ``store_unavailable``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from byokctl.errors import StoreError
from byokctl.model import LiveState
from byokctl.store import Store
from byokctl.store.runtime import (
    ChangeFeed,
    ChangeSource,
    Failure,
    HealthChange,
    HealthRecord,
    RuntimeStore,
)

from ._policy import NEO_CAP, cap_record_current, policy_of
from ._route import STORE_ERROR, STORE_UNAVAILABLE, Route
from ._table import (
    Breaker,
    Entry,
    HealthKey,
    all_fingerprints,
    build_table,
    store_error_key,
    workspace_entries,
)
from .options import ResolverOptions

if TYPE_CHECKING:
    from byokctl.classify import Classification

_log = logging.getLogger("byokctl.resolver")
_monotonic = time.monotonic

#: ``resolve`` waits at most this long for the store when it asks for a breaker's probe
#: (a busy store means "not now": the route stays Neo and it asks again a second later).
PROBE_CLAIM_WAIT_S: Final = 0.05


@dataclass(frozen=True)
class Snapshot:
    """What the table was built from: the live state, runtime version, fingerprints, health."""

    state: LiveState
    version: int
    fingerprints: Mapping[HealthKey, str]
    health: Mapping[HealthKey, HealthRecord]


class Refresher:
    """Loads the table, keeps it current, and tracks whether the store answers.

    Constructing it loads the table (raising :class:`StoreError` if the store cannot
    be read); :meth:`start` starts the background thread. ``wake`` is told when an
    episode was opened (the notifier sends its e-mail); ``flush`` and ``collect`` write
    or, during an outage, only sum the buffered credit charges.
    """

    def __init__(
        self,
        store: Store,
        runtime: RuntimeStore,
        options: ResolverOptions,
        *,
        wake: Callable[[], None],
        flush: Callable[[], object],
        collect: Callable[[], object],
    ) -> None:
        self._store = store
        self._runtime = runtime
        self._options = options
        #: Where ``BYOK_*`` base URLs are read (routes built outside the table need it).
        self.env = options.env
        self._wake = wake
        self._flush = flush
        self._collect = collect
        self._fp_key = runtime.fingerprint_key()
        self._max_staleness = options.staleness_bound
        #: How long after a sticky failure began a probe may go (``return: on_recovery``).
        self._cooldown = options.breaker.cooldown
        #: ``resolve`` routes to Neo (store_unavailable) once the monotonic clock passes this.
        self.fresh_until = float("inf")
        #: Monotonic time the current store outage began; ``None`` while the store answers.
        self.down_since: float | None = None
        self.table: dict[str, dict[str, Entry]] = {}
        self.snap: Snapshot | None = None
        self._outage_lock = threading.Lock()
        self._install_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: A reload's reconcile failed: retry it on the next refresh even if nothing moved.
        self._reconcile_pending = False
        #: Unexpected errors already logged with a traceback (each kind once).
        self._logged: set[str] = set()
        #: Unreadable workspace rows already logged: (workspace, rows digest).
        self._logged_unreadable: set[tuple[str, str]] = set()
        # LISTEN before the first load: a change committed in between is then announced
        # (and reloaded) rather than missed until the next poll.
        self.feed: ChangeFeed | None = None
        listen = options.refresh_interval is not None and options.listen
        if listen and isinstance(runtime, ChangeSource):
            self.feed = runtime.listen()
        try:
            self.refresh()
        except BaseException:
            if self.feed is not None:
                self.feed.close()
            raise

    # -- reloading -------------------------------------------------------------------

    def refresh(self) -> bool:
        """Reload from the store if its serial or runtime version moved; return whether it did.

        Raises :class:`~byokctl.errors.StoreError` if the store cannot be read.
        """
        started = _monotonic()
        serial, version = self._runtime.versions()
        snap = self.snap
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
        new = Snapshot(state, version, fingerprints, health)
        table = build_table(
            state,
            fingerprints,
            health,
            self._options.neo,
            self._options.env,
            sticky_probe_after=self._cooldown,
        )
        with self._install_lock:
            self.snap, self.table = new, table
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

    def patch(self, route: Route, change: HealthChange) -> None:
        """Apply a health change this process made, without waiting for the next poll."""
        if not change.changed:
            return
        with self._install_lock:
            snap = self.snap
            if snap is None:
                return
            health = dict(snap.health)
            key = (route.workspace, route.provider)
            if change.health is None:
                health.pop(key, None)
            else:
                health[key] = change.health
            live = snap.state.workspaces.get(route.workspace)
            table = dict(self.table)
            if live is not None:
                table[route.workspace] = workspace_entries(
                    live.workspace,
                    snap.fingerprints,
                    health,
                    self._options.neo,
                    self._options.env,
                    sticky_probe_after=self._cooldown,
                )
            self.snap = replace(snap, health=health)
            self.table = table

    def _reconcile(self, snap: Snapshot) -> None:
        """Close episodes whose credentials changed or whose provider is gone.

        Only this reset replaces a record for new credentials (their failures are not
        recorded until it has run), so one that fails is retried on the next refresh.
        """
        self._reconcile_pending = False
        now = self._options.clock()
        for (name, provider), h in snap.health.items():
            current = snap.fingerprints.get((name, provider))
            if provider == NEO_CAP:  # the cap's episode lasts as long as its window
                if cap_record_current(snap, self._fp_key, name, h.fingerprint, now):
                    continue
                current = None
            elif current == h.fingerprint:
                continue
            unreadable = snap.state.unreadable.get(name)
            if unreadable is not None and (name, provider) != store_error_key(unreadable):
                # Its credentials cannot be read, so nothing says they changed: the
                # provider's health stays as it was until the rows read again.
                continue
            if h.outcome == STORE_ERROR and unreadable is None:
                reason = "store_rows_repaired"
            elif provider == NEO_CAP:
                reason = "neo_cap_window_ended"
            else:
                reason = "provider_removed" if current is None else "credentials_changed"
            try:
                self._runtime.reset(
                    name, provider, fingerprint=h.fingerprint, reason=reason, now=now
                )
            except StoreError as exc:
                self._reconcile_pending = True  # the next refresh tries again
                self.store_failed(exc)
                return
        for ws in snap.state.unreadable.values():
            try:
                self._record_store_error(snap, ws.name, ws.problem, now)
            except StoreError as exc:
                self._reconcile_pending = True
                self.store_failed(exc)
                return

    def _record_store_error(self, snap: Snapshot, name: str, problem: str, now: float) -> None:
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
        change = self._runtime.record_failure(failure, now=now, policy=self._options.breaker)
        if change.changed:
            with self._install_lock:
                current = self.snap
                if current is not None and change.health is not None:
                    self.snap = replace(current, health={**current.health, key: change.health})
        if change.episode_opened is not None:
            self._wake()

    def _current(self, route: Route) -> tuple[Snapshot | None, bool]:
        """The snapshot, and whether ``route`` carries the workspace's current credentials."""
        snap = self.snap
        if snap is None:
            return None, True
        return snap, snap.fingerprints.get((route.workspace, route.provider)) == route.fingerprint

    def record_failure(self, route: Route, c: Classification) -> None:
        """Record a failure reported on ``route`` and patch it in (unless it says nothing new)."""
        snap, current = self._current(route)
        if not current:
            return  # a late report for replaced credentials: the new ones' state stays
        known = snap.health.get((route.workspace, route.provider)) if snap is not None else None
        if known is not None and known.fingerprint == route.fingerprint:
            if known.status == "sticky":
                return  # already routed to Neo everywhere: nothing new to record
            if known.status == "open" and c.transient and not route.probe:
                return  # in flight when the breaker opened; it must not extend the cooldown
        if not self.available:
            return  # dropped during an outage: never block the caller on the store
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
        change = self._runtime.record_failure(
            failure, now=self._options.clock(), policy=self._options.breaker
        )
        self.patch(route, change)
        if change.episode_opened is not None:
            live = snap.state.workspaces.get(route.workspace) if snap else None
            no_neo = live is not None and not live.workspace.fallback.neo
            _log.warning(
                "resolver: %s on %s failed (%s); %s",
                *(route.workspace, route.provider, c.outcome),
                "AI is unavailable (fallback.neo: false)" if no_neo else "Neo takes over",
            )
            self._wake()

    def record_success(self, route: Route) -> None:
        """Record a success on ``route`` where it closes a breaker, and patch it in."""
        snap, current = self._current(route)
        if not current:
            return  # for replaced credentials: says nothing about the current ones
        known = snap.health.get((route.workspace, route.provider)) if snap else None
        if not route.probe and (known is None or known.status != "open"):
            return  # the common case: nothing to write
        if not self.available:
            return  # dropped: the next probe after the outage closes the breaker
        policy = policy_of(snap, route.workspace)
        change = self._runtime.record_success(
            route.workspace,
            route.provider,
            route.fingerprint or "",
            now=self._options.clock(),
            recover_sticky=policy is not None and policy.return_ == "on_recovery",
        )
        self.patch(route, change)

    def claim_probe(self, breaker: Breaker) -> bool:
        """Whether this action is the open breaker's probe (asked of the store, bounded).

        Not before the cooldown is over, not during an outage (no probe can be granted
        without the store), and only one thread of this process asks at a time.
        """
        now = self._options.clock()
        if (
            now < breaker.retry_at
            or self.down_since is not None
            or not breaker.lock.acquire(blocking=False)
        ):
            return False
        try:
            # One process in the whole fleet gets the probe. On the caller's thread, so
            # bounded: a busy store is a refusal after PROBE_CLAIM_WAIT_S (ask again
            # later), never the store's 30 s busy timeout.
            grant = self._runtime.claim_probe(
                breaker.workspace,
                breaker.provider,
                breaker.fingerprint,
                now=now,
                lease=self._options.breaker.probe_timeout,
                wait=PROBE_CLAIM_WAIT_S,
                sticky_after=breaker.sticky_after,
            )
        except StoreError as exc:
            self.store_failed(exc)
            breaker.retry_at = now + 1.0
            return False
        finally:
            breaker.lock.release()
        # A refusal with no later time means our view is stale: wait for the refresh.
        breaker.retry_at = max(grant.retry_at, now + (self._options.refresh_interval or 1.0))
        return grant.granted

    # -- outages ---------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False from a failed store call until the next successful read."""
        return self.down_since is None

    def _fresh(self, read_at: float) -> None:
        """The table is current as of ``read_at``: restart the staleness clock, end an outage."""
        if self._max_staleness is not None:
            self.fresh_until = read_at + self._max_staleness
        if self.down_since is None:
            return
        with self._outage_lock:
            since, self.down_since = self.down_since, None
        if since is not None:
            _log.info(
                "resolver: the store %s is reachable again after %.1f s; routes are current",
                self._runtime.url,
                _monotonic() - since,
            )
            if self.feed is not None:
                self.feed.reconnect()  # its connection may not have survived the outage

    def store_failed(self, exc: StoreError) -> None:
        """A store call failed: start an outage, logged once (not per request)."""
        with self._outage_lock:
            if self.down_since is not None:
                return
            self.down_since = _monotonic()
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
            self._options.refresh_interval or 1.0,
        )

    def log_unexpected(self, what: str) -> None:
        """Log an unexpected error once with its traceback (then at debug level)."""
        if what in self._logged:
            _log.debug("resolver: could not %s", what, exc_info=True)
            return
        self._logged.add(what)
        _log.exception("resolver: could not %s (logged once; later ones at debug level)", what)

    # -- the thread ------------------------------------------------------------------

    def start(self, interval: float) -> None:
        """Start the background thread (``byokctl-resolver-refresh``)."""
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="byokctl-resolver-refresh", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the change feed."""
        self._stop.set()
        if self.feed is not None:
            self.feed.interrupt()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self.feed is not None:
            self.feed.close()

    def _run(self, interval: float) -> None:
        """Reload when a change is announced or the poll is due; flush credits on time."""
        feed = self.feed
        next_poll = _monotonic() + interval
        # As often as the poll if that is more often: a long interval between drains
        # lets the buffer of a busy process grow large.
        flush_every = min(interval, self._options.flush_interval)
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
                    if self.down_since is None:
                        self._flush()
                    else:
                        self._collect()  # bounded memory; written once the store is back
                except Exception:  # a bug must not kill the thread (routes stop refreshing)
                    self.log_unexpected("flush the credit buffer")

    def _refresh_in_background(self) -> None:
        try:
            self.refresh()
        except StoreError as exc:
            self.store_failed(exc)
        except Exception:  # a bug must not kill the thread: keep the last known routes
            _log.exception("resolver: refresh failed; keeping the last known routes")
