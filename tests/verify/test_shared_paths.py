"""The paths several adapters share: pagination, the status call after a model list, and
the effects every entry point accepts. Over a real loopback server."""

from __future__ import annotations

from typing import Any

import pytest

from byokctl.model import DesiredState, Workspace
from byokctl.verify import Outcome, RetryPolicy, list_models, verify_desired, verify_workspaces
from tests.verify.conftest import ProviderServer, Reply, Seen
from tests.verify.shapes import LIST_PATH, PREFIX, config, env_for, model_list, serve_ok

CANARY = "sk-canary-shared-7f6e5d4c3b2a1100"
ONCE = RetryPolicy(attempts=1)
NEXT = {"anthropic": {"has_more": True}, "gemini": {"nextPageToken": "t1"}}


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
@pytest.mark.parametrize("on_page", [0, 1])
def test_a_page_that_is_not_a_model_list(
    provider_server: ProviderServer, provider: str, on_page: int
) -> None:
    def page(seen: Seen) -> Reply:
        first = not ({"after_id", "pageToken"} & seen.query.keys())
        if first and on_page == 1:
            return Reply(200, {**model_list(provider), **NEXT[provider]})
        return Reply(200, {"data": "nope", "models": "nope"})

    provider_server.route(PREFIX[provider] + LIST_PATH[provider], page)
    got = list_models(config(provider, CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is Outcome.UNEXPECTED
    assert got.classification.detail.endswith(": the answer is not a list of models")
    assert got.models == ()
    assert len(provider_server.seen()) == on_page + 1


@pytest.mark.parametrize(("provider", "path"), [("xai", "/api-key"), ("deepseek", "/user/balance")])
@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(401, {"error": "no"}), Outcome.INVALID_KEY),
        (Reply(200, ["not", "a", "mapping"]), Outcome.OK),
    ],
)
def test_the_status_call_after_the_model_list(
    provider_server: ProviderServer, provider: str, path: str, reply: Reply, expected: Outcome
) -> None:
    serve_ok(provider_server, provider)
    provider_server.route(PREFIX[provider] + path, reply)
    got = list_models(config(provider, CANARY), env=env_for(provider_server), retry=ONCE)
    assert got.classification.outcome is expected
    assert bool(got.models) is (expected is Outcome.OK)


def test_an_unknown_effect_is_a_type_error() -> None:
    cfg = config("openai", CANARY)
    ws = Workspace(name="w", providers={"openai": cfg})
    wrong: dict[str, Any] = {"retyr": ONCE}
    with pytest.raises(TypeError, match="retyr"):
        list_models(cfg, **wrong)
    with pytest.raises(TypeError, match="retyr"):
        verify_workspaces([ws], **wrong)
    with pytest.raises(TypeError, match="retyr"):
        verify_desired(DesiredState({"w": ws}, {}), **wrong)
