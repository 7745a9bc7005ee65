"""What the application reports, checked and classified: ``report``'s input side.

The classifier lives in :mod:`byokctl.classify`, imported on first use:
importing the verify package pulls httpx (and with it the CLI's click and rich), which
an application that only resolves never needs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from byokctl.model import redact_secret
from byokctl.store.runtime import capped_retry_after

from ._route import ProviderResponse

if TYPE_CHECKING:
    from byokctl.classify import Classification

_ACCEPTED = (
    "Classification, Outcome, an outcome string such as 'ok', ProviderResponse, or an exception"
)


def check_outcome(outcome: object) -> None:
    """A :class:`TypeError` / :class:`ValueError` for what ``report`` cannot take (a bug)."""
    from byokctl.classify import Classification, Outcome  # noqa: PLC0415

    if isinstance(outcome, (Classification, BaseException)):
        return
    if isinstance(outcome, ProviderResponse):
        status = outcome.status
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError(
                f"ProviderResponse.status must be an int HTTP status, not {type(status).__name__}"
            )
        if not isinstance(outcome.body, (bytes, bytearray, str)):
            raise TypeError(
                f"ProviderResponse.body must be bytes, not {type(outcome.body).__name__}"
            )
        return
    if isinstance(outcome, str):
        if outcome not in Outcome._value2member_map_:
            values = ", ".join(o.value for o in Outcome)
            raise ValueError(f"cannot report {outcome!r}: an outcome string is one of {values}")
        return
    raise TypeError(f"cannot report {type(outcome).__name__}: report takes {_ACCEPTED}")


def classify(provider: str, outcome: object, key: str | None) -> Classification:
    """The classification of a checked ``outcome``, sanitized (see :func:`safe`)."""
    return safe(_classify(provider, outcome, key), key)


def unclassifiable() -> Classification:
    """What a failure the classifier itself failed on counts as."""
    from byokctl.classify import Classification, Outcome  # noqa: PLC0415

    return Classification(Outcome.UNEXPECTED, "the failure could not be classified")


def _classify(provider: str, outcome: object, key: str | None) -> Classification:
    from byokctl.classify import (  # noqa: PLC0415
        Classification,
        Outcome,
        classify_exception,
        classify_response,
        meaning,
    )

    if isinstance(outcome, Classification):
        return outcome
    if isinstance(outcome, ProviderResponse):
        body = outcome.body.encode() if isinstance(outcome.body, str) else bytes(outcome.body)
        # The answer is untrusted: the key it was sent with is redacted before it is read.
        return classify_response(provider, outcome.status, outcome.headers, body, key=key)
    if isinstance(outcome, BaseException):
        return classify_exception(provider, outcome, key=key)
    value = Outcome(str(outcome))  # a valid outcome string: checked by check_outcome
    return Classification(value, meaning(value))


def safe(c: Classification, key: str | None) -> Classification:
    """``c`` with a sanitized detail and a capped Retry-After (an app may have built it).

    ``key`` (the route's) is redacted from the detail in all its encodings first.
    """
    from byokctl.classify import sanitize  # noqa: PLC0415

    detail = c.detail if isinstance(c.detail, str) else str(c.detail)
    detail = sanitize(redact_secret(detail, key) if key else detail)
    raw: object = c.retry_after
    ok = isinstance(raw, (int, float)) and not isinstance(raw, bool)
    retry = capped_retry_after(float(raw)) if ok else None  # type: ignore[arg-type]
    if detail == c.detail and retry == c.retry_after:
        return c
    return replace(c, detail=detail, retry_after=retry)
