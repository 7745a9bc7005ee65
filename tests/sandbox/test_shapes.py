"""Every marker on every provider, in the provider's own status and shape (plain httpx)."""

from __future__ import annotations

import httpx
import pytest

from byokctl.catalog import PROVIDERS
from byokctl.sandbox import PROVIDER_APIS, Sandbox

from .conftest import AUTH, LIST_PATH, base

# provider -> marker -> expected status
STATUS = {
    "openai": {
        "invalid": 401,
        "nocredits": 429,
        "forbidden": 403,
        "ratelimited": 429,
        "outage": 503,
    },
    "anthropic": {
        "invalid": 401,
        "nocredits": 400,
        "forbidden": 403,
        "ratelimited": 429,
        "outage": 529,
    },
    "gemini": {
        "invalid": 400,
        "nocredits": 400,
        "forbidden": 403,
        "ratelimited": 429,
        "outage": 503,
    },
    "azure_openai": {
        "invalid": 401,
        "nocredits": 403,
        "forbidden": 403,
        "ratelimited": 429,
        "outage": 503,
    },
    "xai": {"invalid": 400, "nocredits": 403, "forbidden": 403, "ratelimited": 429, "outage": 503},
    "deepseek": {
        "invalid": 401,
        "nocredits": 402,
        "forbidden": 403,
        "ratelimited": 429,
        "outage": 503,
    },
    "openai_compatible": {
        "invalid": 401,
        "nocredits": 429,
        "forbidden": 403,
        "ratelimited": 429,
        "outage": 503,
    },
}
CASES = [(p, m, s) for p, table in STATUS.items() for m, s in table.items()]


def get_list(
    http: httpx.Client, sb: Sandbox, provider: str, key: str, query: str = ""
) -> httpx.Response:
    url = base(sb, provider) + LIST_PATH[provider]
    if query:
        url += ("&" if "?" in url else "?") + query
    return http.get(url, headers=AUTH[provider](key))


def error_shape_ok(provider: str, body: dict[str, object]) -> bool:
    """The provider's error envelope, as PROVIDERS.md has it."""
    match provider:
        case "openai" | "deepseek" | "openai_compatible":
            err = body["error"]
            return isinstance(err, dict) and set(err) == {"message", "type", "param", "code"}
        case "anthropic":
            err = body["error"]
            return (
                body["type"] == "error"
                and isinstance(err, dict)
                and {"type", "message"} <= set(err)
            )
        case "gemini":
            err = body["error"]
            return isinstance(err, dict) and {"code", "message", "status"} <= set(err)
        case "azure_openai":
            err = body["error"]
            return isinstance(err, dict) and set(err) == {"code", "message"}
        case "xai":
            return set(body) == {"code", "error"}
    return False


@pytest.mark.parametrize(("provider", "marker", "status"), CASES)
def test_marker_answers(
    http: httpx.Client, sb: Sandbox, provider: str, marker: str, status: int
) -> None:
    r = get_list(http, sb, provider, f"key-{marker.upper()}-42")
    assert r.status_code == status
    assert error_shape_ok(provider, r.json())
    if marker == "ratelimited" and provider != "gemini":
        assert r.headers["retry-after"] == "1"


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_valid_key_lists_every_known_model(http: httpx.Client, sb: Sandbox, provider: str) -> None:
    r = get_list(http, sb, provider, "valid-key", "pageSize=1000" if provider == "gemini" else "")
    assert r.status_code == 200
    body = r.json()
    ids = (
        [m["name"].removeprefix("models/") for m in body["models"]]
        if provider == "gemini"
        else [m["id"] for m in body["data"]]
    )
    assert ids == list(PROVIDER_APIS[provider].models)


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_missing_or_empty_key_is_the_providers_401(
    http: httpx.Client, sb: Sandbox, provider: str
) -> None:
    url = base(sb, provider) + LIST_PATH[provider]
    empty = {k: v.strip() for k, v in AUTH[provider]("").items()}  # "Bearer ", stripped
    for headers in ({}, empty):
        r = http.get(url, headers=headers)
        assert r.status_code == 401
        assert error_shape_ok(provider, r.json())


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_unknown_path_is_the_providers_404(http: httpx.Client, sb: Sandbox, provider: str) -> None:
    r = http.get(base(sb, provider) + "/no/such/thing?api-version=1", headers=AUTH[provider]("k"))
    assert r.status_code == 404
    assert error_shape_ok(provider, r.json())


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_first_marker_wins(http: httpx.Client, sb: Sandbox, provider: str) -> None:
    # "invalid" comes before "flaky" and "outage" in the table.
    r = get_list(http, sb, provider, "outage-flaky-invalid")
    assert r.status_code == STATUS[provider]["invalid"]


