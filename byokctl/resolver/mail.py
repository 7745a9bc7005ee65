"""How failure e-mails leave the process: the :class:`Mailer` protocol, and SMTP.

The resolver's notifier decides which e-mail is owed and composes it; a mailer only
delivers. This is the only module that imports :mod:`smtplib`: its errors (and the
socket's) become :class:`~byokctl.errors.MailError` here, so the notifier handles one
kind of failure. :class:`SmtpMailer` is the one implementation; tests pass their own
mailer to the resolver (``Resolver(..., mailer=…)``) or run a real SMTP server on loopback.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Final, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from byokctl.errors import MailError

SMTP_URL_ENV: Final = "BYOK_SMTP_URL"
SMTP_FROM_ENV: Final = "BYOK_SMTP_FROM"
DEFAULT_SENDER: Final = "byokctl@localhost"
_DEFAULT_PORTS: Final = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


@runtime_checkable
class Mailer(Protocol):
    """Delivers a composed failure e-mail."""

    @property
    def sender(self) -> str:
        """The envelope and ``From`` address."""
        ...

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        """Deliver ``message`` to ``recipients``; :class:`MailError` if it could not."""
        ...


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


class SmtpMailer:
    """A :class:`Mailer` that hands each e-mail to the SMTP server of an :class:`SmtpConfig`.

    One connection per e-mail: failure e-mails are rare (one per episode), and a kept
    connection would only time out between them.
    """

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config

    @property
    def sender(self) -> str:
        """The configured sender (``BYOK_SMTP_FROM``)."""
        return self.config.sender

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        """Deliver ``message``; a refused connection or an SMTP error is a :class:`MailError`."""
        try:
            self._send(message, recipients)
        except (OSError, smtplib.SMTPException) as exc:
            # The server's answer and the socket's error, never the URL (its password).
            raise MailError(f"{type(exc).__name__}: {exc}") from exc

    def _send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        parts = urlsplit(self.config.url)
        host = parts.hostname or "localhost"
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        timeout = self.config.timeout
        client: smtplib.SMTP
        if parts.scheme == "smtps":
            context = ssl.create_default_context()
            client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if parts.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message, from_addr=self.sender, to_addrs=list(recipients))

    def __repr__(self) -> str:
        return f"SmtpMailer({self.config!r})"
