"""A provider that echoes the key it receives: no surface may show it, in any encoding.

The echoing server is a real loopback HTTP server. It puts the key it was sent -- raw,
percent-encoded, base64/base64url, inside ``Bearer``/Basic forms, JSON-escaped -- into
model ids, error messages and response headers. The seven surfaces are checked byte for
byte: the verify cache on disk, ``byokctl models``, the plan as text, JSON and Markdown
and the saved plan file, the audit log (and the whole store file), and ``byokctl status``
after the application reported an echoing answer through the resolver.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from byokctl.classify import redact_document
from byokctl.cli import main
from byokctl.resolver import ProviderResponse, Resolver
from byokctl.store import MasterKey, open_store
from byokctl.verify._http import Endpoint, fetch, make_client
from tests.conftest import Repo, workspace_yaml
from tests.verify.conftest import ProviderServer, Reply, Seen
from tests.verify.shapes import env_for

#: Keys with characters that every encoding changes ("/", "+", "=").
ECHO_OK = "sk-echo/canary+Ok=7f6e5d4c3b2a1908"
ECHO_BAD = "sk-echo/canary+Bad=0a1b2c3d4e5f6071"


def echoed(key: str) -> list[str]:
    """The forms the server echoes, written out independently of the code under test."""
    b64 = base64.b64encode
    url = base64.urlsafe_b64encode
    raw = key.encode()
    return [
        key,
        quote(key, safe=""),
        quote(key, safe="").replace("%2F", "%2f").replace("%2B", "%2b").replace("%3D", "%3d"),
        b64(raw).decode(),
        url(raw).decode(),
        b64(raw).decode().rstrip("="),
        b64(b"Bearer " + raw).decode(),
        b64(raw + b":").decode(),
        b64(b"user:" + raw).decode(),  # the key as the password of a Basic credential
        url(b"x" + raw + b"y").decode(),  # inside a longer blob, at another alignment
    ]


def forms(key: str) -> list[str]:
    """What must not survive anywhere: each echoed form, and of those that carry the key
    inside a longer blob the characters that encode only the key."""
    raw = key.encode()
    return [
        *echoed(key),
        json.dumps(key)[1:-1].replace("/", "\\/"),
        base64.b64encode(b"user:" + raw).decode()[8:-4],
        base64.urlsafe_b64encode(b"x" + raw + b"y").decode()[4:-4],
    ]


def echoes(key: str) -> str:
    """One text holding the key in every form the server echoes."""
    return " | ".join(echoed(key))


def assert_clean(*texts: str | bytes) -> None:
    for text in texts:
        data = text if isinstance(text, bytes) else text.encode()
        for key in (ECHO_OK, ECHO_BAD):
            for form in forms(key):
                assert form.encode() not in data, f"{form!r} leaked"


def _unicode_escaped(text: str) -> str:
    """``text`` as a JSON string literal spelled entirely in ``\\uXXXX`` escapes."""
    return '"' + "".join(f"\\u{ord(c):04x}" for c in text) + '"'


def _echo(seen: Seen) -> Reply:
    """OpenAI's list-models API, echoing the Bearer key everywhere it can."""
    key = seen.headers.get("authorization", "").removeprefix("Bearer ")
    headers = {
        "x-echo-key": key,
        "www-authenticate": f"Basic {base64.b64encode(key.encode() + b':').decode()}",
    }
    if key == ECHO_BAD:
        body = {
            "error": {
                "code": "invalid_api_key",
                "type": "invalid_request_error",
                "message": f"Incorrect API key provided: {echoes(key)}",
            }
        }
        # Escaped slashes, as PHP's json_encode writes them: the key's JSON-escaped form.
        return Reply(401, json.dumps(body).replace("/", "\\/").encode(), headers)
    ids = ["gpt-4o", *echoed(key), f"ft:gpt-4o:{key}"]
    listed = json.dumps({"object": "list", "data": [{"id": i} for i in ids]})
    # One more id that spells the key in \\u escapes: only a parsed answer shows it.
    listed = listed.replace("]}", f', {{"id": {_unicode_escaped(key)}}}]}}')
    return Reply(200, listed.encode(), headers)


