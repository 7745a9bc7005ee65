"""Classifying a provider's HTTP answer: status, body and headers → :class:`Classification`.

Pure: no I/O. Statuses are ambiguous across providers, so the body decides where it must.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from byokctl.classify._outcome import (
    SHORT_NAMES,
    TRANSIENT,
    Classification,
    Outcome,
    meaning,
    sanitize,
)
from byokctl.model import redact_secret, redact_secret_bytes

# --- reading bodies and headers ----------------------------------------------------------


@dataclass(frozen=True)
class _Error:
    """The fields of a provider error body that classification reads (all lower-cased)."""

    message: str = ""
    code: str = ""
    type: str = ""
    status: str = ""
    reasons: tuple[str, ...] = ()
    quota_ids: tuple[str, ...] = ()
    retry_delay: float | None = None


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _str(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _seconds(value: str) -> float | None:
    """``"37s"``, ``"1.5s"``, ``"2"`` → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*s?\s*", value)
    return float(match.group(1)) if match else None


def _error_of(doc: Any) -> _Error:
    """Extract the error fields from any of the six providers' error shapes."""
    if not isinstance(doc, Mapping):
        return _Error()
    err = doc.get("error")
    if isinstance(err, Mapping):
        # OpenAI/DeepSeek/Azure: {"error":{"message","type","code"}};
        # Anthropic: {"type":"error","error":{"type","message"}};
        # Gemini: {"error":{"code":400,"message","status","details":[...]}}.
        reasons: list[str] = []
        quota_ids: list[str] = []
        delay: float | None = None
        details = err.get("details")
        for item in details if isinstance(details, list) else []:
            if not isinstance(item, Mapping):
                continue
            if item.get("reason"):
                reasons.append(_str(item["reason"]))
            for v in item.get("violations") or []:
                if isinstance(v, Mapping):
                    quota_ids.append(_str(v.get("quotaId")) + " " + _str(v.get("quotaMetric")))
            if "retryDelay" in item:
                delay = _seconds(_str(item["retryDelay"]))
        return _Error(
            message=_str(err.get("message")),
            code=_str(err.get("code")).lower(),
            type=_str(err.get("type")).lower(),
            status=_str(err.get("status")).lower(),
            reasons=tuple(r.lower() for r in reasons),
            quota_ids=tuple(q.lower() for q in quota_ids),
            retry_delay=delay,
        )
    # xAI: {"code": "...", "error": "Incorrect API key provided: xa***ey ..."}
    if isinstance(err, str):
        return _Error(message=err, code=_str(doc.get("code")).lower())
    message = doc.get("message") or doc.get("detail")
    return _Error(message=_str(message), code=_str(doc.get("code")).lower())


def _retry_after(headers: Mapping[str, str], err: _Error) -> float | None:
    lower = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lower:  # OpenAI sends both; the millisecond one is more precise
        ms = _seconds(lower["retry-after-ms"])
        if ms is not None:
            return ms / 1000
    value = lower.get("retry-after")
    if value:
        seconds = _seconds(value)
        if seconds is not None:
            return seconds
        # An HTTP date is relative to the answer's own Date header (this module has no clock).
        try:
            if "date" in lower:
                delta = parsedate_to_datetime(value) - parsedate_to_datetime(lower["date"])
                return max(0.0, delta.total_seconds())
        except (TypeError, ValueError, IndexError):
            pass
    if err.retry_delay is not None:
        return err.retry_delay
    # Azure: "... Please retry after 12 seconds."
    match = re.search(r"retry after (\d+(?:\.\d+)?) second", err.message, re.IGNORECASE)
    return float(match.group(1)) if match else None


# --- classification ----------------------------------------------------------------------


def _mentions(err: _Error, *needles: str) -> bool:
    hay = " ".join((err.message.lower(), err.code, err.type, err.status, *err.reasons))
    return any(n in hay for n in needles)


def _is_model_error(err: _Error) -> bool:
    # "The model `x` does not exist" (OpenAI, xAI), "model: x" (Anthropic), "models/x is
    # not found" (Gemini); a bare 404 "Invalid URL (GET /v1/modelz)" is a bad endpoint.
    return _mentions(err, "model_not_found", "model not exist", "the model ", "model:", "models/")


