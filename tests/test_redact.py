"""``redact``: no secret the process has seen survives, whichever way it is looked up.

Both lookups run: testing each secret (few secrets) and the tail index (many secrets).
``redact`` covers the values of live ``Secret`` objects (the tests hold theirs in
``_HELD``) and, inside ``retain_secrets()``, every value seen since the scope began;
values are unique canaries so that no other test's text can contain them.
"""

from __future__ import annotations

import gc
import secrets
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byokctl import model
from byokctl.model import REDACTED, Secret, redact, retain_secrets, secrets_held

#: What keeps this test's secrets alive (a ``Secret`` the code still holds).
_HELD: list[object] = []


@pytest.fixture(params=["each", "indexed"], autouse=True)
def lookup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The threshold is the only switch between the two lookups; 0 forces the index.
    monkeypatch.setattr(model, "_INDEX_FROM", 0 if request.param == "indexed" else 10**9)
    yield
    _HELD.clear()


def _key(prefix: str = "sk-proj-") -> str:
    value = prefix + secrets.token_urlsafe(24)
    _HELD.append(Secret(value))
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
    _HELD.append(Secret(phrase))
    base64ish = f"{secrets.token_hex(8)}+/{secrets.token_hex(8)}=="
    _HELD.append(Secret(base64ish))
    short = "ẞq¤7"  # Secret skips short values; the registry may still hold one
    _HELD.append(model._register(short))
    out = redact(f"[{phrase}] [{base64ish}] [{short}]")
    assert out == f"[{REDACTED}] [{REDACTED}] [{REDACTED}]"


def test_a_secret_seen_after_an_earlier_redact_is_scrubbed() -> None:
    first = _key()
    assert redact(first) == REDACTED
    later = _key()
    assert redact(f"{first} {later}") == f"{REDACTED} {REDACTED}"


def test_a_secret_no_longer_held_is_forgotten() -> None:
    """What keeps a process that rotates keys for weeks flat: only live keys stay known."""
    before = secrets_held()
    value = _key()
    twin = Secret(value)  # a second holder of the same value (another table, a route)
    assert secrets_held() == before + 1
    _HELD.clear()
    gc.collect()
    assert redact(value) == REDACTED  # the twin still holds it
    del twin
    gc.collect()
    assert redact(value) == value
    assert secrets_held() == before
    later = _key()  # the index still finds what comes after
    assert redact(f"{value} {later}") == f"{value} {REDACTED}"


def test_retain_secrets_keeps_every_value_seen_in_the_scope() -> None:
    """A command's error boundary scrubs every key the command handled, held or not."""
    kept = _key()
    with retain_secrets():
        _HELD.clear()  # seen before the scope, dropped during it
        inside = "sk-proj-" + secrets.token_urlsafe(24)
        Secret(inside)  # decrypted, used and dropped
        gc.collect()
        assert redact(f"{kept} {inside}") == f"{REDACTED} {REDACTED}"
    gc.collect()
    assert redact(f"{kept} {inside}") == f"{kept} {inside}"


# --- one known secret in its encodings (redact_secret: the key a request carried) -------

_ODD_KEY = "sk-proj/odd+chars=Zq9x8w7v6u5t"


def test_redact_secret_removes_every_common_encoding() -> None:
    import base64
    import json
    from urllib.parse import quote

    raw = _ODD_KEY.encode()
    encoded = [
        _ODD_KEY,
        quote(_ODD_KEY, safe=""),
        "sk-proj%2fodd%2bchars%3dZq9x8w7v6u5t",
        quote(_ODD_KEY),
        json.dumps(_ODD_KEY)[1:-1].replace("/", "\\/"),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.b64encode(b"Bearer " + raw).decode(),
        base64.b64encode(raw + b":").decode(),
        base64.b64encode(b":" + raw).decode(),
    ]
    for text in encoded:
        assert model.redact_secret(f"said <{text}>", _ODD_KEY) == f"said <{REDACTED}>"
        data = f'{{"id": "{text}"}}'.encode()
        assert model.redact_secret_bytes(data, _ODD_KEY) == f'{{"id": "{REDACTED}"}}'.encode()
    # Text without the key, and a missing key, change nothing.
    assert model.redact_secret("gpt-4o and sk-proj-other", _ODD_KEY) == "gpt-4o and sk-proj-other"
    assert model.redact_secret("anything", "") == "anything"


@settings(max_examples=300, deadline=None)
@given(
    # Distinct characters: a periodic key could match shifted against itself, which hides
    # nothing (the shift shows the same bytes) but would blur the bounds checked here.
    key=st.lists(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=8, max_size=64, unique=True
    ).map("".join),
    before=st.binary(max_size=10),
    after=st.binary(max_size=10),
    urlsafe=st.booleans(),
)
def test_a_key_anywhere_in_a_base64_blob_cannot_be_read_back(
    key: str, before: bytes, after: bytes, urlsafe: bool
) -> None:
    """Whatever surrounds the key, at most the characters that also encode its
    neighbours survive: at most 2 of the key's bytes at each end can be decoded."""
    import base64

    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    blob = encode(before + key.encode() + after).decode()
    out = model.redact_secret(blob, key)
    assert REDACTED in out
    # The characters that encode only the key's bytes start after the filler's group
    # boundary and end before the next one: none of them may be left.
    start = -(-len(before) * 4 // 3)
    end = (len(before) + len(key)) * 4 // 3
    head = out.partition(REDACTED)[0]
    tail = out.rpartition(REDACTED)[2]
    assert len(head) <= start and blob.startswith(head)
    assert len(blob) - len(tail) >= end and blob.endswith(tail)