def test_gemini_error_details(http: httpx.Client, sb: Sandbox) -> None:
    invalid = get_list(http, sb, "gemini", "invalid").json()["error"]
    assert invalid["status"] == "INVALID_ARGUMENT"
    assert invalid["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert invalid["details"][0]["reason"] == "API_KEY_INVALID"
    assert (
        get_list(http, sb, "gemini", "nocredits").json()["error"]["status"] == "FAILED_PRECONDITION"
    )
    limited = get_list(http, sb, "gemini", "ratelimited").json()["error"]
    assert limited["status"] == "RESOURCE_EXHAUSTED"
    retry = [d for d in limited["details"] if d["@type"].endswith("RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]
    assert get_list(http, sb, "gemini", "outage").json()["error"]["status"] == "UNAVAILABLE"


def test_gemini_pagination(http: httpx.Client, sb: Sandbox) -> None:
    names: list[str] = []
    token = ""
    pages = 0
    while True:
        body = get_list(http, sb, "gemini", "k", f"pageSize=4&pageToken={token}").json()
        pages += 1
        names += [m["name"] for m in body["models"]]
        assert all(m["supportedGenerationMethods"] for m in body["models"])
        if "nextPageToken" not in body:
            break
        token = body["nextPageToken"]
    assert names == [f"models/{m}" for m in PROVIDERS["gemini"].known_models]
    assert pages == 2
    bad = get_list(http, sb, "gemini", "k", "pageToken=garbage")
    assert bad.status_code == 400


def test_gemini_generate_content(http: httpx.Client, sb: Sandbox) -> None:
    url = base(sb, "gemini") + "/models/gemini-2.0-flash:generateContent"
    r = http.post(
        url, headers=AUTH["gemini"]("k"), json={"contents": [{"parts": [{"text": "hi"}]}]}
    )
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"]
    missing = http.post(
        base(sb, "gemini") + "/models/gemini-0:generateContent",
        headers=AUTH["gemini"]("k"),
        json={},
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == "NOT_FOUND"


def test_anthropic_pagination_bounds(http: httpx.Client, sb: Sandbox) -> None:
    assert get_list(http, sb, "anthropic", "k", "limit=0").status_code == 400
    last = PROVIDERS["anthropic"].known_models[-1]
    end = get_list(http, sb, "anthropic", "k", f"after_id={last}").json()
    assert end == {"data": [], "has_more": False, "first_id": None, "last_id": None}


def test_azure_shapes(http: httpx.Client, sb: Sandbox) -> None:
    root = base(sb, "azure_openai")
    auth = AUTH["azure_openai"]("azure-key")
    models = http.get(root + "/openai/models?api-version=2024-06-01", headers=auth).json()["data"]
    assert {"id", "status", "capabilities", "lifecycle_status"} <= set(models[0])
    dep = http.get(root + "/openai/deployments/gpt-4o-mini-eu?api-version=2024-06-01", headers=auth)
    assert dep.json()["model"] == "gpt-4o-mini"
    missing = http.get(
        root + "/openai/deployments/missing-one?api-version=2024-06-01", headers=auth
    )
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "DeploymentNotFound")
    no_version = http.get(root + "/openai/models", headers=auth)
    assert no_version.status_code == 404
    limited = http.get(
        root + "/openai/models?api-version=2024-06-01", headers=AUTH["azure_openai"]("ratelimited")
    )
    assert "Please retry after 1 seconds" in limited.json()["error"]["message"]
    invalid = http.get(
        root + "/openai/models?api-version=2024-06-01", headers=AUTH["azure_openai"]("invalid")
    )
    assert invalid.json()["error"]["message"].startswith(
        "Access denied due to invalid subscription key or wrong API endpoint"
    )


def test_xai_api_key_endpoint(http: httpx.Client, sb: Sandbox) -> None:
    url = base(sb, "xai") + "/api-key"
    ok = http.get(url, headers=AUTH["xai"]("xai-good")).json()
    assert (ok["api_key_blocked"], ok["api_key_disabled"], ok["team_blocked"]) == (
        False,
        False,
        False,
    )
    assert "xai-good" not in str(ok)
    assert http.get(url, headers=AUTH["xai"]("xai-forbidden")).json()["api_key_blocked"] is True
    invalid = http.get(url, headers=AUTH["xai"]("xai-invalid"))
    assert invalid.status_code == 400
    assert "Incorrect API key provided" in invalid.json()["error"]
    credits = http.get(base(sb, "xai") + "/models", headers=AUTH["xai"]("nocredits")).json()
    assert "credits" in credits["error"]


def test_deepseek_balance_and_both_roots(http: httpx.Client, sb: Sandbox) -> None:
    url = base(sb, "deepseek") + "/user/balance"
    ok = http.get(url, headers=AUTH["deepseek"]("ds")).json()
    assert ok["is_available"] is True
    empty = http.get(url, headers=AUTH["deepseek"]("ds-nocredits")).json()
    assert empty["is_available"] is False
    assert empty["balance_infos"][0]["total_balance"] == "0.00"
    assert http.get(url, headers=AUTH["deepseek"]("ds-invalid")).status_code == 401
    v1 = http.get(base(sb, "deepseek") + "/v1/models", headers=AUTH["deepseek"]("ds")).json()
    assert [m["id"] for m in v1["data"]] == list(PROVIDERS["deepseek"].known_models)
    chat = http.post(
        base(sb, "deepseek") + "/chat/completions",
        headers=AUTH["deepseek"]("ds"),
        json={"model": "deepseek-x"},
    )
    assert (chat.status_code, chat.json()["error"]["message"]) == (400, "Model Not Exist")
