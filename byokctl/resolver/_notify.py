"""Failure e-mails: which episode is owed one, what it says (pure), and the thread that sends.

Which process sends an episode's e-mail is decided by the store
(:meth:`~byokctl.store.runtime.RuntimeStore.claim_notification`, a lease); delivery is
a :class:`~byokctl.resolver.mail.Mailer`'s job (SMTP). The message is built from the
episode's sanitized detail and the workspace's names, never from credentials, and is
passed through :func:`byokctl.model.redact` as a last line of defence.

A failed send is retried after :data:`NOTIFY_RETRY_S`, doubling up to
:data:`NOTIFY_RETRY_CAP_S`. Sending runs on its own thread, so a slow mail server never
delays an AI action; during a store outage owed e-mails wait (the store records who
sent what).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Final

from byokctl.catalog import PROVIDERS
from byokctl.errors import MailError, StoreError
from byokctl.model import FallbackPolicy, redact
from byokctl.store.runtime import Episode, RuntimeStore

from ._policy import NEO_CAP, cap_email, policy_paragraph
from .mail import Mailer

if TYPE_CHECKING:
    from ._refresh import Snapshot

_log = logging.getLogger("byokctl.resolver")

#: How long one process may hold an episode's e-mail before another may try it.
NOTIFY_LEASE_S: Final = 60.0
#: First retry of a failed e-mail after this many seconds, doubling up to the cap.
NOTIFY_RETRY_S: Final = 30.0
NOTIFY_RETRY_CAP_S: Final = 3600.0
#: The e-mail thread looks for episodes opened by other processes this often.
NOTIFY_POLL_S: Final = 5.0


class Notifier:
    """Sends the e-mail of every open episode still owed one, through a :class:`Mailer`.

    ``snapshot`` gives the resolver's current view (recipients and models come from it);
    ``available`` says whether the store answers; ``store_failed`` reports a store error.
    """

    def __init__(
        self,
        runtime: RuntimeStore,
        mailer: Mailer,
        *,
        clock: Callable[[], float],
        snapshot: Callable[[], Snapshot | None],
        available: Callable[[], bool],
        store_failed: Callable[[StoreError], None],
    ) -> None:
        self._runtime = runtime
        self._mailer = mailer
        self._clock = clock
        self._snapshot = snapshot
        self._available = available
        self._store_failed = store_failed
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def deliver(self) -> int:
        """Send every owed e-mail now; return how many went out (see ``deliver_notifications``)."""
        sent = 0
        for episode in self._runtime.pending_notifications(now=self._clock()):
            # Per episode: sending one may take a while (slow SMTP), and a lease or
            # retry time computed from a stale clock would expire early.
            now = self._clock()
            if not self._runtime.claim_notification(episode.id, now=now, lease=NOTIFY_LEASE_S):
                continue
            sent += self._deliver_one(episode, now)
        return sent

    def _deliver_one(self, episode: Episode, now: float) -> int:
        snap = self._snapshot()
        live = snap.state.workspaces.get(episode.workspace) if snap else None
        recipients = tuple(live.workspace.notify) if live else ()
        unreadable = snap.state.unreadable.get(episode.workspace) if snap else None
        if unreadable is not None:
            recipients = unreadable.notify  # what its notify column still says
        if not recipients:
            self._runtime.record_notification(episode.id, (), now=now)
            return 0
        cfg = live.workspace.providers.get(episode.provider) if live else None
        message = compose(
            episode,
            model=cfg.model if cfg else None,
            display_name=cfg.settings.get("name") if cfg else None,
            sender=self._mailer.sender,
            recipients=recipients,
            policy=live.workspace.fallback if live else None,
        )
        try:
            self._mailer.send(message, recipients)
        except MailError as exc:
            delay = min(NOTIFY_RETRY_S * 2 ** max(episode.notify_attempts, 0), NOTIFY_RETRY_CAP_S)
            self._runtime.record_notification_failure(
                episode.id, exc.message, now=now, retry_at=now + delay
            )
            _log.warning(
                "resolver: the failure e-mail for %s could not be sent (%s); retrying in %d s",
                episode.workspace,
                exc.message.partition(":")[0],
                delay,
            )
            return 0
        self._runtime.record_notification(episode.id, recipients, now=self._clock())
        return 1

    def wake(self) -> None:
        """An episode was opened: look for owed e-mails now rather than at the next poll."""
        self._wake.set()

    def start(self, interval: float = NOTIFY_POLL_S) -> None:
        """Start the sending thread (``byokctl-resolver-notify``)."""
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="byokctl-resolver-notify", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (an e-mail being sent is finished first)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self, interval: float) -> None:
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            if not self._available():
                continue  # owed e-mails wait for the store (it records who sends them)
            try:
                self.deliver()
            except StoreError as exc:
                self._store_failed(exc)
            except Exception:
                _log.exception("resolver: sending failure e-mails failed")


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


def _under_policy(todo: str, episode: Episode, policy: FallbackPolicy | None) -> str:
    """The advice as the workspace's policy has it: "Neo serves" is the default's wording.

    With ``neo: false`` nothing serves until then (AI is unavailable); with ``return:
    on_recovery`` a passing probe ends a sticky failure too (``invalid_key`` excepted).
    """
    if policy is None or episode.outcome == "store_error":
        return todo
    if not policy.neo:
        todo = todo.replace("requests go to Neo for a cooldown", "AI is unavailable for a cooldown")
        todo = todo.replace("Neo serves until", "AI is unavailable until")
    if episode.sticky and policy.return_ == "on_recovery" and episode.outcome != "invalid_key":
        todo = todo.removesuffix(".") + ", or until a probe succeeds (return: on_recovery)."
    return todo


def compose(
    episode: Episode,
    *,
    model: str | None,
    sender: str,
    recipients: Sequence[str],
    policy: FallbackPolicy | None = None,
    display_name: str | None = None,
) -> EmailMessage:
    """The e-mail for one failure episode (no credentials: only names and sanitized detail).

    ``policy`` (the workspace's ``spec.fallback``) changes what it says: with ``neo:
    false`` that AI is unavailable rather than on Neo; a cap's episode says it is spent.
    ``display_name`` is the workspace's own name for the provider (``openai_compatible``'s
    ``name``), else the catalog's.
    """
    if episode.provider == NEO_CAP:
        return _message(episode, *cap_email(episode, policy), sender, recipients)
    spec = PROVIDERS.get(episode.provider)
    provider = display_name or (spec.display_name if spec else episode.provider)
    opened = datetime.fromtimestamp(episode.opened_at, UTC)
    what = (
        "it will not recover by itself"
        if episode.sticky
        else "it may recover by itself (a transient failure)"
    )
    todo = (
        _WHAT_TO_DO.get(episode.outcome, _TRANSIENT_TO_DO) if episode.sticky else _TRANSIENT_TO_DO
    )
    no_neo = policy is not None and not policy.neo
    todo = _under_policy(todo, episode, policy)
    takeover = "AI is unavailable (Neo is disabled)" if no_neo else "Neo has taken over"
    headline = (
        f"The configuration of workspace {episode.workspace!r} cannot be read from byokctl's "
        "live store, and Neo has taken over."
        if episode.outcome == "store_error"
        else f"The AI provider of workspace {episode.workspace!r} failed, and {takeover}."
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
            policy_paragraph(policy)
            if policy is not None and not policy.is_default
            else "Your team is not interrupted: AI Assist, Summarization and Auto-replies keep "
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
    what_failed = (
        "configuration unreadable" if episode.outcome == "store_error" else f"{provider} failed"
    )
    subject = f"[byokctl] {episode.workspace}: {what_failed} ({episode.outcome}), {takeover}"
    return _message(episode, subject, body, sender, recipients)


def _message(
    episode: Episode, subject: str, body: str, sender: str, recipients: Sequence[str]
) -> EmailMessage:
    opened = datetime.fromtimestamp(episode.opened_at, UTC)
    message = EmailMessage()
    message["Subject"] = redact(subject)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(opened)
    message["Message-ID"] = make_msgid(domain="byokctl.invalid")
    message.set_content(redact(body))
    return message
