"""Probe results into the resolver: what to probe, and recording what a probe found.

``byokctl probe`` asks the resolver which enabled providers to check (with the
credentials and their fingerprints, :func:`probe_targets`) and hands each verdict back
(:func:`record_probe`). A probe's failure is recorded exactly like a failure the
application reports: sticky opens the episode (Neo takes over, one e-mail), transient
counts toward the circuit breaker. A success records a success (it closes an open
breaker; a sticky episode stays until the credentials change). A probe of credentials
the workspace no longer has is ignored, like a late report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from byokctl.classify import Classification, Outcome, sanitize
from byokctl.model import ProviderConfig, Workspace
from byokctl.resolver._refresh import Refresher
from byokctl.resolver._route import BYOK, BYOK_COST, Route
from byokctl.resolver._table import fingerprint


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


def record_probe(
    view: Refresher, workspace: str, outcome: Outcome | Classification, *, fingerprint: str
) -> Classification | None:
    """Record one probe's verdict; the failure's classification, or ``None`` for a success.

    Nothing is recorded for a workspace or fingerprint the store does not hold now.
    """
    c = outcome if isinstance(outcome, Classification) else Classification(outcome, "")
    c = Classification(c.outcome, sanitize(c.detail), c.retry_after)
    snap = view.snap
    if snap is None:
        return None if c.outcome is Outcome.OK else c
    live = snap.state.workspaces.get(workspace)
    cfg = live.workspace.enabled_provider if live is not None else None
    if cfg is None or snap.fingerprints.get((workspace, cfg.provider)) != fingerprint:
        return None if c.outcome is Outcome.OK else c  # not the current credentials: ignored
    route = Route(
        workspace=workspace,
        feature="probe",
        provider=cfg.provider,
        model=cfg.model,
        base_url=None,
        reason=BYOK,
        cost=BYOK_COST,
        fingerprint=fingerprint,
    )
    if c.outcome is Outcome.OK:
        view.record_success(route)
        return None
    view.record_failure(route, c)
    return c
