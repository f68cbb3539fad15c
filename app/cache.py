"""The process caches: each named, within a budget declared here, and counted.

A cache keeps what a process has computed and may serve again unchanged (a report's rendering,
an index result, a parsed questionnaire). Each is a least-recently-used map bounded by a byte
budget (what its values weigh, by the cache's own measure) and, where a count is the better
bound, by a number of entries. Each counts its hits, misses and evictions and the bytes it
holds; `/metrics` exports those figures for every cache by name (app/metrics.py), and tests
read them through `stats()` rather than through a module's private variables.

The budgets are in `BUDGETS`, the one table of them (the README repeats it). A cache is made
once, where it is used, with `named(...)`; asking for a name not in the table is an error, so a
new cache cannot come without its budget.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from threading import Lock
from typing import Generic, TypeVar

from app import metrics

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MiB = 2**20


@dataclass(frozen=True, slots=True)
class Budget:
    """How much one cache may hold: bytes always; entries too when `max_entries` is set."""

    max_bytes: int
    max_entries: int | None = None


# Every process cache: its budget, and (above it) what it holds.
BUDGETS: dict[str, Budget] = {
    # a stored report rendered as JSON, CSV or XLSX (reports never change)
    "reports.renderings": Budget(64 * MiB),
    # an index result, keyed by everything it was computed from
    "index.results": Budget(32 * MiB, max_entries=256),
    # a questionnaire definition, parsed: the built-ins and the frozen versions
    "questionnaires.parsed": Budget(8 * MiB, max_entries=128),
    # a parsed questionnaire's item index and answer codes, for checking forms
    "instrument.lookups": Budget(8 * MiB, max_entries=256),
    # a campaign's field-quality settings, parsed, and what the screening rules need
    "screening.configs": Budget(1 * MiB, max_entries=256),
    # a public report: the figures a published report shows without a token
    "public.reports": Budget(32 * MiB, max_entries=64),
    # a batch INSERT for one set of columns a batch shares (bound once, not per form)
    "submissions.statements": Budget(1 * MiB, max_entries=128),
    # an opened campaign's agencies and sectors (fixed once it opens)
    "submissions.scopes": Budget(16 * MiB, max_entries=1024),
    # a bearer token already verified (signature and claims), checked again for expiry
    "auth.tokens": Budget(4 * MiB, max_entries=4096),
}


@dataclass(frozen=True, slots=True)
class CacheStats:
    name: str
    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int
    max_bytes: int
    max_entries: int | None


class Cache(Generic[K, V]):
    """A least-recently-used map within a budget; `weigh` says what a value costs in bytes."""

    def __init__(self, name: str, budget: Budget, weigh: Callable[[V], int]) -> None:
        self.name = name
        self.budget = budget
        self._weigh = weigh
        self._lock = Lock()
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._hit_count = metrics.CACHE_HITS.labels(name)
        self._miss_count = metrics.CACHE_MISSES.labels(name)
        self._eviction_count = metrics.CACHE_EVICTIONS.labels(name)
        self._bytes_gauge = metrics.CACHE_BYTES.labels(name)
        self._entries_gauge = metrics.CACHE_ENTRIES.labels(name)
        metrics.CACHE_BUDGET.labels(name).set(budget.max_bytes)

    def get(self, key: K) -> V | None:
        """The value kept under `key` (now the most recently used), or None: a hit or a miss."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self._misses += 1
                self._miss_count.inc()
                return None
            self._items.move_to_end(key)
            self._hits += 1
            self._hit_count.inc()
            return item[0]

    def put(self, key: K, value: V) -> None:
        """Keep `value`, then drop the least recently used entries until within the budget. The
        newest entry stays even when it alone is over the byte budget (it was just paid for)."""
        size = self._weigh(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            self._shrink()
            self._publish()

    def _shrink(self) -> None:
        budget = self.budget
        while len(self._items) > 1 and (
            self._bytes > budget.max_bytes
            or (budget.max_entries is not None and len(self._items) > budget.max_entries)
        ):
            _, (_, size) = self._items.popitem(last=False)
            self._bytes -= size
            self._evictions += 1
            self._eviction_count.inc()

    def _publish(self) -> None:
        self._bytes_gauge.set(self._bytes)
        self._entries_gauge.set(len(self._items))

    def __iter__(self) -> Iterator[K]:
        """The keys kept, least recently used first (a snapshot: the cache may change)."""
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def clear(self) -> None:
        """Forget every entry (the counters go on)."""
        with self._lock:
            self._items.clear()
            self._bytes = 0
            self._publish()

    @contextmanager
    def budget_of(self, budget: Budget) -> Iterator[None]:
        """Run the body under another budget (tests use a tiny one to see eviction)."""
        before = self.budget
        self.budget = budget
        try:
            with self._lock:
                self._shrink()
                self._publish()
            yield
        finally:
            self.budget = before

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                self.name,
                self._hits,
                self._misses,
                self._evictions,
                len(self._items),
                self._bytes,
                self.budget.max_bytes,
                self.budget.max_entries,
            )


_CACHES: dict[str, Cache[object, object]] = {}


def named(name: str, weigh: Callable[[V], int]) -> Cache[K, V]:
    """The process cache called `name`, made on first use with its budget from `BUDGETS`."""
    if name not in BUDGETS:
        raise KeyError(f"no budget for the cache {name!r}: declare it in app.cache.BUDGETS")
    existing = _CACHES.get(name)
    if existing is None:
        made: Cache[K, V] = Cache(name, BUDGETS[name], weigh)
        _CACHES[name] = made  # type: ignore[assignment]
        return made
    return existing  # type: ignore[return-value]


def all_stats() -> list[CacheStats]:
    """The figures of every cache made in this process, by name."""
    return [c.stats() for _, c in sorted(_CACHES.items())]
