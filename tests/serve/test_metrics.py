"""``/metrics``: the listed families, bounded labels (never a workspace name), ``read`` scope."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.serve.conftest import Served
from tests.serve.test_api_http import INVALID_KEY


def test_metrics_name_routes_reasons_and_outcomes_but_no_workspace(served: Served) -> None:
    with served.client("resolve") as c:
        route = c.post("/api/v1/resolve", json={"workspace": "acme-support"}).json()
        c.post("/api/v1/report", json={"route_id": route["route_id"], "status": 401,
                                       "body": INVALID_KEY})  # fmt: skip
    served.state.fleet.rebuild()
    with served.client("read") as c:
        r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in ("byok_workspaces", "byok_resolve", "byok_fallback", "byok_episodes_open",
                 "byok_credits", "byok_store_up", "byok_config_serial",
                 "byok_http_request_duration_seconds"):  # fmt: skip
        assert name in families, name
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}  # fmt: skip
    assert samples[("byok_workspaces", (("reason", "provider_failed:invalid_key"),
                                        ("route", "neo")))] == 1  # fmt: skip
    assert (
        samples[("byok_fallback_total", (("outcome", "invalid_key"), ("provider", "openai")))] == 1
    )
    assert (
        samples[("byok_episodes_open", (("outcome", "invalid_key"), ("provider", "openai")))] == 1
    )
    assert samples[("byok_store_up", ())] == 1
    assert samples[("byok_config_serial", ())] == served.store.serial()
    for name in ("acme-support", "globex", "initech"):
        assert name not in r.text
