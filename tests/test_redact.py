"""``redact``: no secret the process has seen survives, whichever way it is looked up.

Both lookups run: testing each secret (few secrets) and the tail index (many secrets).
Secrets are registered in the process-wide set, as ``Secret`` does; values are unique
canaries so that no other test's text can contain them.
"""

from __future__ import annotations

import secrets

import pytest

from byokctl import model
from byokctl.model import REDACTED, Secret, redact


@pytest.fixture(params=["each", "indexed"], autouse=True)
def lookup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    # The threshold is the only switch between the two lookups; 0 forces the index.
    monkeypatch.setattr(model, "_INDEX_FROM", 0 if request.param == "indexed" else 10**9)


def _key(prefix: str = "sk-proj-") -> str:
    value = prefix + secrets.token_urlsafe(24)
    Secret(value)
    return value


def test_scrubs_a_key_wherever_it_stands() -> None:
    key = _key()
    texts = [
        key,
        f"invalid key {key}.",
        f"Authorization: Bearer {key}",
        f"https://example.test/v1/models?key={key}&x=1",
        f"glued{key}glued",  # inside a longer run of key characters
        f"{key}{key}",
    ]
    for text in texts:
        out = redact(text)
        assert key not in out
        assert REDACTED in out


def test_scrubs_every_one_of_many_keys() -> None:
    keys = [_key() for _ in range(300)] + [_key("sk-ant-api03-") for _ in range(50)]
    text = " | ".join(f"ws-{i}: {k}" for i, k in enumerate(keys))
    out = redact(text)
    assert not [k for k in keys if k in out]
    assert out.count(REDACTED) == len(keys)


def test_text_without_secrets_is_unchanged() -> None:
    _key()
    text = "OpenAI: Incorrect API key provided: sk-ab***yz. See https://platform.openai.com."
    assert redact(text) == text
    assert redact("") == ""


def test_a_secret_that_contains_another_is_scrubbed_whole() -> None:
    inner = _key()
    outer = _key(inner + "-tail-")
    out = redact(f"a {outer} b {inner} c")
    assert out == f"a {REDACTED} b {REDACTED} c"


def test_secrets_with_other_characters_or_short_ones_are_scrubbed() -> None:
    phrase = f"correct horse {secrets.token_hex(6)} staple"
    Secret(phrase)
    base64ish = f"{secrets.token_hex(8)}+/{secrets.token_hex(8)}=="
    Secret(base64ish)
    short = "ẞq¤7"  # Secret skips short values; the set may still hold one
    model._SEEN_SECRETS.add(short)
    out = redact(f"[{phrase}] [{base64ish}] [{short}]")
    assert out == f"[{REDACTED}] [{REDACTED}] [{REDACTED}]"


def test_a_secret_seen_after_an_earlier_redact_is_scrubbed() -> None:
    first = _key()
    assert redact(first) == REDACTED
    later = _key()
    assert redact(f"{first} {later}") == f"{REDACTED} {REDACTED}"