def _is_gateway_model_error(err: _Error) -> bool:
    # LiteLLM: 400 "Invalid model name passed in model=x"; Ollama: 404 "model \"x\" not
    # found, try pulling it first"; vLLM and others speak OpenAI's "The model `x` ...".
    message = err.message.lower()
    return (
        _is_model_error(err)
        or "invalid model" in message
        or ("model" in message and "not found" in message)
    )


def _outcome(provider: str, status: int, err: _Error) -> Outcome:
    if 200 <= status < 300:
        return Outcome.OK
    if 300 <= status < 400:
        # We never follow a redirect with a key; a provider API does not redirect.
        return Outcome.BAD_ENDPOINT
    if status in (408, 504, 524):  # the server or a gateway gave up waiting
        return Outcome.TIMEOUT
    if status >= 500:  # 500, 502, 503, Anthropic's 529 overloaded_error
        return Outcome.OUTAGE

    credit_words = ("insufficient_quota", "credit balance", "billing", "insufficient balance")
    if provider == "gemini":
        if "api_key_invalid" in err.reasons or _mentions(
            err, "api key not valid", "api key expired"
        ):
            return Outcome.INVALID_KEY
        if status == 400 and err.status == "failed_precondition":
            return Outcome.NO_CREDITS  # billing not enabled for the project
        if status == 429 and any("perday" in q or "per day" in q for q in err.quota_ids):
            return Outcome.NO_CREDITS  # a daily quota: no retry helps today
        if status == 429:
            return Outcome.RATE_LIMITED
        if status in (401,):
            return Outcome.INVALID_KEY
        if status == 403:
            return Outcome.PERMISSION
        if status == 404:
            return Outcome.MODEL_NOT_AVAILABLE if _is_model_error(err) else Outcome.BAD_ENDPOINT
        return Outcome.UNEXPECTED

    if provider == "xai":
        if status == 401 or _mentions(err, "incorrect api key", "invalid api key"):
            return Outcome.INVALID_KEY
        if status == 403:
            return Outcome.NO_CREDITS if _mentions(err, "credit") else Outcome.PERMISSION
        if status == 429:
            return Outcome.RATE_LIMITED
        if status == 404:
            return Outcome.MODEL_NOT_AVAILABLE if _is_model_error(err) else Outcome.BAD_ENDPOINT
        if status == 402:
            return Outcome.NO_CREDITS
        return Outcome.UNEXPECTED

    if provider == "azure_openai":
        if status == 401:
            return Outcome.INVALID_KEY
        if status == 403:
            # Cognitive Services: "Out of call volume quota ... raise your spending limit".
            quota = _mentions(err, "call volume quota", "spending limit", "billing", "credit")
            return Outcome.NO_CREDITS if quota else Outcome.PERMISSION
        if status == 404:
            if err.code == "deploymentnotfound":
                return Outcome.DEPLOYMENT_NOT_FOUND
            return (
                Outcome.MODEL_NOT_AVAILABLE
                if err.code == "model_not_found"
                else (Outcome.BAD_ENDPOINT)
            )
        if status == 429:
            return (
                Outcome.NO_CREDITS
                if _mentions(err, "insufficient_quota")
                else (Outcome.RATE_LIMITED)
            )
        if status == 402:
            return Outcome.NO_CREDITS
        return Outcome.UNEXPECTED

    if provider == "openai_compatible" and status in (400, 404) and _is_gateway_model_error(err):
        return Outcome.MODEL_NOT_AVAILABLE

    # openai, anthropic, deepseek (and any OpenAI-compatible provider)
    if status == 401:
        return Outcome.INVALID_KEY
    if status == 402:
        return Outcome.NO_CREDITS  # DeepSeek "Insufficient Balance", Anthropic billing_error
    if status == 403:
        return Outcome.PERMISSION
    if status == 404:
        return Outcome.MODEL_NOT_AVAILABLE if _is_model_error(err) else Outcome.BAD_ENDPOINT
    if status == 429:
        # OpenAI's insufficient_quota and Anthropic's spend limit are not rate limits.
        if _mentions(err, *credit_words, "spend limit", "usage limit"):
            return Outcome.NO_CREDITS
        return Outcome.RATE_LIMITED
    if status == 400:
        if _mentions(err, *credit_words):
            return Outcome.NO_CREDITS  # Anthropic: "Your credit balance is too low…"
        if _mentions(err, "model not exist", "model_not_found"):
            return Outcome.MODEL_NOT_AVAILABLE  # DeepSeek: 400 "Model Not Exist"
    return Outcome.UNEXPECTED


