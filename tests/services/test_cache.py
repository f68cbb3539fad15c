"""The process cache facility: budgets in bytes and entries, least recently used out, counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import cache as caches
from app.cache import Budget, Cache


def test_a_cache_counts_hits_misses_bytes_and_evictions() -> None:
    c: Cache[str, bytes] = Cache("test", Budget(max_bytes=10), len)
    assert c.get("a") is None
    c.put("a", b"1234")
    c.put("b", b"5678")
    assert c.get("a") == b"1234"  # a is now the most recently used
    c.put("c", b"90")  # 10 bytes: within the budget
    assert list(c) == ["b", "a", "c"]
    c.put("d", b"x")  # 11 bytes: the least recently used (b) goes
    assert list(c) == ["a", "c", "d"]
    s = c.stats()
    assert (s.hits, s.misses, s.evictions, s.entries, s.bytes) == (1, 1, 1, 3, 7)
    c.put("a", b"")  # a replaced value is weighed again
    assert c.stats().bytes == 3


def test_the_newest_entry_stays_even_over_the_budget_and_entries_are_bounded_too() -> None:
    c: Cache[int, bytes] = Cache("test", Budget(max_bytes=3, max_entries=2), len)
    c.put(1, b"too large")
    assert list(c) == [1]
    c.put(2, b"")
    assert list(c) == [2]  # 1 was over the byte budget once 2 came
    c.put(3, b"")
    c.put(4, b"")
    assert list(c) == [3, 4]  # at most two entries
    with c.budget_of(Budget(max_bytes=3, max_entries=1)):
        assert list(c) == [4]
    assert c.budget == Budget(max_bytes=3, max_entries=2)


def test_every_named_cache_has_a_declared_budget() -> None:
    with pytest.raises(KeyError, match="declare it"):
        caches.named("no.such.cache", len)
    renderings: Cache[object, bytes] = caches.named("reports.renderings", len)
    assert renderings is caches.named("reports.renderings", len)  # one per process
    assert renderings.budget == caches.BUDGETS["reports.renderings"]
    assert "reports.renderings" in [s.name for s in caches.all_stats()]


def test_the_readme_lists_every_budget() -> None:
    """The README's table of caches is the one in app/cache.py, budget for budget."""
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for name, budget in caches.BUDGETS.items():
        mib = f"{budget.max_bytes // caches.MiB} MiB"
        entries = "" if budget.max_entries is None else str(budget.max_entries)
        assert f"| `{name}` | {mib} | {entries} |".replace("|  |", "| |") in readme, name
