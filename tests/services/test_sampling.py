"""Sample size, allocation and the seeded draw against hand-computed cases."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.services.sampling import allocate, draw, sample_size, stratum_seed


@pytest.mark.parametrize(
    ("population", "margin", "expected"),
    [
        (2000, Fraction(1, 20), 334),  # 2000 / (1 + 2000·0.0025) = 333.33 -> 334
        (400, Fraction(1, 20), 200),  # 400 / 2 = 200 exactly: no rounding up
        (1, Fraction(1, 20), 1),
        (0, Fraction(1, 20), 0),
        (10_000, Fraction(1, 20), 385),  # 10000 / 26 = 384.6
        (1_000_000, Fraction(1, 20), 400),  # 1e6 / 2501 = 399.84
        (2000, Fraction(1, 10), 96),  # 2000 / 21 = 95.24
    ],
)
def test_sample_size(population: int, margin: Fraction, expected: int) -> None:
    assert sample_size(population, margin) == expected


def test_sample_size_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="negative"):
        sample_size(-1)
    with pytest.raises(ValueError, match="margin"):
        sample_size(100, Fraction(0))


def test_allocation_proportional_with_largest_remainder() -> None:
    # 334 over 1000/600/400: shares 167, 100.2, 66.8 -> 167, 100, 67 (the .8 gets the unit)
    assert allocate({"a": 1000, "b": 600, "c": 400}, 334) == {"a": 167, "b": 100, "c": 67}


def test_allocation_lifts_small_strata_to_the_minimum() -> None:
    # Shares of 334 over 1700/250/50: 283.9, 41.75, 8.35. c is lifted to 30; the other 304
    # are shared by a and b in the ratio 1700:250 -> 265.03 and 38.97 -> 265 and 39.
    result = allocate({"a": 1700, "b": 250, "c": 50}, 334)
    assert result == {"a": 265, "b": 39, "c": 30}
    assert sum(result.values()) == 334


def test_allocation_takes_a_stratum_smaller_than_the_minimum_whole() -> None:
    # c has only 12 dossiers: min(N_h, 30) = 12; shares of the remaining 322 over 900/100:
    # 289.8 and 32.2 -> 290 and 32.
    assert allocate({"a": 900, "b": 100, "c": 12}, 334) == {"a": 290, "b": 32, "c": 12}


def test_allocation_without_minimum_is_plain_proportional() -> None:
    # 100 over 200/40: 83.33 and 16.67 -> 83 and 17.
    assert allocate({"a": 200, "b": 40}, 100, minimum=0) == {"a": 83, "b": 17}


def test_minimums_win_over_a_small_total() -> None:
    assert allocate({"a": 100, "b": 100, "c": 100}, 60) == {"a": 30, "b": 30, "c": 30}


def test_total_above_the_frame_takes_everything() -> None:
    assert allocate({"a": 10, "b": 5}, 100) == {"a": 10, "b": 5}


def test_ties_go_to_the_larger_stratum_then_key_order() -> None:
    # Shares of 5 over 3/3/2 (minimum 0): 1.875, 1.875, 1.25 -> floors 1,1,1; two units left:
    # the two .875 remainders get them.
    assert allocate({"x": 3, "y": 3, "z": 2}, 5, minimum=0) == {"x": 2, "y": 2, "z": 1}
    # Shares of 3 over 2/2/2: 1 each exactly.
    assert allocate({"x": 2, "y": 2, "z": 2}, 3, minimum=0) == {"x": 1, "y": 1, "z": 1}
    # Shares of 2 over 1/1/1: 0.667 each; larger N_h ties, so key order: x then y.
    assert allocate({"x": 1, "y": 1, "z": 1}, 2, minimum=0) == {"x": 1, "y": 1, "z": 0}


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=12),
    total=st.integers(min_value=0, max_value=20000),
    minimum=st.integers(min_value=0, max_value=50),
)
def test_allocation_invariants(sizes: list[int], total: int, minimum: int) -> None:
    frame = {f"s{i}": n for i, n in enumerate(sizes)}
    result = allocate(frame, total, minimum)
    assert set(result) == set(frame)
    for key, n in frame.items():
        assert min(n, minimum) <= result[key] <= n
    floors = sum(min(n, minimum) for n in sizes)
    if floors >= total:
        assert sum(result.values()) == floors
    else:
        assert sum(result.values()) == min(total, sum(sizes))


def test_same_seed_same_sample_other_seed_other_sample() -> None:
    units = [f"HS-{i:05d}" for i in range(1000)]
    first = draw(units, 50, "sipas-2020")
    assert first == draw(list(reversed(units)), 50, "sipas-2020")  # import order is irrelevant
    assert len(first) == len(set(first)) == 50
    assert set(first) <= set(units)
    assert first != draw(units, 50, "sipas-2020-b")


def test_draw_takes_all_when_asked_for_more() -> None:
    assert draw(["b", "a"], 5, "s") == ["a", "b"]


def test_stratum_streams_are_independent() -> None:
    units = [f"HS-{i}" for i in range(200)]
    assert draw(units, 10, stratum_seed("s", "a")) != draw(units, 10, stratum_seed("s", "b"))