def parse_answer(body: bytes, key: str | None) -> Any:
    """The JSON document in ``body`` (``None`` if it is not JSON), without ``key``.

    ``body`` must be redacted of ``key`` already (:func:`~byokctl.model.redact_secret_bytes`).
    Then only a JSON escape (``\\uXXXX``, ``\\/``) can spell the key in a parsed string,
    so the parsed document is walked (:func:`redact_document`) only when the body has a
    backslash: a model list of thousands of ids costs no extra pass.
    """
    doc = _parse_json(body)
    if key and b"\\" in body:
        doc = redact_document(doc, key)
    return doc


def redact_document(doc: Any, key: str) -> Any:
    """A parsed JSON answer with ``key`` redacted from every string in it, names included.

    The byte-level redaction of an answer (:func:`~byokctl.model.redact_secret_bytes`)
    cannot see a key a JSON string spells with ``\\u`` escapes; after parsing, nothing
    is hidden any more.
    """
    if isinstance(doc, str):
        return redact_secret(doc, key)
    if isinstance(doc, list):
        return [redact_document(item, key) for item in doc]
    if isinstance(doc, dict):
        return {redact_secret(str(k), key): redact_document(v, key) for k, v in doc.items()}
    return doc


def key_format_problem(key: str) -> str | None:
    """Why ``key`` cannot be sent in an HTTP header, or ``None`` when it can.

    A header value carries visible ASCII only (RFC 9110 ``VCHAR``; no key has spaces).
    The answer names the kind of character and its position, never the character.
    """
    for position, char in enumerate(key, start=1):
        if "!" <= char <= "~":
            continue
        rest = key[position - 1 :]
        if not rest.strip():  # only whitespace from here to the end
            broken = "\n" in rest or "\r" in rest
            what = "it ends with a line break" if broken else "it ends with whitespace"
        elif char.isspace() and not key[:position].strip():
            what = "it starts with whitespace"
        elif char.isspace():
            what = f"it contains whitespace (character {position} of {len(key)})"
        elif char.isascii():
            what = f"it contains a control character (character {position} of {len(key)})"
        else:
            what = f"it contains a non-ASCII character (character {position} of {len(key)})"
        return what
    return None


def classify_key_format(provider: str, key: str) -> Classification | None:
    """``invalid_key_format`` when ``key`` cannot be sent at all (:func:`key_format_problem`)."""
    problem = key_format_problem(key)
    if problem is None:
        return None
    name = SHORT_NAMES.get(provider, provider)
    return Classification(
        Outcome.INVALID_KEY_FORMAT,
        f"{name}: {meaning(Outcome.INVALID_KEY_FORMAT)}: {problem}; "
        "encrypt the key again without it",
    )


def classify_response(
    provider: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    key: str | None = None,
) -> Classification:
    """Classify one HTTP answer from ``provider`` (a list-models call or a real request).

    ``key`` is the key the request carried: the answer is untrusted, and the key (in any
    of its common encodings, :func:`~byokctl.model.secret_forms`) is removed from it
    before anything is read.
    """
    if key:
        body = redact_secret_bytes(body, key)
        headers = {redact_secret(k, key): redact_secret(v, key) for k, v in headers.items()}
    doc = parse_answer(body, key)
    err = _error_of(doc)
    outcome = _outcome(provider, status, err)
    name = SHORT_NAMES.get(provider, provider)
    detail = f"{name}: {meaning(outcome)} (HTTP {status}"
    if 300 <= status < 400:
        # Only the status: a Location may point anywhere and is not ours to print in full.
        detail += ", a redirect, not followed"
    elif outcome is not Outcome.OK and err.message:
        detail += f": {err.message}"
    elif outcome is not Outcome.OK and not err.message and body and doc is None:
        detail += ", not JSON"
    detail = sanitize(detail + ")")
    retry = _retry_after(headers, err) if outcome in TRANSIENT else None
    return Classification(outcome, detail, retry)
