"""The fleet index and page: filters, search, sort, paging, route kinds, live rebuilds."""

from __future__ import annotations

import time

from byokctl.resolver import CreditUsage, Resolver, WorkspaceStatus
from byokctl.serve.documents import fleet_row, split_credits
from byokctl.serve.fleet import FleetIndex, Query, breaker_state, route_kind
from byokctl.serve.pages import render
from byokctl.store import MasterKey
from tests.resolver.helpers import put, workspace
from tests.serve.conftest import Served
from tests.waiting import wait_until


def test_route_kinds_come_from_the_provider_alone() -> None:
    assert route_kind("openai") == "byok"
    assert route_kind("neo") == "neo"
    assert route_kind("unavailable") == "unavailable"
    assert breaker_state("circuit_open:outage") == "open"
    assert breaker_state("circuit_probe:outage") == "half-open"
    assert breaker_state("byok") == "closed"


def test_an_unavailable_route_renders_as_its_own_kind() -> None:
    # The policy branch's route (provider "unavailable"): the page needs no change for it.
    row = WorkspaceStatus("hooli", "openai", "unavailable", "", "neo_cap_reached", 1.8e9)
    doc = {
        "generation": 1, "total": 1, "matched": 1, "page": 1, "pages": 1, "per_page": 50,
        "counts": {"unavailable": 1},
        "workspaces": [fleet_row(row, {"today": {"byok": 0, "neo": 0},
                                       "month": {"byok": 0, "neo": 0}})],
    }  # fmt: skip
    html = render(
        "fleet.html", doc=doc, query=Query(), sorts=(), links={}, csrf="", session=False,
        admin=False,
    ).body.decode()  # fmt: skip
    assert '<tr data-name="hooli" class="kind-unavailable">' in html
    assert '<td class="route">unavailable</td>' in html
    assert '<span class="kind-unavailable">1 unavailable</span>' in html


def test_filters_search_sort_and_pages(served: Served) -> None:
    put(served.store, *(workspace(f"team-{i:03d}", "openai" if i % 3 else None)
                        for i in range(120)))  # fmt: skip
    served.resolver.refresh()
    fleet = served.state.fleet
    fleet.rebuild()
    everyone = fleet.page(Query(per_page=200))
    assert everyone.total == 123
    neo = fleet.page(Query(route="neo", per_page=200))
    assert {r.workspace for r in neo.rows} == {f"team-{i:03d}" for i in range(0, 120, 3)} | {
        "initech"
    }
    page2 = fleet.page(Query(q="TEAM-1", sort="-name", page=2, per_page=10))
    assert page2.matched == 20
    assert [r.workspace for r in page2.rows] == [f"team-{i:03d}" for i in range(109, 99, -1)]
    assert page2.pages == 2
    anthropic = fleet.page(Query(provider="anthropic"))
    assert [r.workspace for r in anthropic.rows] == ["globex"]
    by_reason = fleet.page(Query(reason="no_provider", per_page=200))
    assert by_reason.matched == 41
    assert Query.parse({"page": "-4", "per_page": "99999", "sort": "evil"}) == Query(
        page=1, per_page=200, sort="name"
    )


def test_the_index_follows_a_change_made_by_another_process(served: Served) -> None:
    # an apply elsewhere: the store's serial moves, the resolver reloads, the index rebuilds
    before = served.state.fleet.generation
    put(served.store, workspace("newcomer", "openai"))
    wait_until(lambda: served.state.fleet.get("newcomer") is not None, what="the new row")
    assert served.state.fleet.generation > before
    with served.client("read") as c:
        doc = c.get("/api/v1/fleet", params={"q": "newcomer"}).json()
    assert [w["name"] for w in doc["workspaces"]] == ["newcomer"]
    assert doc["workspaces"][0]["kind"] == "byok"


def test_a_change_made_here_patches_its_row_without_a_rebuild(served: Served) -> None:
    runtime = served.runtime
    index = FleetIndex(  # no thread: only patch() can change it
        served.resolver, runtime.versions, lambda n: runtime.episodes(workspace=n)
    )
    generation = index.generation
    route = served.resolver.resolve("acme-support", "assist")
    served.resolver.report(route, "invalid_key")
    index.patch("acme-support")
    row = index.get("acme-support")
    assert row is not None
    assert (row.provider, row.reason) == ("neo", "provider_failed:invalid_key")
    assert [e.outcome for e in row.episodes] == ["invalid_key"]
    assert row.since == row.episodes[0].opened_at
    assert index.generation == generation + 1
    assert index.page(Query(route="neo")).counts == {"neo": 2, "byok": 1}
    assert [r.workspace for r in index.page(Query(route="neo")).rows] == ["acme-support", "initech"]
    served.resolver.clear("acme-support")
    index.patch("acme-support")
    assert index.get("acme-support").provider == "openai"  # type: ignore[union-attr]


def test_credits_split_byok_and_neo_and_unavailable_costs_nothing() -> None:
    usage = [
        CreditUsage("a", "assist", "openai", 4, 4, "2026-12-04"),
        CreditUsage("a", "assist", "neo", 1, 3, "2026-12-04"),
        CreditUsage("a", "summarize", "neo", 2, 4, "2026-12-01"),
        CreditUsage("a", "assist", "unavailable", 5, 0, "2026-12-04"),
    ]
    assert split_credits(usage, "2026-12-04") == {
        "today": {"byok": 4, "neo": 3},
        "month": {"byok": 4, "neo": 7},
    }


def test_the_workspace_page_shows_its_audit_entries_and_providers_never_a_key(
    served: Served,
) -> None:
    with served.client("read") as c:
        html = c.get("/workspaces/acme-support").text
        other = c.get("/workspaces/initech").text
    assert "ci@example.com" in html
    assert "create enabled, providers.openai.api_key, providers.openai.model" in html
    assert "api_key (sensitive)" in html
    assert "providers.openai" not in other  # only its own changes
    assert "create notify" in other


def test_an_apply_elsewhere_right_after_a_report_here_still_reaches_the_index(
    served: Served, store_url: str, master_key: MasterKey
) -> None:
    # A report patches its row at once; an apply in another process lands before the
    # index's thread sees either move. The first rebuild then differs from the last one
    # by the patched row alone: that must not pass for the apply having arrived.
    resolver = Resolver.from_url(
        store_url, master_key=master_key, env={}, refresh_interval=None, notify=False
    )
    runtime = served.runtime
    index = FleetIndex(resolver, runtime.versions, lambda n: runtime.episodes(workspace=n))
    try:
        route = resolver.resolve("acme-support", "assist")
        resolver.report(route, "invalid_key")
        index.patch("acme-support")
        put(served.store, workspace("initech", "openai"))  # the apply, elsewhere
        generation = index.generation
        index.start(time.time)
        wait_until(lambda: index.generation > generation, what="a rebuild after the moves")
        resolver.refresh()  # the resolver reloads only now, after that rebuild
        wait_until(
            lambda: getattr(index.get("initech"), "enabled", None) == "openai",
            what="the apply in the index",
        )
    finally:
        index.stop()
        resolver.close()