@pytest.fixture
def echo_server(provider_server: ProviderServer) -> ProviderServer:
    provider_server.route("/openai/v1/models", _echo)
    return provider_server


def test_fetch_hands_out_answers_without_the_key(echo_server: ProviderServer) -> None:
    """The boundary itself: headers and body of a success and of an error."""

    async def both() -> list[tuple[int, dict[str, str], bytes]]:
        endpoint = Endpoint("openai", echo_server.url + "/openai/v1", trusted=True)
        async with make_client(parallelism=1) as client:
            got = []
            for key in (ECHO_OK, ECHO_BAD):
                answer = await fetch(
                    client,
                    endpoint,
                    "GET",
                    "/models",
                    headers={"Authorization": f"Bearer {key}"},
                    key=key,
                )
                got.append((answer.status, dict(answer.headers), answer.body))
            return got

    (ok_status, ok_headers, ok_body), (bad_status, bad_headers, bad_body) = asyncio.run(both())
    assert (ok_status, bad_status) == (200, 401)
    # Every header and the body were redacted, and the body is still the JSON it was.
    assert ok_headers["x-echo-key"] == "(sensitive)"
    assert ok_headers["www-authenticate"] == "Basic (sensitive)"
    ids = [m["id"] for m in json.loads(ok_body)["data"]]
    assert ids[0] == "gpt-4o" and ids[-2] == "ft:gpt-4o:(sensitive)"
    # The last id spells the key in \u escapes: no byte scan sees it, and the adapters
    # redact the parsed answer as well.
    assert ids[-1] == ECHO_OK
    parsed = redact_document(json.loads(ok_body), ECHO_OK)
    assert parsed["data"][-1]["id"] == "(sensitive)"
    assert json.loads(bad_body)["error"]["code"] == "invalid_api_key"
    assert_clean(ok_body, bad_body, json.dumps(ok_headers), json.dumps(bad_headers))
    # The server did receive the key: the test would see a leak if there were one.
    assert ECHO_OK in echo_server.seen()[0].headers["authorization"]


