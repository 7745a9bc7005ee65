"""The domain: workspaces, their provider configurations and secrets.

These are plain frozen values with no I/O. A :class:`Secret` never shows its value in
``repr``/``str``; the only way to read it is :meth:`Secret.reveal`, which makes every
place that handles a plaintext key easy to find.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import json
import re
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Final, cast
from urllib.parse import quote, quote_plus

#: The route name used when no custom provider serves a workspace.
NEO: Final = "neo"
#: The route name when policy forbids Neo and the workspace's provider cannot serve:
#: the application shows "AI unavailable"; nothing is charged (``spec.fallback``).
UNAVAILABLE: Final = "unavailable"

REDACTED: Final = "(sensitive)"

# The secrets ``redact`` scrubs, as a last line of defence in messages and crash logs:
# every value held by a live ``Secret``, plus, inside a ``retain_secrets()`` scope (a
# command line run), every value seen since the scope began. Outside a scope the registry
# forgets a value when its last ``Secret`` is collected, so a process that runs for weeks
# with rotating keys holds only the keys it still uses.
#
# Each value has one ``_Seen`` marker, shared by all the ``Secret`` objects that hold it
# and referenced weakly from the registry; the weakref's callback queues the value in
# ``_forgotten`` (a deque append, safe in a garbage-collector callback that may run while
# this thread holds ``_LOCK``), and the queue is drained under the lock by the next
# registration or lookup.
#
# ``redact`` must stay cheap with thousands of secrets (one per workspace of a large plan),
# so it does not test every secret against every text. A secret made only of key characters
# lies inside one run of such characters in any text that contains it; the runs of prose
# are few and short, and an index by a secret's last ``_TAIL`` characters (the random part:
# keys share their first ones, "sk-proj-") names the only secrets that can end at each
# position of a run. Secrets the runs cannot find (shorter, or with other characters) are
# tested one by one. Below ``_INDEX_FROM`` secrets, testing each one is cheaper still.
_TAIL: Final = 8
_INDEX_FROM: Final = 64
_KEY_CHARS: Final = re.compile(rf"[A-Za-z0-9_\-]{{{_TAIL},}}")
_LOCK = threading.Lock()


class _Seen:
    """The registry's marker for one secret value: alive while a ``Secret`` holds it."""

    __slots__ = ("__weakref__", "value")

    def __init__(self, value: str) -> None:
        self.value = value


class _SeenRef(weakref.ref[_Seen]):
    __slots__ = ("value",)
    value: str


_live: dict[str, _SeenRef] = {}
_by_tail: dict[str, set[str]] = {}
_unindexed: set[str] = set()
_forgotten: deque[str] = deque()
#: The markers each active ``retain_secrets`` scope keeps alive.
_scopes: list[set[_Seen]] = []


def _forget(ref: weakref.ref[_Seen]) -> None:
    # Runs inside the garbage collector: no lock, only an atomic append.
    _forgotten.append(cast(_SeenRef, ref).value)


def _drain_forgotten() -> None:
    """Drop the values whose last ``Secret`` is gone (call with ``_LOCK`` held)."""
    while _forgotten:
        value = _forgotten.popleft()
        ref = _live.get(value)
        if ref is None or ref() is not None:
            continue  # registered again meanwhile: a new marker holds it
        del _live[value]
        tail = _by_tail.get(value[-_TAIL:])
        if tail is not None:
            tail.discard(value)
            if not tail:
                del _by_tail[value[-_TAIL:]]
        _unindexed.discard(value)


def _register(value: str) -> _Seen:
    """The marker for ``value``, registering it for ``redact`` if it is new."""
    with _LOCK:
        _drain_forgotten()
        ref = _live.get(value)
        seen = ref() if ref is not None else None
        if seen is None:
            seen = _Seen(value)
            ref = _SeenRef(seen, _forget)
            ref.value = value
            _live[value] = ref
            if _KEY_CHARS.fullmatch(value):
                _by_tail.setdefault(value[-_TAIL:], set()).add(value)
            elif value:
                _unindexed.add(value)
        for scope in _scopes:
            scope.add(seen)
        return seen


