"""The "running low" e-mail: once per episode of a balance below ``low_balance``.

An episode starts when a probe sees the balance below the workspace's threshold and
ends when a probe sees it at or above it again, or when the credentials change (a new
fingerprint is a new episode). Which episode was e-mailed is the runtime store's
(:attr:`~byokctl.resolver.Resolver.low_balance`), shared by every host and process that
probes: of two probes at once exactly one claims the episode and sends; a failed send
gives the claim back, so the next probe tries again. Only the stored credentials'
results count (a file not applied yet changes nothing, as for failures).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from byokctl.catalog import PROVIDERS
from byokctl.errors import MailError
from byokctl.model import redact
from byokctl.probe._run import ProbeReport, ProbeResult
from byokctl.resolver import Resolver
from byokctl.resolver.mail import SmtpMailer

_log = logging.getLogger("byokctl.probe")


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


def notify_low_balance(resolver: Resolver, report: ProbeReport) -> ProbeReport:
    """Send each new low-balance episode's e-mail; end the episodes whose balance recovered."""
    watched = [
        r
        for r in report.results
        if r.recorded and r.low_balance is not None and r.balance is not None
    ]
    if not watched:
        return report
    notices = resolver.low_balance
    smtp = resolver.options.smtp_config()
    mailer = SmtpMailer(smtp) if smtp is not None else None
    sent = 0
    notes: list[str] = []
    for result in watched:
        ws, provider, fp = result.workspace, result.provider, result.fingerprint
        if not result.running_low:
            notices.end(ws, provider)  # recovered: the next drop is a new episode
            continue
        if not result.notify or mailer is None or not notices.claim(ws, provider, fp):
            continue
        now = resolver.options.clock()
        try:
            mailer.send(compose(result, sender=mailer.sender, now=now), result.notify)
        except MailError as exc:
            notices.release(ws, provider, fp, exc.message)
            note = (
                f"the running-low e-mail for {ws} could not be sent "
                f"({exc.message.partition(':')[0]}); the next probe tries again"
            )
            _log.warning("probe: %s", note)
            notes.append(note)
            continue
        notices.sent(ws, provider, fp)
        sent += 1
    return replace(
        report, low_balance_emails=report.low_balance_emails + sent, notes=(*report.notes, *notes)
    )
