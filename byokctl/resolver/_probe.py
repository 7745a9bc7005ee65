"""Probe results into the resolver: :meth:`Resolver.record_probe` (``byokctl probe`` calls it).

A probe is a cheap read-only request to the workspace's *enabled* provider, made with
the credentials whose fingerprint it names. Its answer is recorded the way the
application's report of a real request would be:

- a failure: sticky opens the episode (one e-mail), transient counts toward the breaker;
  while the breaker is open the probe is its half-open request (a failure re-opens it);
- a success: closes an open breaker; with ``spec.fallback.return: on_recovery`` it also
  closes a sticky episode, unless its outcome is ``invalid_key`` (that one always waits
  for new credentials); with the default ``on_credentials_change`` a sticky episode stays;
- a probe for credentials the workspace no longer has (another fingerprint, a provider
  no longer enabled, an unknown workspace) is ignored: ``None``, nothing recorded.

``byokctl probe`` asks which enabled providers to check, with the credentials and their
fingerprints (:func:`probe_targets`), and hands each verdict back (:func:`record_probe`).
An ignored probe's failure is still classified and returned, as :meth:`Resolver.report`
does for a late report; ``ProbeTarget.current`` tells the caller whether it counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from byokctl.classify import Classification, Outcome, sanitize
from byokctl.model import ProviderConfig, Workspace

from ._outcome import classify, unclassifiable
from ._route import CIRCUIT_PROBE, FEATURES, Route
from ._table import base_url, fingerprint

if TYPE_CHECKING:
    from ._refresh import Refresher


@dataclass(frozen=True)
class ProbeTarget:
    """One workspace's enabled provider to probe, with the fingerprint to record under."""

    workspace: str
    config: ProviderConfig
    fingerprint: str
    notify: tuple[str, ...]
    #: Whether the store holds exactly these credentials (a file's may not be applied yet).
    current: bool


def probe_targets(view: Refresher, workspaces: Iterable[Workspace] | None) -> list[ProbeTarget]:
    """The enabled providers of ``workspaces`` (default: every workspace in the store).

    For workspaces read from files the fingerprint is computed with the runtime store's
    key, so a probe of credentials not applied yet is recorded nowhere (``current``).
    """
    snap = view.snap
    if snap is None:
        return []
    stored = {name: live.workspace for name, live in snap.state.workspaces.items()}
    chosen = list(stored.values()) if workspaces is None else list(workspaces)
    key = view._fp_key  # the runtime store's key, read once by the refresher
    targets: list[ProbeTarget] = []
    for ws in sorted(chosen, key=lambda w: w.name):
        cfg = ws.enabled_provider
        if cfg is None:
            continue
        fp = snap.fingerprints.get((ws.name, cfg.provider)) if workspaces is None else None
        if fp is None:
            fp = fingerprint(cfg, key)
        current = snap.fingerprints.get((ws.name, cfg.provider)) == fp
        targets.append(ProbeTarget(ws.name, cfg, fp, ws.notify, current))
    return targets


def probe_route(view: Refresher, workspace: str, fingerprint: str) -> Route | None:
    """The route a probe of ``workspace``'s enabled provider stands for; ``None``: ignore it."""
    snap = view.snap
    live = snap.state.workspaces.get(workspace) if snap is not None else None
    cfg = live.workspace.enabled_provider if live is not None else None
    if (
        snap is None
        or cfg is None
        or snap.fingerprints.get((workspace, cfg.provider)) != fingerprint
    ):
        return None
    known = snap.health.get((workspace, cfg.provider))
    # While the breaker is open (or a sticky failure may recover) it is the half-open request.
    probing = known is not None and known.fingerprint == fingerprint and known.status != "ok"
    return Route(
        workspace=workspace,
        feature=FEATURES[0],
        provider=cfg.provider,
        model=cfg.model,
        base_url=base_url(cfg, view.env),
        reason=f"{CIRCUIT_PROBE}:probe",
        cost=0,
        settings=cfg.settings,
        credentials=cfg.secrets,
        fingerprint=fingerprint,
        probe=probing,
    )


def record_probe(
    view: Refresher,
    workspace: str,
    outcome: Outcome | Classification,
    *,
    fingerprint: str,
    guarded: Callable[..., None],
) -> Classification | None:
    """Record one probe's answer (see the module docstring); the failure's classification."""
    if not isinstance(outcome, (Outcome, Classification)):
        raise TypeError(
            f"record_probe takes an Outcome or a Classification, not {type(outcome).__name__}"
        )
    route = probe_route(view, workspace, fingerprint)
    if route is None:  # not the current credentials: classified, not recorded
        c = outcome if isinstance(outcome, Classification) else Classification(outcome, "")
        return (
            None
            if c.outcome is Outcome.OK
            else Classification(c.outcome, sanitize(c.detail), c.retry_after)
        )
    if outcome == Outcome.OK or (
        isinstance(outcome, Classification) and outcome.outcome == Outcome.OK
    ):
        guarded("record a probe's success", view.record_success, route)
        return None
    try:
        c = classify(route.provider, outcome, route.api_key())
    except Exception:
        view.log_unexpected("classify a probe's failure")
        c = unclassifiable()
    guarded("record a probe's failure", view.record_failure, route, c)
    return c