@contextlib.contextmanager
def retain_secrets() -> Iterator[None]:
    """Within the block, ``redact`` scrubs every secret seen, even after its ``Secret`` is gone.

    For a command line run: its error boundary must scrub every key the command handled,
    wherever a message picked it up. A long-running process (a resolver, a server) does
    not use one around its whole life, or it would keep every rotated key; it relies on
    the live secrets, which ``redact`` always covers.
    """
    with _LOCK:
        held = {seen for ref in _live.values() if (seen := ref()) is not None}
        _scopes.append(held)
    try:
        yield
    finally:
        with _LOCK:
            _scopes.remove(held)


def secrets_held() -> int:
    """How many secret values ``redact`` covers now (live ones and retained ones)."""
    with _LOCK:
        _drain_forgotten()
        return len(_live)


def _secrets_in(text: str) -> set[str]:
    """The registered secrets that occur in ``text``."""
    with _LOCK:
        _drain_forgotten()
        if len(_live) < _INDEX_FROM:
            return {value for value in _live if value and value in text}
        present = {value for value in _unindexed if value in text}
        for run in _KEY_CHARS.findall(text):
            for end in range(_TAIL, len(run) + 1):
                candidates = _by_tail.get(run[end - _TAIL : end])
                if candidates:
                    present.update(value for value in candidates if value in run)
        return present


def redact(text: str) -> str:
    """Replace every secret value of a live ``Secret`` (or retained) with ``(sensitive)``.

    A secret that contains another is replaced first, so no part of it stays visible.
    """
    return _replace_longest_first(text, _secrets_in(text))


def _replace_longest_first(text: str, values: Iterable[str]) -> str:
    # A value that contains another is replaced first, so no part of it stays visible.
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, REDACTED)
    return text


#: Shorter forms are not redacted: they would scrub ordinary words (as for ``Secret``).
_MIN_FORM: Final = 8
#: What a header carries around a key besides the key alone: ``Authorization: Bearer K``,
#: and HTTP Basic credentials with the key as the user (``K:``) or the password (``:K``).
_HEADER_WRAPPINGS: Final = ("Bearer {}", "{}:", ":{}")
_HEX_ESCAPE: Final = re.compile(r"%[0-9A-F]{2}")