@pytest.fixture
def echo_repo(
    make_repo: Callable[[], Repo],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    echo_server: ProviderServer,
) -> Repo:
    repo = make_repo()
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("BYOK_STORE", f"sqlite:///{tmp_path}/state.db")
    monkeypatch.setenv("BYOK_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    for name, value in env_for(echo_server).items():
        monkeypatch.setenv(name, value)
    repo.write("echo-ok", workspace_yaml("echo-ok", enabled="openai", keys={"openai": ECHO_OK}))
    repo.write("echo-bad", workspace_yaml("echo-bad", keys={"openai": ECHO_BAD}))
    return repo


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert_clean(out, err)
    return code, out, err


def _tree_bytes(root: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()]


def test_no_surface_shows_an_echoed_key(
    echo_repo: Repo,
    echo_server: ProviderServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    # plan: text, JSON, Markdown, and the saved plan file.
    saved = tmp_path / "echo.plan"
    code, out, _ = _cli(capsys, "plan", "--out", str(saved))
    assert code == 0
    assert "# verify openai: invalid_key" in out and "# verify openai: ok" in out
    assert_clean(saved.read_bytes())
    code, out, _ = _cli(capsys, "plan", "--format", "json")
    assert code == 0 and json.loads(out)["errors"] == []
    assert _cli(capsys, "plan", "--format", "markdown")[0] == 0

    # The verify cache on disk (entries and all).
    cache = Path(os.environ["XDG_CACHE_HOME"]) / "byokctl" / "verify"
    (batch,) = cache.glob("*.entries")  # the first plan's; the others were cache hits
    entries = json.loads(batch.read_text())["entries"].values()
    assert len(entries) == 2
    assert_clean(*_tree_bytes(cache))
    listed = {outcome: models for _, outcome, _, models in entries}
    assert "(sensitive)" in listed["ok"]

    # models, text and JSON, for the key that works and the one that does not; the
    # second run of each is served from the cache, which must be as clean.
    for _ in range(2):
        code, out, _ = _cli(capsys, "models", "workspaces/echo-ok.yaml", "openai")
        assert code == 0 and "gpt-4o  (configured)" in out
        code, out, _ = _cli(
            capsys, "models", "workspaces/echo-ok.yaml", "openai", "--format", "json"
        )
        assert code == 0 and json.loads(out)["model_available"] is True
        code, _, err = _cli(capsys, "models", "workspaces/echo-bad.yaml", "openai")
        assert code == 1 and "invalid_key" in err
    before = len(echo_server.seen())

    # apply: the audit log and everything else in the store file.
    code, out, _ = _cli(capsys, "apply", "--auto-approve")
    assert code == 0 and "Apply complete" in out
    assert len(echo_server.seen()) == before  # verified from the cache
    key = MasterKey.from_base64(os.environ["BYOK_MASTER_KEY"], source="BYOK_MASTER_KEY")
    with open_store(os.environ["BYOK_STORE"], master_key=key) as store:
        assert [a.workspace for e in store.audit_log() for a in e.changes]
        assert_clean(repr(store.audit_log()))

    # status, after the application reported an answer that echoes the key (body and
    # headers) through the resolver, which stores the failure episode's detail.
    with Resolver.from_url(
        os.environ["BYOK_STORE"], master_key=key, refresh_interval=None, env={}, notify=False
    ) as resolver:
        route = resolver.resolve("echo-ok", "assist")
        assert route.provider == "openai" and route.api_key() == ECHO_OK
        body = {"error": {"code": "invalid_api_key", "message": f"bad key: {echoes(ECHO_OK)}"}}
        got = resolver.report(
            route,
            ProviderResponse(401, json.dumps(body).encode(), {"x-echo": ECHO_OK}),
        )
        assert got is not None and got.outcome == "invalid_key"
        assert_clean(got.detail)
    code, out, _ = _cli(capsys, "status", "--format", "json")
    doc = {w["name"]: w for w in json.loads(out)["workspaces"]}
    assert doc["echo-ok"]["reason"] == "provider_failed:invalid_key"
    assert "(sensitive)" in doc["echo-ok"]["open_episodes"][0]["detail"]
    assert _cli(capsys, "status")[0] == 0
    db = Path(os.environ["BYOK_STORE"].removeprefix("sqlite:///"))
    assert_clean(*_tree_bytes(db.parent))


def test_an_application_built_detail_is_redacted_too(
    echo_repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    """An SDK exception carrying the echoing answer, and a Classification the app wrote."""
    from byokctl.classify import Classification, Outcome

    assert _cli(capsys, "apply", "--auto-approve")[0] == 0
    key = MasterKey.from_base64(os.environ["BYOK_MASTER_KEY"], source="BYOK_MASTER_KEY")
    request = httpx.Request("GET", "https://api.openai.com/v1/models")

    class APIStatusError(Exception):  # the official SDKs' shape: status_code, response
        def __init__(self) -> None:
            super().__init__("401")
            self.status_code = 401
            self.response = httpx.Response(
                401, content=f'{{"error":{{"message":"{echoes(ECHO_OK)}"}}}}', request=request
            )

    with Resolver.from_url(
        os.environ["BYOK_STORE"], master_key=key, refresh_interval=None, env={}, notify=False
    ) as resolver:
        own = Classification(Outcome.OUTAGE, f"gateway said {echoes(ECHO_OK)}")
        reported = resolver.report(resolver.resolve("echo-ok", "assist"), own)
        assert reported is not None and "(sensitive)" in reported.detail
        assert_clean(reported.detail)
        route = resolver.resolve("echo-ok", "assist")
        assert route.provider == "openai"
        from_sdk = resolver.report(route, APIStatusError())
        assert from_sdk is not None and from_sdk.outcome == "invalid_key"
        assert_clean(from_sdk.detail)
