"""openai_compatible end to end: validate, verified plan, apply, resolve, import; the guard.

The workspace's own ``base_url`` points at the sandbox on 127.0.0.1 (plain http is allowed
for a loopback host) and the operator allows that network with
``BYOK_ALLOW_PRIVATE_ENDPOINTS=127.0.0.0/8``. Nothing here sends traffic outside
127.0.0.0/8: the private address of the refusal tests is a literal, refused before any
connection (proven by a transport that fails the test if it is ever asked).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from byokctl.classify import ClassifiedFailure, Outcome, classify_response
from byokctl.model import ProviderConfig, Secret, Workspace
from byokctl.sandbox import Sandbox
from byokctl.verify import RetryPolicy, VerifyCache, list_models
from byokctl.verify._http import Endpoint, checked_endpoint, private_allowed
from byokctl.verify._run import averify_workspaces
from tests.cli.running import run_cli
from tests.conftest import Repo
from tests.verify.conftest import ProviderServer, Reply

CANARY = "sk-compat-canary-4d3c2b1a0f9e"
MODEL = "qwen2.5-7b-instruct"


def compatible_yaml(
    name: str,
    base_url: str,
    *,
    key: str | None = CANARY,
    model: str = MODEL,
    headers: dict[str, str] | None = None,
) -> str:
    provider: dict[str, object] = {"model": model, "base_url": base_url, "name": "Acme gateway"}
    provider["id"] = "acme-gw"
    if headers is not None:
        provider["headers"] = headers
    if key is not None:
        provider["api_key"] = key
    doc = {
        "apiVersion": "byok/v1",
        "kind": "Workspace",
        "metadata": {"name": name, "notify": ["ops@acme.example"]},
        "spec": {"enabled": "openai_compatible", "providers": {"openai_compatible": provider}},
    }
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(port=0) as sb:
        yield sb


@pytest.fixture
def repo(make_repo: Callable[[], Repo], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    repo = make_repo()
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("BYOK_STORE", f"sqlite:///{tmp_path}/state.db")
    monkeypatch.setenv("BYOK_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("BYOK_ALLOW_PRIVATE_ENDPOINTS", "127.0.0.0/8")
    return repo


def _checks(plan_json: str) -> dict[str, dict[str, str]]:
    doc = json.loads(plan_json)
    return {
        change["name"]: {c["provider"]: c for c in change["checks"]} for change in doc["changes"]
    }


def test_validate_plan_apply_resolve_import(repo: Repo, sandbox: Sandbox) -> None:
    listed = f"{sandbox.url}/compatible/v1"
    repo.write("acme", compatible_yaml("acme", listed, headers={"X-Title": "Acme helpdesk"}))
    unlisted = f"{sandbox.url}/compatible-unlisted/v1"
    repo.write("open", compatible_yaml("open", unlisted, key=None), encrypt=False)

    code, out, err = run_cli("validate", "--format", "json")
    assert code == 0, out + err
    warnings = [d for d in json.loads(out)["diagnostics"] if d["severity"] == "warning"]
    assert [(Path(d["path"]).name, d["rule"]) for d in warnings] == [("open.yaml", "no-api-key")]

    code, out, err = run_cli("plan", "--format", "json")
    assert code == 0, out + err
    checks = _checks(out)
    assert checks["acme"]["openai_compatible"]["outcome"] == "ok"
    assert "listed by GET /models" in checks["acme"]["openai_compatible"]["detail"]
    assert checks["open"]["openai_compatible"]["outcome"] == "ok"
    assert "1-token completion" in checks["open"]["openai_compatible"]["detail"]
    assert CANARY not in out + err
    seen = {(r.method, r.path) for r in sandbox.requests}
    assert ("GET", "/compatible/v1/models") in seen
    assert ("POST", "/compatible-unlisted/v1/chat/completions") in seen

    code, out, err = run_cli("apply", "--auto-approve")
    assert code == 0, out + err
    assert CANARY not in out + err

    code, out, err = run_cli("resolve", "acme", "--format", "json")
    assert code == 0, err
    route = json.loads(out)
    assert (route["provider"], route["model"], route["reason"]) == (
        "openai_compatible",
        MODEL,
        "byok",
    )
    assert route["base_url"] == listed
    assert route["settings"]["headers.X-Title"] == "Acme helpdesk"
    assert route["settings"]["name"] == "Acme gateway"
    assert CANARY not in out
    code, out, _ = run_cli("resolve", "open", "--format", "json")
    assert code == 0
    assert json.loads(out)["reason"] == "byok", "a server without auth needs no key"

    # probe: the same calls as verification, recorded (both healthy: nothing opened).
    code, out, err = run_cli("probe", "--store-only", "--format", "json", "--no-cache")
    assert code == 0, out + err
    probed = {r["workspace"]: r for r in json.loads(out)["results"]}
    assert {w: (r["outcome"], r["recorded"]) for w, r in probed.items()} == {
        "acme": ("ok", True),
        "open": ("ok", True),
    }
    assert "1-token completion" in probed["open"]["detail"]
    headers_seen = [r for r in sandbox.requests if r.path == "/compatible/v1/models"]
    assert len(headers_seen) == 2, "plan and probe each listed the models once"

    # import writes back what plan reads: the headers as a mapping, then adopted, no change.
    target = repo.root / "imported"
    code, out, err = run_cli("import", "acme", "--out-dir", str(target), "--force")
    assert code == 0, out + err
    text = (target / "acme.yaml").read_text()
    assert CANARY not in text
    imported = yaml.safe_load(text)["spec"]["providers"]["openai_compatible"]
    assert imported["headers"] == {"X-Title": "Acme helpdesk"}
    assert imported["base_url"] == listed


def test_the_plan_diffs_headers_one_by_one(repo: Repo, sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/compatible/v1"
    repo.write("acme", compatible_yaml("acme", url, headers={"X-Title": "Acme", "X-Env": "prod"}))
    assert run_cli("apply", "--auto-approve")[0] == 0
    repo.write("acme", compatible_yaml("acme", url, headers={"X-Title": "Acme 2"}))
    code, out, err = run_cli("plan", "--format", "json", "--no-verify")
    assert code == 0, err
    (change,) = json.loads(out)["changes"]
    fields = {f["path"]: f for f in change["fields"]}
    assert set(fields) == {
        "providers.openai_compatible.headers.X-Title",
        "providers.openai_compatible.headers.X-Env",
    }
    assert fields["providers.openai_compatible.headers.X-Env"]["action"] == "remove"
    assert fields["providers.openai_compatible.headers.X-Title"]["after"] == "Acme 2"
    for fmt in ("text", "markdown"):
        code, out, _ = run_cli("plan", "--format", fmt, "--no-verify")
        assert code == 0
        assert "providers.openai_compatible.headers.X-Title" in out
        assert "Acme 2" in out and CANARY not in out


def test_an_unknown_model_is_refused_by_the_servers_own_answer(
    repo: Repo, sandbox: Sandbox
) -> None:
    repo.write("acme", compatible_yaml("acme", f"{sandbox.url}/compatible/v1", model="llama-9"))
    unlisted = f"{sandbox.url}/compatible-unlisted/v1"
    repo.write("open", compatible_yaml("open", unlisted, key=None, model="llama-9"), encrypt=False)
    code, out, _ = run_cli("plan", "--format", "json")
    assert code == 1
    checks = _checks(out)
    assert checks["acme"]["openai_compatible"]["outcome"] == "model_not_available"
    assert checks["open"]["openai_compatible"]["outcome"] == "model_not_available"


@pytest.mark.parametrize(
    ("headers", "rule"),
    [
        ({"Authorization": "Bearer sk-plain"}, "credential-header"),
        ({"X-Auth-Token": "t"}, "credential-header"),
        ({"Host": "evil.example"}, "credential-header"),
        ({"X-Title": "a", "x-title": "b"}, "duplicate-header"),
    ],
)
def test_validate_refuses_credential_and_duplicate_headers(
    repo: Repo, headers: dict[str, str], rule: str
) -> None:
    repo.write("acme", compatible_yaml("acme", "https://llm.acme.example/v1", headers=headers))
    code, out, _ = run_cli("validate", "--format", "json")
    assert code == 1
    errors = [d for d in json.loads(out)["diagnostics"] if d["severity"] == "error"]
    assert [d["rule"] for d in errors] == [rule]
    assert errors[0]["line"] > 1
    assert "sk-plain" not in out


@pytest.mark.parametrize(
    "url",
    ["http://llm.acme.example/v1", "ftp://127.0.0.1/v1", "https://user@llm.acme.example/v1"],
)
def test_validate_refuses_plain_http_except_on_loopback(repo: Repo, url: str) -> None:
    repo.write("acme", compatible_yaml("acme", url))
    code, out, _ = run_cli("validate", "--format", "json")
    assert code == 1
    errors = [d for d in json.loads(out)["diagnostics"] if d["severity"] == "error"]
    assert [d["rule"] for d in errors] == ["schema-pattern"]
    assert "no user or password, query or fragment" in errors[0]["hint"]  # every broken rule


def _never(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"a connection was attempted: {request.url}")


async def _no_lookup(host: str, port: int) -> list[str]:
    raise AssertionError(f"a name was looked up: {host}")


def _compatible(base_url: str) -> Workspace:
    config = ProviderConfig(
        "openai_compatible", MODEL, {"base_url": base_url}, {"api_key": Secret(CANARY)}
    )
    return Workspace("acme", enabled="openai_compatible", providers={"openai_compatible": config})


@pytest.mark.parametrize(
    "base_url", ["https://10.0.0.1/v1", "https://10.255.3.4:8443/v1", "https://169.254.169.254"]
)
@pytest.mark.parametrize("allow", ["", "127.0.0.0/8", "192.168.0.0/16,not-a-cidr"])
def test_a_literal_private_address_is_refused_before_any_connection(
    base_url: str, allow: str
) -> None:
    results = asyncio.run(
        averify_workspaces(
            [_compatible(base_url)],
            env={"BYOK_ALLOW_PRIVATE_ENDPOINTS": allow} if allow else {},
            transport=httpx.MockTransport(_never),
            resolver=_no_lookup,
        )
    )
    (verified,) = results["acme"]
    assert verified.classification.outcome is Outcome.BAD_ENDPOINT
    detail = verified.classification.detail
    assert "non-public address" in detail and "before connecting" in detail
    assert "BYOK_ALLOW_PRIVATE_ENDPOINTS" in detail


def test_the_operator_allows_listed_networks_only() -> None:
    allowed = private_allowed({"BYOK_ALLOW_PRIVATE_ENDPOINTS": "10.20.0.0/16, 127.0.0.0/8"})
    ok = asyncio.run(
        checked_endpoint(
            Endpoint("openai_compatible", "https://10.20.1.2/v1", trusted=False),
            resolver=_no_lookup,
            allow_private=allowed,
        )
    )
    assert ok.pinned_ip == "10.20.1.2"
    with pytest.raises(ClassifiedFailure):
        asyncio.run(
            checked_endpoint(
                Endpoint("openai_compatible", "https://10.21.1.2/v1", trusted=False),
                resolver=_no_lookup,
                allow_private=allowed,
            )
        )
    # Plain http is for loopback hosts only, whatever the operator allows.
    with pytest.raises(ClassifiedFailure, match="http only for a loopback host"):
        asyncio.run(
            checked_endpoint(
                Endpoint("openai_compatible", "http://10.20.1.2/v1", trusted=False),
                resolver=_no_lookup,
                allow_private=True,
            )
        )
    # Azure's endpoint stays https-only, also on loopback.
    with pytest.raises(ClassifiedFailure, match="must use https"):
        asyncio.run(
            checked_endpoint(
                Endpoint("azure_openai", "http://127.0.0.1:1", trusted=False),
                resolver=_no_lookup,
                allow_private=True,
            )
        )


def test_loopback_needs_the_operators_allowance(sandbox: Sandbox) -> None:
    results = asyncio.run(averify_workspaces([_compatible(f"{sandbox.url}/compatible/v1")], env={}))
    (verified,) = results["acme"]
    assert verified.classification.outcome is Outcome.BAD_ENDPOINT
    assert sandbox.requests == []


def test_the_request_carries_the_headers_and_no_key_when_there_is_none(
    provider_server: ProviderServer,
) -> None:
    provider_server.route("/gw/v1/models", Reply(404, {"error": {"message": "Not Found"}}))
    provider_server.route(
        "/gw/v1/chat/completions", Reply(200, {"choices": [{"message": {"content": "h"}}]})
    )
    config = ProviderConfig(
        "openai_compatible",
        "local-model",
        {"base_url": "https://ignored.example/v1", "headers.X-Title": "Acme", "headers.X-Env": "p"},
        {},
    )
    env = {"BYOK_OPENAI_COMPATIBLE_BASE_URL": provider_server.url + "/gw/v1"}
    got = list_models(config, env=env, retry=RetryPolicy(attempts=1))
    assert got.classification.outcome is Outcome.OK
    listed, completion = provider_server.seen()
    for seen in (listed, completion):
        assert (seen.headers["x-title"], seen.headers["x-env"]) == ("Acme", "p")
        assert "authorization" not in seen.headers
    assert (listed.method, completion.method) == ("GET", "POST")
    assert json.loads(completion.body)["max_tokens"] == 1
    assert json.loads(completion.body)["model"] == "local-model"


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (400, {"error": {"message": "Invalid model name passed in model=llama-9."}}, "model_not_available"),
        (404, {"error": 'model "llama-9" not found, try pulling it first'}, "model_not_available"),
        (404, {"object": "error", "message": "The model `llama-9` does not exist.", "type": "NotFoundError"}, "model_not_available"),
        (404, {"detail": "Not Found"}, "bad_endpoint"),
        (400, {"error": {"message": "messages must not be empty"}}, "unexpected"),
    ],
)  # fmt: skip
def test_gateway_model_errors_are_model_not_available(
    status: int, body: dict[str, object], outcome: str
) -> None:
    got = classify_response("openai_compatible", status, {}, json.dumps(body).encode())
    assert got.outcome.value == outcome


def test_plan_refuses_a_private_base_url_with_a_clear_error(repo: Repo) -> None:
    # A literal address: the guard refuses it before any lookup or connection.
    repo.write("acme", compatible_yaml("acme", "https://10.1.2.3/v1"))
    code, out, err = run_cli("plan", "--format", "json")
    assert code == 1
    (finding,) = json.loads(out)["errors"]
    assert (finding["workspace"], finding["outcome"]) == ("acme", "bad_endpoint")
    detail = _checks(out)["acme"]["openai_compatible"]["detail"]
    assert "10.1.2.3 is a non-public address (10.1.2.3); refused before connecting" in detail
    assert "BYOK_ALLOW_PRIVATE_ENDPOINTS" in detail
    assert "refusing to enable" in err and CANARY not in out + err


def test_the_cache_keeps_no_verdict_across_a_changed_private_allowance(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A refusal by the guard is the operator's setting, not a fact about the credentials.

    Allowing the network must take effect at once (not after the cache's lifetime), and a
    verdict cached while it was allowed must not outlive the allowance.
    """
    config = ProviderConfig(
        "openai_compatible",
        MODEL,
        {"base_url": f"{sandbox.url}/compatible/v1"},
        {"api_key": Secret(CANARY)},
    )
    cache = VerifyCache(tmp_path / "cache")
    allowed = {"BYOK_ALLOW_PRIVATE_ENDPOINTS": "127.0.0.0/8"}
    refused = list_models(config, cache=cache, env={})
    assert refused.classification.outcome is Outcome.BAD_ENDPOINT
    assert list_models(config, cache=cache, env={}).cached  # the same setting: a hit
    got = list_models(config, cache=cache, env=allowed)
    assert (got.classification.outcome, got.cached) == (Outcome.OK, False)
    again = list_models(config, cache=cache, env={})
    assert again.classification.outcome is Outcome.BAD_ENDPOINT
    assert len(sandbox.requests) == 1  # only the allowed run reached the server


def test_status_and_state_list_columns_fit_the_longest_provider_id(
    repo: Repo, sandbox: Sandbox
) -> None:
    repo.write("acme", compatible_yaml("acme", f"{sandbox.url}/compatible/v1"))
    plain = {
        "apiVersion": "byok/v1",
        "kind": "Workspace",
        "metadata": {"name": "plain", "notify": ["ops@acme.example"]},
        "spec": {
            "enabled": "openai",
            "providers": {"openai": {"model": "gpt-4o", "api_key": CANARY + "-plain"}},
        },
    }
    repo.write("plain", yaml.safe_dump(plain, sort_keys=False))
    code, out, err = run_cli("apply", "--auto-approve", "--no-verify")
    assert code == 0, out + err
    for command, column in ((("status",), " since "), (("state", "list"), " providers=")):
        code, out, err = run_cli(*command)
        assert code == 0, err
        rows = [line for line in out.splitlines() if line.startswith(("acme ", "plain "))]
        assert len(rows) == 2 and len({r.index(column) for r in rows}) == 1, out
