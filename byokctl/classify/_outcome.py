"""What a provider's answer means: the outcomes, their classes, and text safe to show.

Pure: no I/O. See :mod:`byokctl.classify` for how answers are classified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from byokctl.model import redact


class Outcome(StrEnum):
    """The class of a verification or request outcome; the values appear in plans and JSON."""

    OK = "ok"
    INVALID_KEY = "invalid_key"
    NO_CREDITS = "no_credits"
    PERMISSION = "permission"
    MODEL_NOT_AVAILABLE = "model_not_available"
    DEPLOYMENT_NOT_FOUND = "deployment_not_found"
    RATE_LIMITED = "rate_limited"
    OUTAGE = "outage"
    TIMEOUT = "timeout"
    BAD_ENDPOINT = "bad_endpoint"
    #: The key cannot be sent in an HTTP header (whitespace, a line break, non-ASCII).
    INVALID_KEY_FORMAT = "invalid_key_format"
    UNEXPECTED = "unexpected"


#: Waiting will not fix it; only new credentials (or configuration) will.
STICKY: Final[frozenset[Outcome]] = frozenset(
    {
        Outcome.INVALID_KEY,
        Outcome.NO_CREDITS,
        Outcome.PERMISSION,
        Outcome.MODEL_NOT_AVAILABLE,
        Outcome.DEPLOYMENT_NOT_FOUND,
        Outcome.BAD_ENDPOINT,
        Outcome.INVALID_KEY_FORMAT,
    }
)
#: May clear by itself: retry with backoff.
TRANSIENT: Final[frozenset[Outcome]] = frozenset(
    {Outcome.RATE_LIMITED, Outcome.OUTAGE, Outcome.TIMEOUT, Outcome.UNEXPECTED}
)
#: The transient outcomes in which the provider said nothing about the credentials: it
#: was busy, down or slow. Apply lets an enable through on these, with a warning
#: (``docs/verification.md``); ``unexpected`` is not among them (an answer came back and
#: could not be read: nothing says the key works).
UNCONFIRMED: Final[frozenset[Outcome]] = frozenset(
    {Outcome.RATE_LIMITED, Outcome.OUTAGE, Outcome.TIMEOUT}
)

#: Longest ``detail`` kept; provider messages can be long and are only a hint.
MAX_DETAIL: Final = 240

SHORT_NAMES: Final = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "gemini": "Gemini",
    "azure_openai": "Azure OpenAI",
    "xai": "xAI",
    "deepseek": "DeepSeek",
    "openai_compatible": "OpenAI-compatible",
}


@dataclass(frozen=True)
class Classification:
    """One classified answer. ``detail`` never contains a key; ``retry_after`` is in seconds."""

    outcome: Outcome
    detail: str
    retry_after: float | None = None

    @property
    def sticky(self) -> bool:
        """Whether only new credentials or configuration can fix it."""
        return self.outcome in STICKY

    @property
    def transient(self) -> bool:
        """Whether it may clear by itself (retry with backoff)."""
        return self.outcome in TRANSIENT


class ClassifiedFailure(Exception):
    """An exception that already knows its classification (raised by byokctl's own HTTP layer).

    :func:`classify_exception` returns ``classification`` as is.
    """

    def __init__(self, classification: Classification) -> None:
        super().__init__(classification.detail)
        self.classification = classification


# --- sanitizing provider text ------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
# Anything a provider may echo of a key: a masked key ("sk-ab***yz", "xa***ey"), a
# Google key ("AIza..."), or any long token of key characters. Model ids and words are
# shorter than 32 characters or contain no digit run long enough to matter.
_KEYLIKE = re.compile(
    r"[A-Za-z0-9_\-]*\*{2,}[A-Za-z0-9_\-]*"
    r"|AIza[0-9A-Za-z_\-]{8,}"
    r"|\b(?:sk|xai|pk|rk)-[A-Za-z0-9_\-]{6,}"
    r"|[A-Za-z0-9_\-]{32,}"
)


#: Provider text longer than this is cut before any pattern runs: the regexes cost
#: ~0.2 s per MB on the caller's thread, and only the first ``limit`` characters are kept.
MAX_SCAN: Final = 4096
_LAST_TOKEN = re.compile(r"\S*\Z")


def sanitize(text: str, limit: int = MAX_DETAIL) -> str:
    """Provider text made safe to show: no control characters, nothing key-shaped, capped.

    Text longer than :data:`MAX_SCAN` characters is cut first, and the token the cut
    went through is dropped (half a secret would no longer match the redaction).
    """
    if len(text) > max(MAX_SCAN, limit):
        text = _LAST_TOKEN.sub("", text[: max(MAX_SCAN, limit)])
    text = redact(text)
    text = _CONTROL.sub(" ", text)
    text = _KEYLIKE.sub("(redacted)", text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


_MEANING: Final = {
    Outcome.OK: "credentials accepted",
    Outcome.INVALID_KEY: "the API key is invalid or revoked",
    Outcome.NO_CREDITS: "the account has no credits or billing is not set up",
    Outcome.PERMISSION: "the key is not permitted to use this API",
    Outcome.MODEL_NOT_AVAILABLE: "the model is not available to this key",
    Outcome.DEPLOYMENT_NOT_FOUND: "the deployment does not exist on this resource",
    Outcome.RATE_LIMITED: "rate limited",
    Outcome.OUTAGE: "the provider is unavailable or overloaded",
    Outcome.TIMEOUT: "the provider did not answer in time",
    Outcome.BAD_ENDPOINT: "the endpoint is not the provider's API",
    Outcome.INVALID_KEY_FORMAT: "the API key cannot be sent in an HTTP header",
    Outcome.UNEXPECTED: "an unexpected answer",
}


def meaning(outcome: Outcome) -> str:
    """A short human description of ``outcome``."""
    return _MEANING[outcome]
