"""The resolver API over real HTTP (uvicorn on a loopback port): resolve, report, read, access."""

from __future__ import annotations

import io
import json
import logging

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_spec

from byokctl.commands.resolve import credits as credits_command
from byokctl.commands.resolve import status as status_command
from byokctl.store import MasterKey
from tests.resolver.helpers import CANARY
from tests.serve.conftest import Served

INVALID_KEY = json.dumps(
    {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
               "code": "invalid_api_key"}}
)  # fmt: skip


def resolve(served: Served, token: str = "resolve", **body: object) -> dict[str, object]:  # noqa: S107
    with served.client(token) as c:
        r = c.post("/api/v1/resolve", json={"workspace": "acme-support", **body})
    assert r.status_code == 200, r.text
    doc: dict[str, object] = r.json()
    return doc


def test_resolve_answers_the_route_with_an_id_and_never_a_key(served: Served) -> None:
    doc = resolve(served, feature="summarize")
    assert doc["provider"] == "openai"
    assert doc["kind"] == "byok"
    assert doc["model"] == "gpt-4o"
    assert doc["reason"] == "byok"
    assert doc["cost"] == 1
    assert doc["feature"] == "summarize"
    assert str(doc["route_id"]).startswith("rt_")
    assert "api_key" not in doc


def test_include_key_needs_the_keys_scope(served: Served) -> None:
    with served.client("resolve") as c:
        r = c.post("/api/v1/resolve", json={"workspace": "acme-support", "include_key": True})
    assert r.status_code == 403
    assert CANARY not in r.text
    with served.client("keys") as c:
        r = c.post("/api/v1/resolve", json={"workspace": "acme-support", "include_key": True})
    assert r.status_code == 200
    assert r.json()["api_key"] == CANARY
    assert r.headers["cache-control"] == "no-store"


