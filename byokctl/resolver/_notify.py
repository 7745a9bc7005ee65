"""Failure e-mails: the operator's SMTP settings, the message (pure), and sending it.

Which process sends an episode's e-mail is decided by the store
(:meth:`~byokctl.store.runtime.RuntimeStore.claim_notification`); this module only says
what the e-mail says and hands it to an SMTP server. The message is built from the
episode's sanitized detail and the workspace's names, never from credentials, and is
passed through :func:`byokctl.model.redact` as a last line of defence.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Final
from urllib.parse import unquote, urlsplit

from byokctl.catalog import PROVIDERS
from byokctl.model import redact
from byokctl.store.runtime import Episode

SMTP_URL_ENV: Final = "BYOK_SMTP_URL"
SMTP_FROM_ENV: Final = "BYOK_SMTP_FROM"
DEFAULT_SENDER: Final = "byokctl@localhost"
_DEFAULT_PORTS: Final = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@dataclass(frozen=True)
class SmtpConfig:
    """Where failure e-mails go out: ``smtp://`` (plain), ``smtp+starttls://`` or ``smtps://``.

    The URL may carry ``user:password@`` (percent-encoded); it is never printed.
    """

    url: str
    sender: str = DEFAULT_SENDER
    timeout: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(
                f"{SMTP_URL_ENV} must look like smtp://host:port, smtp+starttls://host:port "
                "or smtps://host:port"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SmtpConfig | None:
        """``BYOK_SMTP_URL`` and ``BYOK_SMTP_FROM``; ``None`` when no SMTP URL is set."""
        url = env.get(SMTP_URL_ENV, "").strip()
        if not url:
            return None
        return cls(url, env.get(SMTP_FROM_ENV, "").strip() or DEFAULT_SENDER)

    def __repr__(self) -> str:
        parts = urlsplit(self.url)
        return f"SmtpConfig({parts.scheme}://{parts.hostname}:{parts.port}, sender={self.sender!r})"

    __str__ = __repr__


def send(config: SmtpConfig, message: EmailMessage, recipients: Sequence[str]) -> None:
    """Deliver ``message``; raises :class:`OSError` or :class:`smtplib.SMTPException`."""
    parts = urlsplit(config.url)
    host = parts.hostname or "localhost"
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    client: smtplib.SMTP
    if parts.scheme == "smtps":
        client = smtplib.SMTP_SSL(
            host, port, timeout=config.timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(host, port, timeout=config.timeout)
    with client:
        if parts.scheme == "smtp+starttls":
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
        client.send_message(message, from_addr=config.sender, to_addrs=list(recipients))


_WHAT_TO_DO: Final = {
    "invalid_key": (
        "Create a new API key in the provider's console, encrypt it into the workspace "
        "file with sops, and merge it (byokctl apply). Neo serves until then."
    ),
    "no_credits": (
        "Add credits, enable billing or raise the spend limit in the provider's console; "
        "then rotate the key or otherwise update the workspace's provider settings "
        "through byokctl apply. Neo serves until the credentials change."
    ),
    "permission": (
        "Give the key access to the API and model (or create a key that has it), then "
        "apply the updated workspace file. Neo serves until the credentials change."
    ),
    "model_not_available": (
        "Choose a model the key can use (`byokctl models FILE PROVIDER` lists them) and "
        "apply the change. Neo serves until then."
    ),
    "deployment_not_found": (
        "Fix the deployment name (or create the deployment in Azure) and apply the "
        "change. Neo serves until then."
    ),
    "invalid_key_format": (
        "The key has whitespace, a line break or a non-ASCII character in it, so no request "
        "can carry it: encrypt the key again without it and apply the change. Neo serves "
        "until then."
    ),
    "bad_endpoint": (
        "Fix the provider's endpoint in the workspace file and apply the change. Neo "
        "serves until then."
    ),
    "store_error": (
        "Ask the operators of byokctl's live store to restore or remove the workspace's "
        "damaged rows (`byokctl plan` names them); the provider itself may be fine. Neo "
        "serves until the rows read again."
    ),
}
_TRANSIENT_TO_DO: Final = (
    "Nothing, if this is a short outage or a burst of rate limiting: requests go to Neo "
    "for a cooldown, then one request probes the provider, and traffic returns to it by "
    "itself when the probe succeeds. If it lasts, check the provider's status page and "
    "your account's rate limits."
)


def compose(
    episode: Episode,
    *,
    model: str | None,
    sender: str,
    recipients: Sequence[str],
) -> EmailMessage:
    """The e-mail for one failure episode (no credentials: only names and sanitized detail)."""
    spec = PROVIDERS.get(episode.provider)
    provider = spec.display_name if spec else episode.provider
    opened = datetime.fromtimestamp(episode.opened_at, UTC)
    what = (
        "it will not recover by itself"
        if episode.sticky
        else "it may recover by itself (a transient failure)"
    )
    todo = (
        _WHAT_TO_DO.get(episode.outcome, _TRANSIENT_TO_DO) if episode.sticky else _TRANSIENT_TO_DO
    )
    headline = (
        f"The configuration of workspace {episode.workspace!r} cannot be read from byokctl's "
        "live store, and Neo has taken over."
        if episode.outcome == "store_error"
        else f"The AI provider of workspace {episode.workspace!r} failed, and Neo has taken over."
    )
    body = "\n".join(
        [
            headline,
            "",
            (
                "Provider:   unknown while the configuration cannot be read"
                if episode.outcome == "store_error"
                else f"Provider:   {provider} ({episode.provider})"
                + (f", model {model}" if model else "")
            ),
            f"Failure:    {episode.outcome} - {what}",
            f"Detail:     {episode.detail or '-'}",
            f"Since:      {opened:%Y-%m-%d %H:%M:%S} UTC",
            "",
            "Your team is not interrupted: AI Assist, Summarization and Auto-replies keep "
            "working on Neo, the helpdesk's managed model, which costs more credits per "
            "action than your own provider.",
            "",
            "What to do:",
            f"  {todo}",
            "",
            f"This is the only e-mail for this failure (episode {episode.id}); "
            "`byokctl status` shows where each workspace's AI traffic goes and why.",
        ]
    )
    message = EmailMessage()
    what_failed = (
        "configuration unreadable" if episode.outcome == "store_error" else f"{provider} failed"
    )
    message["Subject"] = redact(
        f"[byokctl] {episode.workspace}: {what_failed} ({episode.outcome}), Neo has taken over"
    )
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(opened)
    message["Message-ID"] = make_msgid(domain="byokctl.invalid")
    message.set_content(redact(body))
    return message
