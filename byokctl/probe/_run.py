"""One probe round: targets from the resolver, verification's checks, verdicts recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Unpack

from byokctl.classify import Outcome
from byokctl.model import Workspace
from byokctl.resolver import Resolver
from byokctl.resolver._probe import ProbeTarget
from byokctl.verify._run import Effects, Verified, averify_workspaces

#: Checks in flight at once, unless the caller says otherwise.
DEFAULT_PARALLELISM = 16


@dataclass(frozen=True)
class ProbeResult:
    """One enabled provider's probe: the verdict, and what was recorded."""

    workspace: str
    provider: str
    outcome: str
    detail: str
    sticky: bool
    #: Whether the verdict went to the runtime store (only the stored credentials' do).
    recorded: bool
    cached: bool = False
    balance: float | None = None
    #: The workspace's ``low_balance`` threshold, when it sets one.
    low_balance: float | None = None
    #: Who is e-mailed, and the credentials' keyed fingerprint (neither is printed).
    notify: tuple[str, ...] = field(default=(), repr=False)
    fingerprint: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.OK.value

    @property
    def running_low(self) -> bool:
        """Whether the reported balance is below the workspace's threshold."""
        return (
            self.low_balance is not None
            and self.balance is not None
            and self.balance < self.low_balance
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "provider": self.provider,
            "outcome": self.outcome,
            "class": "ok" if self.ok else ("sticky" if self.sticky else "transient"),
            "detail": self.detail,
            "recorded": self.recorded,
            "cached": self.cached,
            "balance": self.balance,
            "low_balance": self.low_balance,
            "running_low": self.running_low,
        }


@dataclass(frozen=True)
class ProbeReport:
    """A probe round: every result, and the e-mails it caused."""

    results: tuple[ProbeResult, ...]
    emails_sent: int = 0
    low_balance_emails: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """Every probed key answered ok (exit 0); any failure is exit 1."""
        return all(r.ok for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        failed = [r for r in self.results if not r.ok]
        return {
            "ok": self.ok,
            "probed": len(self.results),
            "failed": len(failed),
            "emails_sent": self.emails_sent,
            "low_balance_emails": self.low_balance_emails,
            "results": [r.to_dict() for r in self.results],
        }


def _threshold(settings: Mapping[str, str]) -> float | None:
    try:
        return float(settings["low_balance"])
    except (KeyError, ValueError):
        return None


def _as_workspace(target: ProbeTarget) -> Workspace:
    """A workspace holding only the enabled provider: only it is probed."""
    cfg = target.config
    # The name is the fingerprint: two targets never share a result by name.
    return Workspace(target.fingerprint, enabled=cfg.provider, providers={cfg.provider: cfg})


def check_targets(
    targets: Iterable[ProbeTarget], *, parallelism: int, **effects: Unpack[Effects]
) -> dict[str, Verified]:
    """Each target's verdict by fingerprint: verification's adapters, bound, retries, cache."""
    workspaces = {t.fingerprint: _as_workspace(t) for t in targets}
    found = asyncio.run(averify_workspaces(workspaces.values(), parallelism=parallelism, **effects))
    return {fp: results[0] for fp, results in found.items()}


def probe(
    resolver: Resolver,
    /,
    *,
    workspaces: Iterable[Workspace] | None = None,
    parallelism: int = DEFAULT_PARALLELISM,
    **effects: Unpack[Effects],
) -> ProbeReport:
    """Probe the enabled providers of ``workspaces`` (default: every stored workspace).

    Each verdict of the stored credentials is recorded with the resolver (episodes,
    breaker); the e-mails owed are sent before this returns (when the resolver has a
    mailer). Verdicts for credentials not in the store (a file not applied yet) are
    shown, never recorded.
    """
    targets = resolver.probe_targets(workspaces)
    verdicts = check_targets(targets, parallelism=parallelism, **effects)
    results: list[ProbeResult] = []
    for target in targets:
        verdict = verdicts[target.fingerprint]
        c = verdict.classification
        if target.current:
            resolver.record_probe(target.workspace, c, fingerprint=target.fingerprint)
        results.append(
            ProbeResult(
                workspace=target.workspace,
                provider=target.config.provider,
                outcome=c.outcome.value,
                detail=c.detail,
                sticky=c.sticky,
                recorded=target.current,
                cached=verdict.cached,
                balance=verdict.balance,
                low_balance=_threshold(target.config.settings),
                notify=target.notify,
                fingerprint=target.fingerprint,
            )
        )
    sent = resolver.deliver_notifications()
    return ProbeReport(tuple(results), emails_sent=sent)