def test_a_raw_provider_answer_is_classified_and_answered_with_the_fallback(
    served: Served,
) -> None:
    route = resolve(served)
    with served.client("resolve") as c:
        r = c.post(
            "/api/v1/report",
            json={"route_id": route["route_id"], "status": 401, "body": INVALID_KEY,
                  "headers": {"content-type": "application/json"}},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["outcome"] == "invalid_key"
        assert doc["sticky"] is True
        assert doc["fallback"]["provider"] == "neo"
        assert doc["fallback"]["reason"] == "provider_failed:invalid_key"
        assert doc["fallback"]["route_id"] != route["route_id"]
        # the next resolve goes to Neo: the sticky failure is recorded
        again = c.post("/api/v1/resolve", json={"workspace": "acme-support"}).json()
        assert (again["provider"], again["reason"]) == ("neo", "provider_failed:invalid_key")
        # a route is reported once; an unknown id is a 404 that says what to do
        twice = c.post("/api/v1/report", json={"route_id": route["route_id"], "outcome": "ok"})
        assert twice.status_code == 404
        assert "resolve again" in twice.json()["hint"]


def test_an_outcome_name_reports_like_the_library(served: Served) -> None:
    with served.client("resolve") as c:
        ok = c.post("/api/v1/resolve", json={"workspace": "globex"}).json()
        r = c.post("/api/v1/report", json={"route_id": ok["route_id"], "outcome": "ok"})
        assert r.json() == {"outcome": "ok", "fallback": None}
        route = c.post("/api/v1/resolve", json={"workspace": "globex"}).json()
        r = c.post("/api/v1/report", json={"route_id": route["route_id"], "outcome": "no_credits"})
        assert r.json()["outcome"] == "no_credits"
        assert r.json()["fallback"]["reason"] == "provider_failed:no_credits"
        bad = c.post("/api/v1/report", json={"route_id": "x", "outcome": "broken"})
        assert bad.status_code == 400
        assert "invalid_key" in bad.json()["hint"]


@pytest.mark.parametrize(
    ("body", "ctype", "status", "words"),
    [
        (b'{"workspace": "acme-support",', "application/json", 400, "line 1, column 30"),
        (b"[1, 2]", "application/json", 400, "must be a JSON object"),
        (b"\xff\xfe", "application/json", 400, "not UTF-8"),
        (b'{"workspace": "acme-support"}', "text/plain", 415, "application/json"),
        (b'{"workspace": 7}', "application/json", 400, "'workspace' must be"),
        (b'{"workspace": "a", "feature": "poetry"}', "application/json", 400, "unknown feature"),
        (b'{"workspace": "a", "include_key": "yes"}', "application/json", 400, "true or false"),
        (b'{"pad": "' + b"x" * 300_000 + b'"}', "application/json", 413, "over"),
    ],
)
def test_bad_requests_get_a_clear_message_not_a_traceback(
    served: Served, body: bytes, ctype: str, status: int, words: str
) -> None:
    with served.client("resolve") as c:
        r = c.post("/api/v1/resolve", content=body, headers={"content-type": ctype})
    assert r.status_code == status
    assert words in r.json()["error"]
    assert "Traceback" not in r.text


def test_401_and_403_are_told_apart_and_denials_are_logged_without_the_token(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="byokctl.serve")
    with served.client() as c:
        none = c.post("/api/v1/resolve", json={"workspace": "acme-support"})
        unknown = c.get("/api/v1/status", headers={"Authorization": "Bearer not-a-token-123"})
        basic = c.get("/api/v1/status", headers={"Authorization": "Basic abc"})
    with served.client("read") as c:
        wrong_scope = c.post("/api/v1/resolve", json={"workspace": "acme-support"})
        metrics_ok = c.get("/metrics")
    with served.client("resolve") as c:
        no_read = c.get("/metrics")
    assert (none.status_code, unknown.status_code, basic.status_code) == (401, 401, 401)
    assert none.headers["www-authenticate"] == "Bearer"
    assert wrong_scope.status_code == 403
    assert "'resolve'" in wrong_scope.json()["error"]
    assert metrics_ok.status_code == 200
    assert no_read.status_code == 403
    logged = caplog.text
    assert logged.count("serve: denied") == 5
    assert "not-a-token-123" not in logged
    for token in served.tokens.values():
        assert token not in logged


def test_admin_implies_read_and_keys_imply_resolve(served: Served) -> None:
    with served.client("admin") as c:
        assert c.get("/api/v1/status").status_code == 200
        assert c.post("/api/v1/resolve", json={"workspace": "globex"}).status_code == 403
    with served.client("keys") as c:
        assert c.post("/api/v1/resolve", json={"workspace": "globex"}).status_code == 200


def test_health_and_readiness_need_no_token(served: Served) -> None:
    with served.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json() == {"status": "ready"}


def test_security_headers_on_pages_and_api(served: Served) -> None:
    with served.client("read") as c:
        for path in ("/", "/api/v1/status", "/static/fleet.js", "/login"):
            r = c.get(path)
            assert r.status_code == 200, path
            csp = r.headers["content-security-policy"]
            assert "script-src 'self'" in csp
            assert "unsafe-inline" not in csp
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["referrer-policy"] == "no-referrer"
        assert c.get("/api/v1/status").headers["cache-control"] == "no-store"
        assert "<script>" not in c.get("/").text  # only <script src=…>


def test_status_workspace_and_credits_match_the_cli(
    served: Served, store_url: str, master_key: MasterKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYOK_MASTER_KEY", master_key.to_base64())
    with served.client("resolve") as c:
        for _ in range(2):
            c.post("/api/v1/resolve", json={"workspace": "globex", "feature": "assist"})
        c.post("/api/v1/resolve", json={"workspace": "initech", "feature": "summarize"})
    served.resolver.flush()
    out = io.StringIO()
    assert status_command(store=store_url, fmt="json", out=out, err=io.StringIO()) == 0
    with served.client("read") as c:
        assert c.get("/api/v1/status").json() == json.loads(out.getvalue())
        one = c.get("/api/v1/workspaces/globex").json()
        assert one["route"] == "anthropic"
        assert one["providers"]["anthropic"]["secret_fields"] == ["api_key"]
        assert one["credits"]["today"] == {"byok": 2, "neo": 0}
        assert c.get("/api/v1/workspaces/nope").status_code == 404
        api_credits = c.get("/api/v1/credits").json()
        by_period = c.get("/api/v1/credits", params={"workspace": "initech", "period": "day"})
        bad = c.get("/api/v1/credits", params={"since": "yesterday"})
    out = io.StringIO()
    credits_command(None, since=None, store=store_url, fmt="json", out=out, err=io.StringIO())
    assert {k: v for k, v in api_credits.items() if k != "period"} == json.loads(out.getvalue())
    assert [u["credits"] for u in by_period.json()["usage"]] == [2]
    assert by_period.json()["usage"][0]["period"]
    assert bad.status_code == 400


def test_the_openapi_document_is_valid_and_the_answers_follow_it(served: Served) -> None:
    with served.client() as c:
        doc = c.get("/api/v1/openapi.json").json()
    validate_spec(doc)
    assert set(doc["paths"]) >= {
        "/api/v1/resolve", "/api/v1/report", "/api/v1/status",
        "/api/v1/workspaces/{name}", "/api/v1/credits",
    }  # fmt: skip

    def check(instance: object, schema: str) -> None:
        jsonschema.validate(
            instance, {"$ref": f"#/components/schemas/{schema}", "components": doc["components"]}
        )

    with served.client("keys") as c:
        route = c.post("/api/v1/resolve", json={"workspace": "globex", "include_key": True})
        check(route.json(), "Route")
        report = c.post(
            "/api/v1/report", json={"route_id": route.json()["route_id"], "outcome": "outage"}
        )
        check(report.json(), "ReportResult")
        check(report.json()["fallback"], "Route")
        check(c.post("/api/v1/report", json={"route_id": "gone", "outcome": "ok"}).json(), "Error")
    with pytest.raises(jsonschema.ValidationError):
        check({"outcome": "ok"}, "ReportResult")  # the schema does hold answers to something


def test_the_open_loopback_server_takes_no_token_but_gives_no_key(served_open: Served) -> None:
    with served_open.client() as c:
        assert c.post("/api/v1/resolve", json={"workspace": "acme-support"}).status_code == 200
        keys = c.post("/api/v1/resolve", json={"workspace": "acme-support", "include_key": True})
        assert keys.status_code == 403
        # a DNS name that points at 127.0.0.1 (rebinding) is not a loopback name
        rebound = c.get("/api/v1/status", headers={"host": "evil.example:8750"})
        assert rebound.status_code == 403
