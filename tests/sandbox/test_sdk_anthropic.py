"""Fidelity: the official ``anthropic`` SDK pages the sandbox's model list and raises the right classes."""

from __future__ import annotations

import anthropic
import pytest

from byokctl.catalog import PROVIDERS
from byokctl.sandbox import Sandbox

from .conftest import base

KNOWN = list(PROVIDERS["anthropic"].known_models)


def client(sb: Sandbox, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=key, base_url=base(sb, "anthropic"), max_retries=0)


def test_auto_pagination_over_several_pages(sb: Sandbox) -> None:
    page = client(sb, "good").models.list(limit=2)
    assert page.has_more
    assert [m.id for m in page] == KNOWN  # iterating follows after_id to the end
    pages = [r for r in sb.requests if r.path == "/anthropic/v1/models"]
    assert len(pages) == -(-len(KNOWN) // 2)  # ceil(n / 2) requests


def test_one_page_and_its_cursors(sb: Sandbox) -> None:
    page = client(sb, "good").models.list(limit=3, after_id=KNOWN[0])
    assert [m.id for m in page.data] == KNOWN[1:4]
    assert (page.first_id, page.last_id, page.has_more) == (KNOWN[1], KNOWN[3], True)
    before = client(sb, "good").models.list(limit=10, before_id=KNOWN[3])
    assert [m.id for m in before.data] == KNOWN[:3]
    assert before.has_more is False


def test_retrieve_and_message(sb: Sandbox) -> None:
    c = client(sb, "good")
    assert c.models.retrieve(KNOWN[0]).display_name == "Claude 3.5 Sonnet"
    msg = c.messages.create(
        model=KNOWN[0], max_tokens=16, messages=[{"role": "user", "content": "hi"}]
    )
    assert msg.content[0].type == "text"
    with pytest.raises(anthropic.NotFoundError):
        c.messages.create(
            model="claude-0", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )


@pytest.mark.parametrize(
    ("key", "exc_class", "error_type"),
    [
        ("invalid", anthropic.AuthenticationError, "authentication_error"),
        ("nocredits", anthropic.BadRequestError, "invalid_request_error"),
        ("forbidden", anthropic.PermissionDeniedError, "permission_error"),
        ("rate-limited", anthropic.RateLimitError, "rate_limit_error"),
        ("outage", anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_error_classes(
    sb: Sandbox, key: str, exc_class: type[anthropic.APIStatusError], error_type: str
) -> None:
    with pytest.raises(exc_class) as caught:
        client(sb, f"sk-ant-{key}").models.list()
    assert caught.value.type == error_type


def test_credit_balance_and_overload_details(sb: Sandbox) -> None:
    with pytest.raises(anthropic.BadRequestError) as credits:
        client(sb, "nocredits").models.list()
    assert "credit balance is too low" in str(credits.value.api_message)
    with pytest.raises(anthropic.InternalServerError) as overloaded:
        client(sb, "outage").models.list()
    assert overloaded.value.status_code == 529
    with pytest.raises(anthropic.RateLimitError) as limited:
        client(sb, "ratelimited").models.list()
    assert limited.value.response.headers["retry-after"] == "1"


def test_x_api_key_header_and_version_are_checked(sb: Sandbox) -> None:
    # PROVIDERS.md's header; the SDK itself sends the key as a bearer token.
    c = anthropic.Anthropic(
        api_key="unused",
        base_url=base(sb, "anthropic"),
        max_retries=0,
        default_headers={"Authorization": anthropic.omit, "x-api-key": "good"},
    )
    assert [m.id for m in c.models.list()] == KNOWN
    with pytest.raises(anthropic.BadRequestError) as caught:
        c.models.list(extra_headers={"anthropic-version": ""})
    assert "anthropic-version" in str(caught.value.api_message)
