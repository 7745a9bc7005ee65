"""``/metrics``: Prometheus text exposition, labels bounded (no workspace name ever).

Gauges computed at scrape time from the fleet index (``byok_workspaces``,
``byok_episodes_open``) and the store (``byok_store_up``, ``byok_config_serial``);
counters of what this server did (``byok_resolve_total``, ``byok_fallback_total``,
``byok_credits_total``: credits charged by its resolves and fallbacks, refunds of
failed attempts not subtracted); request durations per route template.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from byokctl.errors import StoreError

if TYPE_CHECKING:
    from .state import ServeState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _FleetCollector(Collector):
    def __init__(self, state: ServeState) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = self._state.fleet.rows()
        workspaces = GaugeMetricFamily(
            "byok_workspaces", "Workspaces per route and reason", labels=["route", "reason"]
        )
        for (route, reason), n in sorted(Tally((r.provider, r.reason) for r in rows).items()):
            workspaces.add_metric([route, reason], n)
        yield workspaces
        episodes = GaugeMetricFamily(
            "byok_episodes_open", "Open failure episodes", labels=["provider", "outcome"]
        )
        tally = Tally((e.provider, e.outcome) for r in rows for e in r.episodes)
        for (provider, outcome), n in sorted(tally.items()):
            episodes.add_metric([provider, outcome], n)
        yield episodes
        up = GaugeMetricFamily("byok_store_up", "1 when the store answers")
        serial = GaugeMetricFamily("byok_config_serial", "The configuration serial")
        try:
            value, _ = self._state.runtime.versions()
            up.add_metric([], 1.0 if self._state.resolver.store_available else 0.0)
            serial.add_metric([], value)
        except StoreError:
            up.add_metric([], 0.0)
        yield up
        yield serial


class Metrics:
    """The server's own registry (not the process-global one)."""

    def __init__(self, state: ServeState) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.resolves = Counter(
            "byok_resolve", "Resolves answered", ["route", "reason"], registry=self.registry
        )
        self.fallbacks = Counter(
            "byok_fallback",
            "Reported failures that fell back",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.credits = Counter(
            "byok_credits", "Credits charged", ["route", "feature"], registry=self.registry
        )
        self.requests = Histogram(
            "byok_http_request_duration_seconds",
            "HTTP request duration",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.registry.register(_FleetCollector(state))

    def render(self) -> bytes:
        return generate_latest(self.registry)
