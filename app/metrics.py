"""Request and cache metrics through `prometheus_client`, one set for all worker processes.

Each request is counted by method, route template (`/api/v1/campaigns/{campaign_id}`, never
the raw path, so the label set stays small) and status, and timed by route. The caches of
app/cache.py report their hits, misses, evictions, bytes and entries. With several workers,
`sipas serve` points PROMETHEUS_MULTIPROC_DIR at a directory of its own before they start:
each process then writes its figures there and any worker answering `/metrics` reads them all
(prometheus_client's multiprocess mode), so a scrape sees the whole service, not one process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the classic text format, which every scraper reads
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A request that matched no route (a 404, a probe of a made-up path) is counted under this.
UNMATCHED = "unmatched"

# Decided once, as prometheus_client decides where values live when it is first imported.
MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))
disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series

REQUESTS = Counter(
    "sipas_requests",
    "HTTP requests answered, by method, route template and status.",
    ["method", "status", "route"],
)
DURATION = Histogram(
    "sipas_request_duration_seconds",
    "Time to answer a request, by route template.",
    ["route"],
    buckets=BUCKETS,
)
CACHE_HITS = Counter("sipas_cache_hits", "Reads a process cache answered.", ["cache"])
CACHE_MISSES = Counter("sipas_cache_misses", "Reads a process cache could not answer.", ["cache"])
CACHE_EVICTIONS = Counter(
    "sipas_cache_evictions", "Entries a process cache dropped to stay in budget.", ["cache"]
)
CACHE_BYTES = Gauge(
    "sipas_cache_bytes",
    "Bytes a cache holds, all processes.",
    ["cache"],
    multiprocess_mode="livesum",
)
CACHE_ENTRIES = Gauge(
    "sipas_cache_entries",
    "Entries a cache holds, all processes.",
    ["cache"],
    multiprocess_mode="livesum",
)
CACHE_BUDGET = Gauge(
    "sipas_cache_budget_bytes",
    "The byte budget of a cache, per process.",
    ["cache"],
    multiprocess_mode="max",
)

# The read replica (app/replica.py): reads that could have gone there, by what became of them
# (served by the replica; sent to the primary because it was `behind` the caller's own write or
# `down`), and the failures that opened its circuit breaker.
REPLICA_READS = Counter(
    "sipas_replica_reads",
    "Reads a replica could serve, by outcome: served, behind (primary), down (primary).",
    ["outcome"],
)
REPLICA_FAILURES = Counter(
    "sipas_replica_failures", "Times the read replica could not be reached (breaker opened)."
)


async def remember_route(request: Request) -> None:
    """An app-wide dependency (async: no thread-pool hop): notes the template of the route
    answering in the request's state, which the request-context middleware shares (the router
    keeps its match to itself).
    An included router's route knows its own path without the router's prefix, so the prefix
    is read off the front of the path the route's pattern matched the rest of."""
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    pattern = getattr(route, "path_regex", None)
    if not isinstance(template, str) or pattern is None:
        return
    path: str = request.scope.get("path", "")
    cut = 0
    while cut >= 0 and not pattern.match(path[cut:]):
        cut = path.find("/", cut + 1)
    request.state.metrics_route = (path[:cut] if cut > 0 else "") + template


def route_of(scope: Mapping[str, Any]) -> str:
    """The template of the route that answered `scope`, or UNMATCHED."""
    path = (scope.get("state") or {}).get("metrics_route")
    return path if isinstance(path, str) else UNMATCHED


def observe(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, str(status), route).inc()
    DURATION.labels(route).observe(seconds)


def render() -> bytes:
    """Every process's figures in the Prometheus text format."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)
