"""The resolver's seams: one frozen options value, a mailer, and the shape of the package.

A recording :class:`~byokctl.resolver.mail.Mailer` stands in for SMTP where a test is
about what the notifier decides (which e-mail, when, retried); SMTP itself is tested
against a real server (``test_notify.py``) and, for its error translation, a refused
loopback port here.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest

import byokctl
from byokctl.classify import STICKY, Classification, Outcome
from byokctl.errors import MailError
from byokctl.resolver import BreakerPolicy, Resolver, SmtpConfig
from byokctl.resolver.mail import Mailer, SmtpMailer
from byokctl.resolver.options import ResolverOptions
from byokctl.store import MasterKey, Store, open_store
from byokctl.store.runtime import RuntimeStore, open_runtime_store
from tests.resolver.conftest import free_port
from tests.resolver.helpers import CANARY, Clock, put, workspace

PACKAGE = Path(byokctl.__file__).parent


@dataclass
class RecordingMailer:
    """A :class:`Mailer` that keeps what it is given; the next ``fail`` sends fail."""

    sender: str = "byok@helpdesk.example"
    sent: list[tuple[EmailMessage, tuple[str, ...]]] = field(default_factory=list)
    fail: int = 0

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        if self.fail:
            self.fail -= 1
            raise MailError("SMTPServerDisconnected: Connection unexpectedly closed")
        self.sent.append((message, tuple(recipients)))


@pytest.fixture
def stores(store_url: str, master_key: MasterKey) -> Iterator[tuple[Store, RuntimeStore]]:
    """Both sides of the store, opened by the test (the resolver does not own them)."""
    live = open_store(store_url, master_key=master_key)
    runtime = open_runtime_store(store_url)
    yield live, runtime
    runtime.close()
    live.close()


def _manual(clock: Clock, **kw: object) -> ResolverOptions:
    return ResolverOptions(refresh_interval=None, clock=clock, env={}, **kw)  # type: ignore[arg-type]


def test_the_options_are_one_frozen_checked_value() -> None:
    options = ResolverOptions(neo_costs={"assist": 7}, env={"BYOK_SMTP_URL": "smtp://mx:25"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.refresh_interval = 5.0  # type: ignore[misc]
    assert dict(options.neo_costs) == {"assist": 7, "summarize": 2, "auto_reply": 5}
    assert options.neo.costs["assist"] == 7
    smtp = options.smtp_config()
    assert smtp is not None and smtp.url == "smtp://mx:25"
    assert dataclasses.replace(options, notify=False).smtp_config() is None
    assert ResolverOptions(refresh_interval=None).staleness_bound is None
    with pytest.raises(ValueError, match="refresh_interval must be positive"):
        ResolverOptions(refresh_interval=0)
    with pytest.raises(ValueError, match="max_staleness must be longer"):
        ResolverOptions(refresh_interval=2.0, max_staleness=1.0)
    with pytest.raises(ValueError, match="unknown AI feature"):
        ResolverOptions(neo_costs={"translate": 1})


def test_from_url_builds_the_options_from_its_arguments(
    store: Store, store_url: str, master_key: MasterKey, clock: Clock
) -> None:
    policy = BreakerPolicy(threshold=2)
    with Resolver.from_url(
        store_url, master_key=master_key, refresh_interval=None, clock=clock, breaker=policy,
        neo_costs={"summarize": 4}, env={}, notify=False,
    ) as r:  # fmt: skip
        assert r.options.breaker == policy and r.options.clock is clock
        assert r.options.neo_costs["summarize"] == 4 and not r.options.notify
        assert r.refresh_interval is None


def test_the_notifier_sends_through_the_mailer_and_retries_a_failed_send(
    stores: tuple[Store, RuntimeStore], clock: Clock
) -> None:
    live, runtime = stores
    put(live, workspace("acme", notify=("ops@acme.example",)))
    mailer = RecordingMailer(fail=1)
    with Resolver(live, runtime, _manual(clock), mailer=mailer) as r:
        r.report(r.resolve("acme", "assist"), Classification(Outcome.INVALID_KEY, "revoked"))
        assert r.deliver_notifications() == 0  # the mailer failed: recorded, retried later
        [episode] = runtime.episodes(workspace="acme")
        assert episode.notify_attempts == 1
        assert episode.notify_error == "SMTPServerDisconnected: Connection unexpectedly closed"
        assert r.deliver_notifications() == 0  # not before the retry time
        clock.advance(30)
        assert r.deliver_notifications() == 1
        assert r.deliver_notifications() == 0
    [(message, recipients)] = mailer.sent
    assert recipients == ("ops@acme.example",)
    assert message["From"] == "byok@helpdesk.example"
    assert CANARY not in message.as_string()


def test_notify_false_never_uses_a_mailer(stores: tuple[Store, RuntimeStore], clock: Clock) -> None:
    live, runtime = stores
    put(live, workspace("acme"))
    mailer = RecordingMailer()
    with Resolver(live, runtime, _manual(clock, notify=False), mailer=mailer) as r:
        r.report(r.resolve("acme", "assist"), Classification(Outcome.INVALID_KEY, "revoked"))
        assert r.deliver_notifications() == 0
    assert mailer.sent == []
    assert [e.notified_at for e in runtime.episodes()] == [None]


def test_every_sticky_outcome_says_what_to_do(
    stores: tuple[Store, RuntimeStore], clock: Clock
) -> None:
    """A sticky outcome must not fall back to the transient "nothing to do" advice."""
    live, runtime = stores
    outcomes = sorted(STICKY, key=lambda o: o.value)
    put(live, workspace("transient"), *(workspace(f"ws-{i}") for i in range(len(outcomes))))
    mailer = RecordingMailer()
    options = _manual(clock, breaker=BreakerPolicy(threshold=1))
    with Resolver(live, runtime, options, mailer=mailer) as r:
        r.report(r.resolve("transient", "assist"), Classification(Outcome.OUTAGE, "down"))
        for i, outcome in enumerate(outcomes):
            r.report(r.resolve(f"ws-{i}", "assist"), Classification(outcome, "d"))
        assert r.deliver_notifications() == len(outcomes) + 1
    bodies = {m["Subject"]: m.get_content() for m, _ in mailer.sent}

    def advice(body: str) -> str:
        return body.partition("What to do:")[2].partition("This is the only e-mail")[0].strip()

    [transient] = [advice(b) for s, b in bodies.items() if "transient:" in s]
    for outcome in outcomes:
        [body] = [b for s, b in bodies.items() if f"({outcome.value})" in s]
        assert advice(body) and advice(body) != transient, outcome


def test_smtp_errors_become_mail_errors_without_the_url() -> None:
    mailer: Mailer = SmtpMailer(
        SmtpConfig(f"smtp://user:hunter2-password@127.0.0.1:{free_port()}", timeout=2.0)
    )
    message = EmailMessage()
    message["Subject"] = "x"
    message.set_content("x")
    with pytest.raises(MailError, match="ConnectionRefusedError") as caught:
        mailer.send(message, ["ops@example.com"])
    assert "hunter2" not in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_smtplib_is_imported_by_the_mail_module_only() -> None:
    importers = sorted(
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "smtplib" in _imports(p)
    )
    assert importers == ["resolver/mail.py"]


def test_no_resolver_module_is_over_500_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in (PACKAGE / "resolver").glob("*.py")}
    assert max(sizes.values()) <= 500, sizes
