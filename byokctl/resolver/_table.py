"""The routing table: live configuration + runtime health → a route per workspace and feature.

Pure: no I/O, no clock. The resolver rebuilds the table when the store's serial or
runtime version moves and swaps it in with one assignment, so a resolve is a dict
lookup. The only state a lookup can find that depends on time is an open breaker: its
entry carries a :class:`Breaker` the resolver consults (and may ask the store about) when
the cooldown is over.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from byokctl.catalog import PROVIDERS, SANDBOX_URL_ENV, operator_base_url
from byokctl.model import (
    NEO,
    UNAVAILABLE,
    FallbackPolicy,
    LiveState,
    ProviderConfig,
    UnreadableWorkspace,
    Workspace,
)
from byokctl.store.runtime import NEVER_RECOVERS, HealthRecord

from ._policy import disabled_reason, unavailable_route
from ._route import (
    BYOK,
    BYOK_COST,
    CIRCUIT_OPEN,
    CIRCUIT_PROBE,
    FEATURE_ALIASES,
    FEATURES,
    MISSING_CREDENTIALS,
    NO_PROVIDER_ENABLED,
    PROVIDER_FAILED,
    STORE_ERROR,
    Route,
)

#: A ledger charge: ``(workspace, feature, route, credits, actions)``.
Charge = tuple[str, str, str, int, int]
HealthKey = tuple[str, str]

SANDBOX_ENV: Final = SANDBOX_URL_ENV


@dataclass(frozen=True)
class Neo:
    """How Neo is described in routes, and what it costs per feature."""

    costs: Mapping[str, int]
    model: str = NEO
    base_url: str | None = None


class Breaker:
    """An open breaker as one resolver sees it (mutable: ``retry_at`` moves on each claim)."""

    __slots__ = (
        "fingerprint",
        "lock",
        "probe_routes",
        "provider",
        "retry_at",
        "sticky_after",
        "workspace",
    )

    def __init__(
        self,
        workspace: str,
        provider: str,
        fingerprint: str,
        retry_at: float,
        probe_routes: Mapping[str, Route],
    ) -> None:
        #: Set for a sticky failure probed under ``return: on_recovery``: the probe may
        #: come this many seconds after the failure began (the breaker's cooldown).
        self.sticky_after: float | None = None
        self.workspace = workspace
        self.provider = provider
        self.fingerprint = fingerprint
        #: Before this time the route is Neo without asking anyone.
        self.retry_at = retry_at
        self.probe_routes = probe_routes
        #: Held (never waited for) by the one thread of this process asking for the probe.
        self.lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Entry:
    """One (workspace, feature) cell: the route, its ledger charge, and a breaker if open.

    ``capped``: the workspace's policy, on a Neo entry whose spend is capped
    (``max_neo_credits``): the resolver asks :mod:`._policy` before charging it.
    """

    route: Route
    charge: Charge
    breaker: Breaker | None = None
    capped: FallbackPolicy | None = None


def fingerprint(config: ProviderConfig, key: bytes) -> str:
    """A keyed fingerprint of everything that identifies a provider's credentials.

    Model, settings (Azure endpoint, deployment, API version) and secrets: a sticky
    failure ends when any of them changes through apply, because each can be its cause
    (a revoked key, a deleted deployment, a retired model).
    """
    doc: dict[str, object] = {
        "provider": config.provider,
        "model": config.model,
        "settings": dict(config.settings),
        "secrets": {f: s.fingerprint(key) for f, s in config.secrets.items()},
    }
    if config.models:  # absent when empty: fingerprints from before per-feature models hold
        doc["models"] = dict(config.models)
    data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:32]


def base_url(config: ProviderConfig, env: Mapping[str, str]) -> str | None:
    """``BYOK_<P>_BASE_URL``, else ``BYOK_SANDBOX_URL`` + prefix, else the default or endpoint."""
    spec = PROVIDERS.get(config.provider)
    if spec is None:
        return None
    return (
        operator_base_url(config.provider, env)
        or spec.default_base_url
        or config.settings.get(spec.endpoint_setting or "endpoint", "").strip().rstrip("/")
        or None
    )


def neo_route(workspace: str, feature: str, reason: str, neo: Neo) -> Route:
    """The Neo route for one action."""
    return Route(workspace, feature, NEO, neo.model, neo.base_url, reason, neo.costs[feature])


def _neo_entry(workspace: str, feature: str, reason: str, neo: Neo) -> Entry:
    route = neo_route(workspace, feature, reason, neo)
    return Entry(route, (workspace, feature, NEO, route.cost, 1))


def _fallback_entry(ws: Workspace, feature: str, reason: str, neo: Neo) -> Entry:
    """Where an action goes when the provider cannot serve: Neo, or what the policy says."""
    policy = ws.fallback
    if not policy.neo:
        route = unavailable_route(ws.name, feature, disabled_reason(reason))
        return Entry(route, (ws.name, feature, UNAVAILABLE, 0, 1))
    entry = _neo_entry(ws.name, feature, reason, neo)
    if policy.max_neo_credits is not None:
        return Entry(entry.route, entry.charge, capped=policy)
    return entry


def _byok_route(
    ws: Workspace, cfg: ProviderConfig, feature: str, fp: str, *, url: str | None, reason: str
) -> Route:
    return Route(
        workspace=ws.name,
        feature=feature,
        provider=cfg.provider,
        model=cfg.model_for(feature),
        base_url=url,
        reason=reason,
        cost=BYOK_COST,
        settings=cfg.settings,
        credentials=cfg.secrets,
        fingerprint=fp,
        probe=reason.startswith(CIRCUIT_PROBE),
    )


def workspace_entries(
    ws: Workspace,
    fingerprints: Mapping[HealthKey, str],
    health: Mapping[HealthKey, HealthRecord],
    neo: Neo,
    env: Mapping[str, str],
    *,
    sticky_probe_after: float = 30.0,
) -> dict[str, Entry]:
    """Every feature's entry for one workspace (aliases included).

    Where the provider cannot serve, the workspace's ``spec.fallback`` decides: Neo,
    Neo under a cap, or ``unavailable``. With ``return: on_recovery`` a sticky failure
    (not ``invalid_key``) is probed like an open breaker, ``sticky_probe_after`` seconds
    after it began.
    """
    entries: dict[str, Entry] = {}
    cfg = ws.enabled_provider
    for feature in FEATURES:
        if cfg is None:
            entries[feature] = _fallback_entry(ws, feature, NO_PROVIDER_ENABLED, neo)
            continue
        if not _has_credentials(cfg):
            entries[feature] = _fallback_entry(ws, feature, MISSING_CREDENTIALS, neo)
            continue
        fp = fingerprints[(ws.name, cfg.provider)]
        url = base_url(cfg, env)
        h = health.get((ws.name, cfg.provider))
        if h is not None and h.fingerprint != fp:
            h = None  # recorded for credentials the workspace no longer has
        if h is None or h.status == "ok":
            route = _byok_route(ws, cfg, feature, fp, url=url, reason=BYOK)
            entries[feature] = Entry(route, (ws.name, feature, cfg.provider, BYOK_COST, 1))
        elif h.status == "sticky":
            # A health row that does not decode fails closed as a sticky store_error.
            reason = STORE_ERROR if h.outcome == STORE_ERROR else f"{PROVIDER_FAILED}:{h.outcome}"
            entries[feature] = _fallback_entry(ws, feature, reason, neo)
        else:
            entries[feature] = _fallback_entry(ws, feature, f"{CIRCUIT_OPEN}:{h.outcome}", neo)
    if cfg is not None and (h_open := _open(ws, cfg, fingerprints, health)) is not None:
        fp = fingerprints[(ws.name, cfg.provider)]
        url = base_url(cfg, env)
        probes = {
            f: _byok_route(ws, cfg, f, fp, url=url, reason=f"{CIRCUIT_PROBE}:{h_open.outcome}")
            for f in FEATURES
        }
        sticky = h_open.status == "sticky"
        retry_at = max(
            (h_open.since + sticky_probe_after) if sticky else (h_open.open_until or 0.0),
            h_open.probe_until or 0.0,
        )
        breaker = Breaker(ws.name, cfg.provider, fp, retry_at, probes)
        breaker.sticky_after = sticky_probe_after if sticky else None
        for f in FEATURES:
            e = entries[f]
            entries[f] = Entry(e.route, e.charge, breaker, e.capped)
    for alias, feature in FEATURE_ALIASES.items():
        entries[alias] = entries[feature]
    return entries


def _has_credentials(cfg: ProviderConfig) -> bool:
    """An API key, or a provider that may do without one (a server without auth)."""
    spec = PROVIDERS.get(cfg.provider)
    return "api_key" in cfg.secrets or (spec is not None and spec.key_optional)


def _open(
    ws: Workspace,
    cfg: ProviderConfig,
    fingerprints: Mapping[HealthKey, str],
    health: Mapping[HealthKey, HealthRecord],
) -> HealthRecord | None:
    if not _has_credentials(cfg):
        return None
    h = health.get((ws.name, cfg.provider))
    if h is None or h.fingerprint != fingerprints[(ws.name, cfg.provider)]:
        return None
    if h.status == "open":
        return h
    if (
        h.status == "sticky"
        and ws.fallback.return_ == "on_recovery"
        and h.outcome not in (NEVER_RECOVERS, STORE_ERROR)
    ):
        return h  # probed like a breaker: a success closes the episode
    return None


#: The "provider" an unreadable workspace's failure is recorded under. Not a real
#: provider: the workspace's providers keep their own health records untouched (their
#: credentials cannot be read, so nothing is known about them meanwhile).
STORE_ROWS: Final = "store"


def store_error_key(ws: UnreadableWorkspace) -> HealthKey:
    """Where an unreadable workspace's failure is recorded: ``(workspace, "store")``.

    The episode machinery (one open episode per workspace and provider, one e-mail per
    episode) then tells the operator once, like any other failure.
    """
    return (ws.name, STORE_ROWS)


def store_error_fingerprint(ws: UnreadableWorkspace, key: bytes) -> str:
    """A keyed fingerprint of an unreadable workspace's raw rows.

    Rewriting the rows changes it, so the resolver's reconcile closes the episode once
    the workspace reads again (or opens a new one for new damage).
    """
    data = json.dumps(["store_error", ws.name, ws.rows_digest]).encode()
    return hmac.new(key, data, hashlib.sha256).hexdigest()[:32]


def all_fingerprints(state: LiveState, key: bytes) -> dict[HealthKey, str]:
    """The fingerprint of every configured provider of every workspace (unreadable ones too)."""
    out = {
        (name, pid): fingerprint(cfg, key)
        for name, live in state.workspaces.items()
        for pid, cfg in live.workspace.providers.items()
    }
    for ws in state.unreadable.values():
        out[store_error_key(ws)] = store_error_fingerprint(ws, key)
    return out


def unreadable_entries(name: str, neo: Neo) -> dict[str, Entry]:
    """An unreadable workspace: every feature on Neo, reason ``store_error``."""
    entries = {f: _neo_entry(name, f, STORE_ERROR, neo) for f in FEATURES}
    for alias, feature in FEATURE_ALIASES.items():
        entries[alias] = entries[feature]
    return entries


def build_table(
    state: LiveState,
    fingerprints: Mapping[HealthKey, str],
    health: Mapping[HealthKey, HealthRecord],
    neo: Neo,
    env: Mapping[str, str],
    *,
    sticky_probe_after: float = 30.0,
) -> dict[str, dict[str, Entry]]:
    """The whole routing table: ``table[workspace][feature] -> Entry``."""
    table = {
        name: workspace_entries(
            live.workspace, fingerprints, health, neo, env, sticky_probe_after=sticky_probe_after
        )
        for name, live in state.workspaces.items()
    }
    for name in state.unreadable:
        table[name] = unreadable_entries(name, neo)
    return table
