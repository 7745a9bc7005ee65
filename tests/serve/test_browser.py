"""The fleet page in a real browser: Playwright driving Debian's chromium, headless.

Load the fleet, filter to Neo, report a failure through the API and watch the row
arrive on Neo without a reload, open the workspace, press "clear" as an admin. Under
``CI=true`` a missing chromium fails the test (``.ci/run`` installs it); elsewhere it
skips, saying so. ``UPDATE_SCREENSHOTS=1`` writes the screenshots to ``docs/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.serve.conftest import Served
from tests.serve.test_api_http import INVALID_KEY

CHROMIUM = Path("/usr/bin/chromium")
DOCS = Path(__file__).resolve().parents[2] / "docs"

if not CHROMIUM.exists() and os.environ.get("CI", "").lower() != "true":
    pytest.skip("no /usr/bin/chromium (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """The browser test runs once, on SQLite (the API tests cover both backends)."""
    return f"sqlite:///{tmp_path / 'store' / 'state.db'}"


def test_fleet_page_live_update_workspace_page_and_clear(served: Served, tmp_path: Path) -> None:
    assert CHROMIUM.exists(), "CI must install chromium (apt-get install -y chromium)"
    with served.client("resolve") as c:  # some traffic, so the credits columns show numbers
        for feature in ("assist", "summarize", "auto_reply", "assist"):
            c.post("/api/v1/resolve", json={"workspace": "globex", "feature": feature})
            c.post("/api/v1/resolve", json={"workspace": "initech", "feature": feature})
    served.resolver.flush()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(served.url + "/")
            # a token is needed: the login form trades it for an HttpOnly session cookie
            page.fill("input[name=token]", served.tokens["admin"])
            page.click("button[type=submit]")
            expect(page.locator("#fleet-rows tr")).to_have_count(3)
            errors.clear()  # the first answer was the login page's 401
            cookie = next(c for c in page.context.cookies() if c["name"] == "byok_session")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

            page.select_option("#filter-route", "neo")
            page.click("#apply-filters")
            expect(page.locator("#fleet-rows tr")).to_have_count(1)
            expect(page.locator('tr[data-name="initech"] td.route')).to_have_text("neo")
            page.evaluate("window.__sameDocument = true")

            with served.client("resolve") as c:
                route = c.post("/api/v1/resolve", json={"workspace": "acme-support"}).json()
                r = c.post("/api/v1/report", json={"route_id": route["route_id"],
                                                   "status": 401, "body": INVALID_KEY})  # fmt: skip
                assert r.json()["outcome"] == "invalid_key"
            row = page.locator('tr[data-name="acme-support"]')
            expect(row.locator("td.route")).to_have_text("neo", timeout=30_000)
            expect(row.locator("td.reason")).to_have_text("provider_failed:invalid_key")
            assert page.evaluate("window.__sameDocument") is True  # no reload happened
            page.screenshot(path=str(tmp_path / "serve-fleet.png"), full_page=True)

            row.locator("a").click()
            expect(page.locator("h1")).to_have_text("acme-support")
            expect(page.locator("#reason")).to_have_text("provider_failed:invalid_key")
            assert page.locator("svg.chart rect").count() == 60
            page.screenshot(path=str(tmp_path / "serve-workspace.png"), full_page=True)

            page.click("#clear")
            expect(page.locator("#cleared")).to_have_text("Failure state cleared.")
            expect(page.locator("#reason")).to_have_text("byok")
            assert errors == []
        finally:
            browser.close()
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        for name in ("serve-fleet.png", "serve-workspace.png"):
            shutil.copy(tmp_path / name, DOCS / name)


def test_clear_without_the_admin_scope_or_csrf_token_is_refused(served: Served) -> None:
    with served.client("read") as c:
        r = c.post("/workspaces/acme-support/clear", data={"csrf": "x"})
        assert r.status_code == 403
    with served.client("admin") as c:
        r = c.post("/workspaces/acme-support/clear", data={"csrf": "wrong"})
        assert r.status_code == 403
        assert "stale form" in r.text
        assert c.get("/workspaces/acme-support/clear").status_code == 405
