"""What a provider's answer means: ok, or which kind of failure, and whether waiting helps.

Pure: no I/O. The verification adapters and the runtime resolver both classify every
answer here, so that a plan and a live request agree on what "invalid key" or "out of
credits" looks like for each provider (``PROVIDERS.md``, "What failures look like").

Statuses are ambiguous across providers, so the body decides where it must: OpenAI's
429 ``insufficient_quota`` is out of credits (waiting never helps), not a rate limit;
Gemini's invalid key is a 400 with ``API_KEY_INVALID``; xAI's is a 400 "Incorrect API
key"; Anthropic's 529 is an overload.

A :class:`Classification`'s ``detail`` is safe to print: provider text is stripped of
control characters, of anything shaped like a key (providers echo masked keys: "sk-ab***yz")
and of every secret this process has handled, and capped in length. Given the key the
request carried, :func:`classify_response` first redacts it from the answer in all its
common encodings (an answer is untrusted: a gateway may echo the key it received).
"""

from __future__ import annotations

from byokctl.classify._exception import classify_exception
from byokctl.classify._outcome import (
    MAX_DETAIL,
    MAX_SCAN,
    STICKY,
    TRANSIENT,
    UNCONFIRMED,
    Classification,
    ClassifiedFailure,
    Outcome,
    meaning,
    sanitize,
)
from byokctl.classify._response import (
    classify_key_format,
    classify_response,
    key_format_problem,
    parse_answer,
    redact_document,
)

__all__ = [
    "MAX_DETAIL",
    "MAX_SCAN",
    "STICKY",
    "TRANSIENT",
    "UNCONFIRMED",
    "Classification",
    "ClassifiedFailure",
    "Outcome",
    "classify_exception",
    "classify_key_format",
    "classify_response",
    "key_format_problem",
    "meaning",
    "parse_answer",
    "redact_document",
    "sanitize",
]
