"""The "running low" e-mail: once per episode of a balance below ``low_balance``.

An episode starts when a probe sees the balance below the workspace's threshold and
ends when a probe sees it at or above it again, or when the credentials change (a new
fingerprint is a new episode). What was sent is kept in a small JSON file (default
``$XDG_STATE_HOME/byokctl/probe-low-balance.json``, or ``BYOK_PROBE_STATE``) on the host
that runs the probes: the key is the credentials' keyed fingerprint, never a key. A
scheduled workflow keeps it between runs with a cache step (``docs/probe.md``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Final

from byokctl.catalog import PROVIDERS
from byokctl.model import redact
from byokctl.probe._run import ProbeReport, ProbeResult
from byokctl.resolver import Resolver
from byokctl.resolver.mail import SmtpMailer

STATE_ENV: Final = "BYOK_PROBE_STATE"


def state_path(env: Mapping[str, str]) -> Path:
    """Where the low-balance episodes are kept."""
    if env.get(STATE_ENV):
        return Path(env[STATE_ENV])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "byokctl" / "probe-low-balance.json"


def _load(path: Path) -> dict[str, float]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {str(k): float(v) for k, v in doc.items() if isinstance(v, int | float)}


def _save(path: Path, state: Mapping[str, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".probe-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(dict(state), f, sort_keys=True)
    os.replace(tmp, path)


def compose(result: ProbeResult, *, sender: str, now: float) -> EmailMessage:
    """The "running low" e-mail (names, balance and threshold only: never a key)."""
    spec = PROVIDERS.get(result.provider)
    name = spec.display_name if spec else result.provider
    body = "\n".join(
        [
            f"The {name} account of workspace {result.workspace!r} is running low.",
            "",
            f"Balance:    {result.balance:g}",
            f"Threshold:  {result.low_balance:g} (spec.providers.{result.provider}.low_balance)",
            f"Checked:    {datetime.fromtimestamp(now, UTC):%Y-%m-%d %H:%M:%S} UTC",
            "",
            "Nothing has failed yet: AI actions still run on your own provider. When the "
            "balance reaches zero they move to Neo, the helpdesk's managed model, which "
            "costs more credits per action.",
            "",
            "What to do:",
            f"  Top up the {name} account, or lower low_balance in the workspace file.",
            "",
            "This is the only such e-mail until the balance recovers or the key changes.",
        ]
    )
    message = EmailMessage()
    message["Subject"] = redact(f"[byokctl] {result.workspace}: {name} balance is running low")
    message["From"] = sender
    message["To"] = ", ".join(result.notify)
    message["Date"] = format_datetime(datetime.fromtimestamp(now, UTC))
    message["Message-ID"] = make_msgid(domain="byokctl.invalid")
    message.set_content(redact(body))
    return message


def notify_low_balance(
    resolver: Resolver, report: ProbeReport, *, env: Mapping[str, str]
) -> ProbeReport:
    """Send each new low-balance episode's e-mail; forget the episodes that ended."""
    watched = [r for r in report.results if r.low_balance is not None and r.balance is not None]
    if not watched:
        return report
    path = state_path(env)
    state = _load(path)
    now = resolver.options.clock()
    smtp = resolver.options.smtp_config()
    mailer = SmtpMailer(smtp) if smtp is not None else None
    sent = 0
    changed = False
    for result in watched:
        episode = f"{result.workspace}/{result.provider}/{result.fingerprint}"
        stale = [k for k in state if k.startswith(f"{result.workspace}/{result.provider}/")]
        for key in stale:
            if key != episode or not result.running_low:
                del state[key]  # recovered, or other credentials now: that episode ended
                changed = True
        if not result.running_low or episode in state or not result.notify or mailer is None:
            continue
        mailer.send(compose(result, sender=mailer.sender, now=now), result.notify)
        state[episode] = now
        sent += 1
        changed = True
    if changed:
        _save(path, state)
    return replace(report, low_balance_emails=report.low_balance_emails + sent)
