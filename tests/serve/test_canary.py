"""No key in any page, metric, log line or API answer, except an authorised include_key."""

from __future__ import annotations

import logging

import pytest

from tests.resolver.helpers import CANARY
from tests.serve.conftest import Served
from tests.serve.test_api_http import INVALID_KEY


def test_the_canary_key_appears_only_in_an_authorised_include_key_answer(
    served: Served, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    with served.client("keys") as c:
        keyed = c.post("/api/v1/resolve", json={"workspace": "acme-support", "include_key": True})
        assert keyed.json()["api_key"] == CANARY  # the one authorised answer
        plain = c.post("/api/v1/resolve", json={"workspace": "acme-support"})
        seen.append(plain.text)
        # a provider answer that echoes the key is classified; the detail is redacted
        echo = INVALID_KEY.replace("Incorrect API key provided", f"Incorrect API key {CANARY}")
        r = c.post(
            "/api/v1/report",
            json={"route_id": plain.json()["route_id"], "status": 401, "body": echo},
        )
        assert r.json()["outcome"] == "invalid_key"
        seen.append(r.text)
        denied = c.post(
            "/api/v1/resolve", content=b"{", headers={"content-type": "application/json"}
        )
        seen.append(denied.text)
    with served.client("resolve") as c:
        seen.append(c.post("/api/v1/resolve", json={"workspace": "acme-support",
                                                   "include_key": True}).text)  # fmt: skip
    served.state.fleet.rebuild()
    with served.client("admin") as c:
        for path in ("/", "/?route=neo", "/workspaces/acme-support", "/metrics",
                     "/api/v1/status", "/api/v1/workspaces/acme-support", "/api/v1/credits",
                     "/api/v1/fleet", "/api/v1/openapi.json", "/login"):  # fmt: skip
            r = c.get(path)
            assert r.status_code == 200, path
            seen.append(r.text)
    assert "invalid_key" in "".join(seen)  # the pages did show the failure
    for text in seen:
        assert CANARY not in text
    assert CANARY not in caplog.text
    out, err = capfd.readouterr()
    assert CANARY not in out + err