def _base64_cores(raw: bytes, encode: Callable[[bytes], bytes]) -> list[str]:
    """The characters that encode ``raw`` in *any* base64 text, at each byte alignment.

    Base64 turns 3 bytes into 4 characters, so how a key inside a longer blob is encoded
    depends on where it starts modulo 3. For each alignment the key is encoded after that
    many filler bytes, and the characters that also depend on the filler (or on what
    follows the key) are dropped: what remains appears in every base64 encoding of every
    blob that holds the key at such an offset.
    """
    cores = []
    for align, drop in ((0, 0), (1, 2), (2, 3)):
        total = align + len(raw)
        encoded = encode(bytes(align) + raw).decode().rstrip("=")
        # Of a last partial group of r bytes, the first r characters depend on them alone.
        cores.append(encoded[drop : 4 * (total // 3) + total % 3])
    return cores


# One entry per key: an answer is scanned string by string with the key it was sent with.
# Small, since it keeps plaintext keys alive: enough for verify's concurrent requests.
@functools.lru_cache(maxsize=128)
def secret_forms(value: str) -> tuple[str, ...]:
    """``value`` and the common encodings it travels in, longest first.

    The raw value; percent-encoded (as a URL or a form carries it); JSON-escaped; base64
    and base64url of the value and of the header forms ``Bearer VALUE``, ``VALUE:`` and
    ``:VALUE``, with and without padding; and the base64/base64url characters that encode
    the value inside any longer blob (:func:`_base64_cores`). Forms shorter than 8
    characters are left out: they would match ordinary text.
    """
    raw = value.encode("utf-8", "surrogatepass")
    escaped = json.dumps(value)[1:-1]
    forms = {
        value,
        quote(value, safe=""),
        _HEX_ESCAPE.sub(lambda m: m.group().lower(), quote(value, safe="")),  # %2f is as valid
        quote(value),
        quote_plus(value),
        escaped,
        escaped.replace("/", "\\/"),  # JSON may escape "/" too
        json.dumps(value, ensure_ascii=False)[1:-1],
    }
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for wrapping in ("{}", *_HEADER_WRAPPINGS):
            encoded = encode(wrapping.format(value).encode("utf-8", "surrogatepass")).decode()
            forms |= {encoded, encoded.rstrip("=")}
        forms.update(_base64_cores(raw, encode))
    return tuple(sorted((f for f in forms if len(f) >= _MIN_FORM), key=len, reverse=True))


def redact_secret(text: str, value: str) -> str:
    """``text`` with ``value`` in each of its :func:`secret_forms` replaced by ``(sensitive)``.

    For a secret known where the text arrives (the key a request carried, which the
    answer may echo, encoded or not). :func:`redact` covers every secret the process
    holds (and, in a :func:`retain_secrets` scope, has held), in its raw form.
    """
    forms = secret_forms(value) if value else ()
    if not forms or len(text) < len(forms[-1]):  # shorter than the shortest form: no match
        return text
    return _replace_longest_first(text, [f for f in forms if f in text])


def redact_secret_bytes(data: bytes, value: str) -> bytes:
    """:func:`redact_secret` for bytes (an HTTP body): the forms' UTF-8 bytes are replaced."""
    if not value:
        return data
    marker = REDACTED.encode()
    for form in secret_forms(value):  # longest first, as in redact_secret
        encoded = form.encode("utf-8", "surrogatepass")
        if encoded in data:
            data = data.replace(encoded, marker)
    return data


class Secret:
    """A secret string (an API key). Its value is never printed, logged or pickled.

    While it lives, :func:`redact` scrubs its value from any text.
    """

    __slots__ = ("_seen", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        # Shorter strings would scrub ordinary words; keys are longer.
        self._seen = _register(value) if len(value) >= 8 else None

    def reveal(self) -> str:
        """Return the plaintext. Call only where the key is actually used."""
        return self._value

    def fingerprint(self, key: bytes) -> str:
        """A keyed fingerprint (HMAC-SHA256) that identifies the value without revealing it."""
        return hmac.new(key, self._value.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return f"Secret({REDACTED})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(hashlib.sha256(self._value.encode()).digest())

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


def _frozen(mapping: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(sorted(mapping.items())))


@dataclass(frozen=True)
class ProviderConfig:
    """One provider configured for a workspace: its model, settings and secrets.

    ``settings`` holds the non-secret fields other than ``model`` (for Azure OpenAI:
    ``endpoint``, ``api_version``, ``deployment``); ``secrets`` holds the secret fields
    (``api_key``). ``models`` maps a feature id (``summarize``) to the model it uses
    instead of ``model``, the default.
    """

    provider: str
    model: str
    settings: Mapping[str, str] = field(default_factory=dict)
    secrets: Mapping[str, Secret] = field(default_factory=dict)
    models: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", _frozen(self.settings))
        object.__setattr__(self, "secrets", _frozen(self.secrets))
        object.__setattr__(self, "models", _frozen(self.models))

    def model_for(self, feature: str) -> str:
        """The model ``feature`` runs on: its own (``models``), else the default."""
        return self.models.get(feature, self.model)


#: ``spec.fallback.per``: the window a Neo credit cap counts in.
CAP_PERIODS: Final = ("episode", "day", "month")
#: ``spec.fallback.return``: what ends a sticky failure episode.
RETURN_POLICIES: Final = ("on_credentials_change", "on_recovery")


@dataclass(frozen=True)
class FallbackPolicy:
    """What happens when the workspace's provider cannot serve (``spec.fallback``).

    The default is the seed's rule: Neo takes over, without a cap, until the credentials
    change. ``neo=False``: never Neo (the route is ``unavailable``). ``max_neo_credits``:
    at most that many Neo credits ``per`` episode, UTC day or UTC month. ``return_``
    ``on_recovery``: a successful probe closes a sticky episode (``invalid_key`` excepted).
    """

    neo: bool = True
    max_neo_credits: int | None = None
    per: str = "episode"
    return_: str = "on_credentials_change"

    def __post_init__(self) -> None:
        if self.per not in CAP_PERIODS:
            raise ValueError(f"fallback.per must be one of {', '.join(CAP_PERIODS)}")
        if self.return_ not in RETURN_POLICIES:
            raise ValueError(f"fallback.return must be one of {', '.join(RETURN_POLICIES)}")
        if self.max_neo_credits is not None and self.max_neo_credits < 0:
            raise ValueError("fallback.max_neo_credits must not be negative")

    @property
    def is_default(self) -> bool:
        """Whether this is the seed's rule (what a file without ``spec.fallback`` means)."""
        return self == DEFAULT_FALLBACK

    def fields(self) -> dict[str, bool | int | str]:
        """The fields that differ from the default, as ``spec.fallback`` spells them."""
        out: dict[str, bool | int | str] = {}
        if not self.neo:
            out["neo"] = False
        if self.max_neo_credits is not None:
            out["max_neo_credits"] = self.max_neo_credits
            out["per"] = self.per
        elif self.per != "episode":
            out["per"] = self.per
        if self.return_ != "on_credentials_change":
            out["return"] = self.return_
        return out

    @classmethod
    def from_fields(cls, doc: Mapping[str, object]) -> FallbackPolicy:
        """The policy a ``spec.fallback`` mapping (or :meth:`fields`) describes."""
        cap = doc.get("max_neo_credits")
        return cls(
            neo=bool(doc.get("neo", True)),
            max_neo_credits=None if cap is None else int(cast(int, cap)),
            per=str(doc.get("per", "episode")),
            return_=str(doc.get("return", "on_credentials_change")),
        )


DEFAULT_FALLBACK: Final = FallbackPolicy()


@dataclass(frozen=True)
class Workspace:
    """A workspace's desired or live AI configuration.

    ``enabled`` names the one enabled provider, or is ``None`` when Neo powers the
    workspace's AI features. ``fallback`` is what happens when that provider fails.
    """

    name: str
    notify: tuple[str, ...] = ()
    enabled: str | None = None
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    fallback: FallbackPolicy = DEFAULT_FALLBACK

    def __post_init__(self) -> None:
        object.__setattr__(self, "providers", _frozen(self.providers))
        object.__setattr__(self, "notify", tuple(self.notify))

    @property
    def enabled_provider(self) -> ProviderConfig | None:
        """The configuration of the enabled provider, or ``None`` (Neo)."""
        return self.providers.get(self.enabled) if self.enabled else None


@dataclass(frozen=True)
class SourceFile:
    """A workspace file a desired state was read from, by content hash."""

    path: str
    sha256: str


@dataclass(frozen=True)
class DesiredState:
    """What the workspace files declare: workspaces by name, and where each came from."""

    workspaces: Mapping[str, Workspace]
    sources: Mapping[str, SourceFile]

    def __post_init__(self) -> None:
        object.__setattr__(self, "workspaces", _frozen(self.workspaces))
        object.__setattr__(self, "sources", _frozen(self.sources))


@dataclass(frozen=True)
class LiveWorkspace:
    """A workspace as the live store holds it.

    ``managed`` is true once ``byokctl apply`` has written the workspace; ``drifted`` is
    true when its configuration changed outside byokctl since then (the store compares a
    keyed digest of what apply last wrote with what it holds now).
    """

    workspace: Workspace
    managed: bool
    drifted: bool
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class UnreadableWorkspace:
    """A workspace whose live rows do not decode or decrypt: known by name, not by content.

    One bad row affects its workspace alone (the others read normally); what is known of
    it is what its plain columns still say. ``problem`` names the row and column, never a
    stored value. ``rows_digest`` (SHA-256 of the raw rows) changes when the rows are
    rewritten, so a reader can tell the same damage from new damage.
    """

    name: str
    problem: str
    enabled: str | None
    notify: tuple[str, ...]
    rows_digest: str


@dataclass(frozen=True)
class LiveState:
    """The live store's configuration at one serial. Runtime data (health, credits) is not here.

    ``unreadable``: workspaces the store holds but cannot decode (not in ``workspaces``).
    """

    serial: int
    workspaces: Mapping[str, LiveWorkspace]
    unreadable: Mapping[str, UnreadableWorkspace] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "workspaces", _frozen(self.workspaces))
        object.__setattr__(self, "unreadable", _frozen(self.unreadable))
