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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._outcome import classify, unclassifiable
from ._route import CIRCUIT_PROBE, FEATURES, Route
from ._table import base_url

if TYPE_CHECKING:
    from byokctl.classify import Classification, Outcome

    from ._refresh import Refresher


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
    from byokctl.classify import Classification, Outcome  # noqa: PLC0415

    if not isinstance(outcome, (Outcome, Classification)):
        raise TypeError(
            f"record_probe takes an Outcome or a Classification, not {type(outcome).__name__}"
        )
    route = probe_route(view, workspace, fingerprint)
    if route is None:
        return None
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
