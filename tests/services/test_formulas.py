"""The SIPAS formulas (method section 2) against hand-computed cases and raw-row recomputation.

Every expected number is derived in a comment or by an independent computation (Fractions, a
quadratic solved by hand, a loop over rows); none is copied from the implementation's output.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.index.formulas import (
    ElementSpec,
    ItemCounts,
    Missing,
    PairCounts,
    Structure,
    band_for,
    changes,
    coefficients,
    composite_estimate,
    composite_interval,
    composite_se,
    composite_se_from_rows,
    composite_value,
    compute_indices,
    criterion_estimate,
    criterion_index,
    display,
    dossier_summary,
    dossier_total,
    effective_n,
    element_index,
    estimate,
    expectation_index,
    indicator_mean,
    merge_baseline,
    option_shares,
    overall_index,
    perception_index,
    pillar_index,
    pooled,
    present,
    publish,
    rank,
    small_cell_flags,
    stratum_weight,
    successor_of,
    unit_mean,
    weighted,
    weighted_mean,
    wilson_interval,
)
from app.services.instrument import ElementRule, Thresholds, load_builtin


def counts(positive: float, valid: float) -> ItemCounts:
    return ItemCounts(n_valid=valid, n_positive=positive)


# ---- 2.1 criterion index -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("positive", "valid", "expected"),
    [
        # The method's known case: 10 rất hài lòng + 16 hài lòng = 26 satisfied of 31 forms.
        (26, 31, Fraction(2600, 31)),  # 83.870967741935...
        (1, 1, Fraction(100)),  # one answer, satisfied
        (0, 1, Fraction(0)),  # one answer, not satisfied: 0, not null
        (3, 4, Fraction(75)),
    ],
)
def test_criterion_index(positive: int, valid: int, expected: Fraction) -> None:
    assert criterion_index(counts(positive, valid)) == pytest.approx(float(expected), rel=1e-15)


@pytest.mark.parametrize(
    "cell",
    [
        ItemCounts(0, 0),  # an empty cell
        ItemCounts(0, 0, {}),  # every respondent chose "no answer": nothing is valid
    ],
)
def test_criterion_index_without_valid_answers_is_null(cell: ItemCounts) -> None:
    assert criterion_index(cell) is None


def test_known_case_31_forms_from_levels() -> None:
    levels = {"5": 10.0, "4": 16.0, "3": 5.0}  # 0 at levels 1 and 2
    cell = ItemCounts(31, 26, levels)
    value = perception_index(cell, positive_set=(4, 5))
    assert value == criterion_index(cell)
    assert value is not None
    assert abs(value - 2600 / 31) < 1e-12
    assert display(value) == Decimal("83.87")  # 83.8709... rounds down at the 3rd decimal


def test_counts_reject_more_positive_than_valid() -> None:
    with pytest.raises(ValueError, match="more positive"):
        ItemCounts(4, 5)
    with pytest.raises(ValueError, match="negative"):
        ItemCounts(-1, 0)


# ---- 2.10 Wilson interval ----------------------------------------------------------------------


def wilson_by_quadratic(s: int, n: int, z: float) -> tuple[float, float]:
    """Independent check: the Wilson bounds are the roots π of (p − π)² = z²·π(1 − π)/n, i.e.
    (1 + z²/n)·π² − (2p + z²/n)·π + p² = 0."""
    p = s / n
    a = 1 + z * z / n
    b = -(2 * p + z * z / n)
    c = p * p
    root = math.sqrt(b * b - 4 * a * c)
    return (100 * (-b - root) / (2 * a), 100 * (-b + root) / (2 * a))


@pytest.mark.parametrize(("s", "n"), [(8, 10), (26, 31), (1, 1), (15, 40)])
def test_wilson_matches_the_quadratic(s: int, n: int) -> None:
    low, high = wilson_by_quadratic(s, n, 1.959964)
    got = wilson_interval(s, n)
    assert got is not None
    assert got[0] == pytest.approx(low, abs=1e-9)
    assert got[1] == pytest.approx(high, abs=1e-9)


def test_wilson_known_value() -> None:
    # 8/10: p = .8, z² = 3.84146, z²/n = .384146, denominator 1.384146;
    # centre = (.8 + .192073)/1.384146 = .716737; half = 1.959964/1.384146 ·
    # sqrt(.016 + .0096037) = 1.416009 · .160011 = .226577 -> 49.016% .. 94.331%
    # (statsmodels proportion_confint(8, 10, method="wilson") = (0.490162, 0.943318)).
    got = wilson_interval(8, 10)
    assert got is not None
    assert got[0] == pytest.approx(49.0162, abs=1e-4)
    assert got[1] == pytest.approx(94.3318, abs=1e-4)


def test_wilson_edges() -> None:
    assert wilson_interval(0, 0) is None
    zero = wilson_interval(0, 10)
    assert zero is not None
    assert zero[0] == 0.0  # centre = half-width when p = 0
    full = wilson_interval(10, 10)
    assert full is not None
    assert full[1] == pytest.approx(100.0, abs=1e-9)  # p = 1: the upper root is exactly 1


def test_wilson_with_weighted_counts_uses_the_effective_n() -> None:
    # 10 answers each of weight 40 (a stratum of 400 dossiers): weighted 320 of 400.
    # Kish n_eff = (Σw)²/Σw² = 400²/(10·1600) = 10, so the interval is that of 8/10, not of
    # 320/400 (which would pretend the whole frame answered).
    n_eff = effective_n(400.0, 10 * 40.0**2)
    assert n_eff == 10.0
    assert wilson_interval(320, 400, n_effective=n_eff) == wilson_interval(8, 10)
    narrow = wilson_interval(320, 400)
    wide = wilson_interval(8, 10)
    assert narrow is not None
    assert wide is not None
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert effective_n(0.0, 0.0) is None


# ---- 2.2 / 2.3 elements and overall ------------------------------------------------------------


@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ([80.0, 60.0, 70.0], 70.0),
        ([80.0, None, 60.0], 70.0),  # a null criterion: the mean of the other two
        ([None, 55.5], 55.5),
        ([None, None], None),  # all null -> null
        ([], None),
    ],
)
def test_element_mean_of_criteria(criteria: list[float | None], expected: float | None) -> None:
    assert element_index(criteria) == expected


def test_element_designated_item() -> None:
    assert element_index([10.0, 20.0], ElementRule.designated_item, 90.0) == 90.0
    assert element_index([10.0, 20.0], ElementRule.designated_item, None) is None


EQUAL5 = {f"E{k}": 0.2 for k in range(1, 6)}


@pytest.mark.parametrize(
    ("values", "missing", "expected"),
    [
        # (80 + 90 + 100 + 70 + 60) / 5 = 80
        ({"E1": 80.0, "E2": 90.0, "E3": 100.0, "E4": 70.0, "E5": 60.0}, "null", 80.0),
        ({"E1": 80.0, "E2": 90.0, "E3": None, "E4": 70.0, "E5": 60.0}, "null", None),
        # renormalised: (80 + 90 + 70 + 60) / 4 = 75
        ({"E1": 80.0, "E2": 90.0, "E3": None, "E4": 70.0, "E5": 60.0}, "renormalise", 75.0),
        ({"E1": 80.0, "E2": 90.0, "E4": 70.0, "E5": 60.0}, "renormalise", 75.0),  # E3 absent
        ({"E1": None, "E2": None, "E3": None, "E4": None, "E5": None}, "renormalise", None),
    ],
)
def test_overall_null_handling(
    values: dict[str, float | None], missing: Missing, expected: float | None
) -> None:
    got = overall_index(values, EQUAL5, missing)
    assert got == (None if expected is None else pytest.approx(expected, rel=1e-15))


SIPAS2017_ELEMENTS = ("E1", "E2", "E3", "E4", "E5")


@pytest.mark.parametrize("empty", SIPAS2017_ELEMENTS)
def test_overall_is_null_when_an_element_of_the_cell_is_null(empty: str) -> None:
    # Every criterion answered 3 of 4 satisfied (75) except those of `empty`, which nobody
    # answered: that element is null, the others 75, and the overall null (not 75, the mean of
    # the four present), in the indices and in the coefficients behind the interval alike.
    q = load_builtin("sipas-2017")
    structure = Structure.from_questionnaire(q)
    cells = {item: counts(3, 4) for e in structure.elements if e.id != empty for item in e.criteria}
    got = compute_indices(structure, cells)
    assert got.elements[empty] is None
    assert all(got.elements[e] == pytest.approx(75.0) for e in SIPAS2017_ELEMENTS if e != empty)
    assert got.overall is None
    assert coefficients(structure, list(cells)).overall is None
    full = compute_indices(
        structure, cells | {i: counts(1, 4) for i in structure.element(empty).criteria}
    )
    # with the element answered (25): (4·75 + 25) / 5 = 65
    assert full.overall == pytest.approx(65.0)


SIPAS2023_GROUPS = ("PA", "PB", "PC", "PD", "S1", "S2", "S3", "S4", "S5")


@pytest.mark.parametrize("empty", SIPAS2023_GROUPS)
def test_sipas2023_overall_is_null_when_a_group_is_null(empty: str) -> None:
    # Every item 3 of 4 satisfied (75) except those of `empty`: its pillar is null (a null
    # part makes a pillar null), so the overall 0.5·P + 0.5·S is null; the other pillar is 75.
    q = load_builtin("sipas-2023")
    structure = Structure.from_questionnaire(q)
    assert {e.id for e in structure.elements} == set(SIPAS2023_GROUPS)
    cells = {item: counts(3, 4) for e in structure.elements if e.id != empty for item in e.criteria}
    got = compute_indices(structure, cells)
    pillar_of = {k: p.id for p in structure.pillars for k in p.elements}
    assert got.pillars[pillar_of[empty]] is None
    other = next(p.id for p in structure.pillars if p.id != pillar_of[empty])
    assert got.pillars[other] == pytest.approx(75.0)
    assert got.overall is None
    assert coefficients(structure, list(cells)).overall is None


def test_weighted_mean_weights() -> None:
    # 0.75·80 + 0.25·40 = 70; with b null and renormalised only a remains: 80
    assert weighted_mean({"a": 80.0, "b": 40.0}, {"a": 0.75, "b": 0.25}) == 70.0
    assert weighted_mean({"a": 80.0, "b": None}, {"a": 0.75, "b": 0.25}, "renormalise") == 80.0
    with pytest.raises(ValueError, match="no weight"):
        weighted_mean({"c": 1.0}, {"a": 1.0})


def test_sipas2023_two_levels() -> None:
    # P = mean(100, 50, 75, 25) = 62.5; S = mean(80, 60, 40, 20, 100) = 60;
    # overall = 0.5·62.5 + 0.5·60 = 61.25
    q = load_builtin("sipas-2023")
    structure = Structure.from_questionnaire(q)
    per_element = {
        "PA": (4, 4),
        "PB": (2, 4),
        "PC": (3, 4),
        "PD": (1, 4),
        "S1": (4, 5),
        "S2": (3, 5),
        "S3": (2, 5),
        "S4": (1, 5),
        "S5": (5, 5),
    }
    cells = {item: counts(*per_element[e.id]) for e in structure.elements for item in e.criteria}
    result = compute_indices(structure, cells)
    assert result.pillars == {"policies": 62.5, "services": 60.0}
    assert result.overall == 61.25
    assert pillar_index({"a": 62.5, "b": 60.0}, {"a": 0.5, "b": 0.5}) == 61.25

    # PD without any valid answer: the pillar (and so the overall) is null by default; with
    # renormalise P = mean(100, 50, 75) = 75 and overall = 0.5·75 + 0.5·60 = 67.5.
    no_pd = {i: c for i, c in cells.items() if i not in structure.element("PD").criteria}
    assert compute_indices(structure, no_pd).overall is None
    assert compute_indices(structure, no_pd, "renormalise").overall == 67.5


def test_sipas2017_element_with_null_criterion() -> None:
    q = load_builtin("sipas-2017")
    structure = Structure.from_questionnaire(q)
    e1 = structure.element("E1").criteria
    assert len(e1) == 4
    cells = {item: counts(1, 2) for e in structure.elements for item in e.criteria}  # all 50
    cells[e1[0]] = counts(1, 4)  # 25
    cells[e1[1]] = counts(3, 4)  # 75
    cells[e1[2]] = ItemCounts(0, 0)  # nobody answered: null
    cells[e1[3]] = counts(7, 10)  # 70
    result = compute_indices(structure, cells)
    # E1 = (25 + 75 + 70) / 3 = 56.666...; overall = (170/3 + 4·50) / 5 = 770/15
    assert result.criteria[e1[2]] is None
    assert result.elements["E1"] == pytest.approx(170 / 3, rel=1e-15)
    assert result.overall == pytest.approx(770 / 15, rel=1e-15)

    coefs = coefficients(structure, [i for i, c in cells.items() if c.n_valid > 0])
    assert coefs.elements["E1"] == {e1[0]: 1 / 3, e1[1]: 1 / 3, e1[3]: 1 / 3}
    assert coefs.overall is not None
    assert coefs.overall[e1[0]] == pytest.approx(1 / 15)  # 1/3 within E1 · 1/5 for the overall
    assert composite_value(coefs.overall, cells) == pytest.approx(770 / 15, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    cells=st.lists(
        st.tuples(st.integers(0, 20), st.integers(0, 20)).map(lambda t: (min(t), max(t))),
        min_size=22,
        max_size=22,
    ),
    renormalise=st.booleans(),
)
def test_coefficients_reproduce_the_nested_means(
    cells: list[tuple[int, int]], renormalise: bool
) -> None:
    structure = Structure.from_questionnaire(load_builtin("sipas-2017"))
    items = [i for e in structure.elements for i in e.criteria]
    data = {i: counts(s, n) for i, (s, n) in zip(items, cells, strict=True)}
    missing: Missing = "renormalise" if renormalise else "null"
    nested = compute_indices(structure, data, missing)
    coefs = coefficients(structure, [i for i in items if data[i].n_valid > 0], missing)
    for e in structure.elements:
        c = coefs.elements[e.id]
        value = nested.elements[e.id]
        assert (c is None) == (value is None)
        if c is not None and value is not None:
            assert composite_value(c, data) == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert (coefs.overall is None) == (nested.overall is None)
    if coefs.overall is not None and nested.overall is not None:
        assert composite_value(coefs.overall, data) == pytest.approx(nested.overall, abs=1e-9)


def test_designated_item_coefficients() -> None:
    structure = Structure((ElementSpec("E", 1.0, ("a", "b"), ElementRule.designated_item, "b"),))
    data = {"a": counts(1, 2), "b": counts(3, 4)}
    assert compute_indices(structure, data).elements == {"E": 75.0}
    assert coefficients(structure, ["a", "b"]).elements == {"E": {"b": 1.0}}
    assert coefficients(structure, ["a"]).elements == {"E": None}


# ---- 2.4 / 2.5 perception and expectation ------------------------------------------------------


def test_perception_with_positive_set() -> None:
    # "asked to pay beyond the official fees": 2 yes, 18 no, positive "no" -> 18/20 = 90
    cell = ItemCounts(20, 0, {"yes": 2, "no": 18})
    assert perception_index(cell, ("no",)) == 90.0


def test_choice_without_positive_set_reports_each_option() -> None:
    # information channel: 5 / 3 / 2 of 10 -> 50 / 30 / 20, summing to 100
    cell = ItemCounts(10, 0, {"post": 5, "online": 3, "office": 2})
    assert option_shares(cell) == {"post": 50.0, "online": 30.0, "office": 20.0}
    assert option_shares(ItemCounts(0, 0)) is None


def test_expectation_multiple_choice_may_sum_past_100() -> None:
    # 10 respondents answered; 6, 5 and 3 chose the options -> 60 + 50 + 30 = 140
    cell = ItemCounts(10, 0, {"simplify": 6, "attitude": 5, "time": 3})
    shares = option_shares(cell)
    assert shares == {"simplify": 60.0, "attitude": 50.0, "time": 30.0}
    assert sum(shares.values()) == 140.0


def test_expectation_intensity_default_rat_nhieu() -> None:
    cell = ItemCounts(10, 0, {"rat_nhieu": 3, "nhieu": 5, "it": 2})
    assert expectation_index(cell) == 30.0  # 3 of 10
    assert expectation_index(cell, ("rat_nhieu", "nhieu")) == 80.0  # 8 of 10
    assert expectation_index(ItemCounts(0, 0)) is None


# ---- 2.6 dossier rating ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (18, "xuat_sac"),
        (16, "xuat_sac"),
        (15, "tot"),
        (12, "tot"),
        (11, "kha"),
        (9, "kha"),
        (8, "trung_binh"),
        (6, "trung_binh"),
        (5, "yeu"),
        (0, "yeu"),
        (19, None),  # above the top band
    ],
)
def test_dossier_bands(total: int, band: str | None) -> None:
    found = band_for(total)
    assert (found.code if found else None) == band


def test_dossier_rating() -> None:
    assert dossier_total({"time": 2, "contacts": 1, "online": None, "attitude": 2}) == 5
    assert indicator_mean(15, 10) == 1.5  # 10 dossiers rated the indicator, 15 points in all
    assert indicator_mean(0, 0) is None
    # totals 18, 18, 14, 10, 3: mean = 63/5 = 12.6; bands 2 / 1 / 1 / 0 / 1
    summary = dossier_summary({18: 2, 14: 1, 10: 1, 3: 1})
    assert summary.n_dossiers == 5
    assert summary.mean_total == pytest.approx(12.6, rel=1e-15)
    assert summary.per_band == {"xuat_sac": 2, "tot": 1, "kha": 1, "trung_binh": 0, "yeu": 1}
    assert summary.outside_bands == 0
    assert dossier_summary({}).mean_total is None


# ---- 2.7 rounding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (2600 / 31, "83.87"),
        (0.125, "0.13"),  # half up (banker's rounding would give 0.12)
        (100 * 1067 / 4000, "26.68"),  # exactly 26.675: half up, although the binary is 26.6749..
        (2.5, "2.50"),
        (100.0, "100.00"),
        (0.0, "0.00"),
    ],
)
def test_display_half_up(value: float, shown: str) -> None:
    got = display(value)
    assert got is not None
    assert str(got) == shown


def test_display_null() -> None:
    assert display(None) is None


def test_never_build_a_composite_from_rounded_parts() -> None:
    # criteria 1/8 = 12.5 and 2/3 = 66.666...: the element is (12.5 + 66.666...)/2 = 39.58333 ->
    # 39.58; from the displayed parts (12.50 + 66.67)/2 = 39.585 -> 39.59.
    structure = Structure((ElementSpec("E", 1.0, ("a", "b")),))
    data = {"a": counts(1, 8), "b": counts(2, 3)}
    exact = compute_indices(structure, data)
    assert exact.elements["E"] == pytest.approx(float(Fraction(475, 12)), rel=1e-15)
    parts = [display(exact.criteria["a"]), display(exact.criteria["b"])]
    assert parts == [Decimal("12.50"), Decimal("66.67")]
    a, b = parts
    assert a is not None
    assert b is not None
    from_rounded = (a + b) / 2
    assert from_rounded.quantize(Decimal("0.01"), rounding="ROUND_HALF_UP") == Decimal("39.59")
    assert display(exact.elements["E"]) == Decimal("39.58")

    # The API-facing path (coefficients -> estimate -> present) uses the full-precision parts.
    coefs = coefficients(structure, ["a", "b"]).elements["E"]
    shown = present(composite_estimate(coefs, data, {}, n_respondents=40))
    assert shown.value == Decimal("39.58")


# ---- 2.8 aggregation above one unit ------------------------------------------------------------


def test_pooled_and_unit_mean_differ() -> None:
    # unit A: 9 of 10 = 90; unit B: 10 of 40 = 25.
    # unit_mean = (90 + 25)/2 = 57.5; pooled = (9 + 10)/(10 + 40) = 19/50 = 38.
    a, b = counts(9, 10), counts(10, 40)
    assert unit_mean([criterion_index(a), criterion_index(b)]) == 57.5
    assert criterion_index(pooled([a, b])) == 38.0
    assert unit_mean([90.0, None, 25.0]) == 57.5  # a null unit is ignored
    assert unit_mean([None]) is None


def test_pooled_sums_levels() -> None:
    merged = pooled([ItemCounts(3, 2, {"4": 2, "3": 1}), ItemCounts(2, 1, {"5": 1, "3": 1})])
    assert merged == ItemCounts(5, 3, {"4": 2, "3": 2, "5": 1})


# ---- 2.9 weights -------------------------------------------------------------------------------


def test_weighted_counts_two_strata() -> None:
    # Stratum A: N_h = 100 dossiers, n_h = 10 responses, 8 of 10 satisfied -> w = 10.
    # Stratum B: N_h = 300 dossiers, n_h = 20 responses, 10 of 20 satisfied -> w = 15.
    # Weighted S = 10·8 + 15·10 = 230, weighted N = 10·10 + 15·20 = 400 -> 57.5
    # (unweighted it would be 18/30 = 60).
    w = {"A": stratum_weight(100, 10), "B": stratum_weight(300, 20)}
    assert w == {"A": 10.0, "B": 15.0}
    total = weighted({"A": counts(8, 10), "B": counts(10, 20)}, w)
    assert (total.n_positive, total.n_valid) == (230.0, 400.0)
    assert criterion_index(total) == 57.5
    assert criterion_index(pooled([counts(8, 10), counts(10, 20)])) == 60.0
    with pytest.raises(ValueError, match="n_h > 0"):
        stratum_weight(100, 0)


# ---- 2.10 linearised interval of composites ----------------------------------------------------


@pytest.mark.parametrize(("s", "n"), [(8, 10), (26, 31), (1, 2), (0, 5), (37, 40)])
def test_linearised_se_of_one_item_is_the_binomial_se(s: int, n: int) -> None:
    # One item, everyone answered: z_r = (y_r − p)/n, Σ z_r² = n·p(1−p)/n² = p(1−p)/n, so
    # SE = 100·sqrt(p(1−p)/n)·sqrt(n/(n−1)). For 8/10: 100·sqrt(.016·10/9) = 40/3.
    p = s / n
    expected = 100 * math.sqrt(p * (1 - p) / n) * math.sqrt(n / (n - 1))
    rows: list[dict[str, int | None]] = [{"a": 1 if r < s else 0} for r in range(n)]
    assert composite_se({"a": 1.0}, {"a": counts(s, n)}, {}, n) == pytest.approx(expected)
    assert composite_se_from_rows({"a": 1.0}, rows) == pytest.approx(expected)


def test_linearised_se_of_eight_in_ten() -> None:
    assert composite_se({"a": 1.0}, {"a": counts(8, 10)}, {}, 10) == pytest.approx(40 / 3)


def test_linearised_se_two_items_hand_case() -> None:
    # r1 answers a = 1, b = 1; r2 answers a = 0, b = 0; c = 1/2 each; p_a = p_b = 1/2.
    # z_1 = .5·.5/2 + .5·.5/2 = .25, z_2 = −.25; Σ z² = .125; SE = 100·sqrt(2·.125) = 50.
    coefs = {"a": 0.5, "b": 0.5}
    pairs = {("a", "b"): PairCounts(n_both=2, both_positive=1, first_positive=1, second_positive=1)}
    cells = {"a": counts(1, 2), "b": counts(1, 2)}
    assert composite_se(coefs, cells, pairs, 2) == pytest.approx(50.0)
    assert composite_se(coefs, cells, {("b", "a"): pairs[("a", "b")]}, 2) == pytest.approx(50.0)
    assert composite_se_from_rows(coefs, [{"a": 1, "b": 1}, {"a": 0, "b": 0}]) == pytest.approx(50)
    assert composite_se(coefs, cells, pairs, 1) is None


def sufficient_statistics(
    items: Sequence[str], rows: Sequence[Mapping[str, int | None]], weights: Sequence[float]
) -> tuple[dict[str, ItemCounts], dict[tuple[str, str], PairCounts]]:
    """What the SQL layer computes: Σ w per item, Σ w² per pair (diagonal included)."""
    cells = {
        i: ItemCounts(
            math.fsum(w for w, r in zip(weights, rows, strict=True) if r.get(i) is not None),
            math.fsum(w for w, r in zip(weights, rows, strict=True) if r.get(i) == 1),
        )
        for i in items
    }
    pairs: dict[tuple[str, str], PairCounts] = {}
    for a, i in enumerate(items):
        for j in items[a:]:
            both = [
                (w * w, r[i], r[j])
                for w, r in zip(weights, rows, strict=True)
                if r.get(i) is not None and r.get(j) is not None
            ]
            pairs[(i, j)] = PairCounts(
                math.fsum(w2 for w2, _, _ in both),
                math.fsum(w2 for w2, yi, yj in both if yi == 1 and yj == 1),
                math.fsum(w2 for w2, yi, _ in both if yi == 1),
                math.fsum(w2 for w2, _, yj in both if yj == 1),
            )
    return cells, pairs


def assert_same_se(got: float, reference: float) -> None:
    """Equal to 1e-9, compared as variances (points²): where the true SE is 0 (e.g. two items
    whose answers always sum to 1) both computations leave rounding noise of order 1e-17 in the
    variance, which the square root blows up to 1e-7 in the SE."""
    assert math.isclose(got**2, reference**2, rel_tol=1e-9, abs_tol=1e-9)
    if reference > 1e-3:
        assert math.isclose(got, reference, rel_tol=1e-9)


ITEMS = ("a", "b", "c", "d")
answer = st.sampled_from([0, 1, None])
row_strategy = st.fixed_dictionaries(dict.fromkeys(ITEMS, answer))


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(row_strategy, min_size=2, max_size=40),
    raw_coefs=st.fixed_dictionaries({i: st.floats(0.0, 1.0) for i in ITEMS}),
)
def test_sufficient_statistics_se_equals_row_level_se(
    rows: list[dict[str, int | None]], raw_coefs: dict[str, float]
) -> None:
    answered = [i for i in ITEMS if any(r[i] is not None for r in rows)]
    coefs = {i: raw_coefs[i] for i in answered}
    cells, pairs = sufficient_statistics(ITEMS, rows, [1.0] * len(rows))
    off_diagonal = {k: v for k, v in pairs.items() if k[0] != k[1]}  # diagonal derived
    reference = composite_se_from_rows(coefs, rows)
    got = composite_se(coefs, cells, off_diagonal, len(rows))
    assert reference is not None
    assert got is not None
    assert_same_se(got, reference)


@settings(max_examples=100, deadline=None)
@given(
    data=st.lists(st.tuples(row_strategy, st.floats(0.5, 20.0)), min_size=2, max_size=40),
    raw_coefs=st.fixed_dictionaries({i: st.floats(0.0, 1.0) for i in ITEMS}),
)
def test_weighted_sufficient_statistics_se_equals_row_level_se(
    data: list[tuple[dict[str, int | None], float]], raw_coefs: dict[str, float]
) -> None:
    rows = [r for r, _ in data]
    weights = [w for _, w in data]
    coefs = {i: raw_coefs[i] for i in ITEMS if any(r[i] is not None for r in rows)}
    cells, pairs = sufficient_statistics(ITEMS, rows, weights)
    reference = composite_se_from_rows(coefs, rows, weights)
    got = composite_se(coefs, cells, pairs, len(rows))
    assert reference is not None
    assert got is not None
    assert_same_se(got, reference)


@pytest.mark.parametrize(
    ("value", "se", "expected"),
    [
        (80.0, 5.0, (70.20018, 89.79982)),  # 80 ± 1.959964·5 = 80 ± 9.79982
        (98.0, 2.0, (94.080072, 100.0)),  # 98 − 3.919928; 98 + 3.919928 clipped to 100
        (1.0, 1.0, (0.0, 2.959964)),  # 1 − 1.959964 clipped to 0
    ],
)
def test_composite_interval(value: float, se: float, expected: tuple[float, float]) -> None:
    assert composite_interval(value, se) == pytest.approx(expected, rel=0, abs=1e-9)


# One z for every interval (2.10): 1.959964, never 1.96. The bounds below are worked out with
# that z by hand; the same computation with 1.96 differs by more than the tolerance.
Z = 1.959964


@pytest.mark.parametrize(("s", "n"), [(8, 10), (26, 31), (1, 1), (0, 4), (15, 40)])
def test_wilson_uses_the_one_z(s: int, n: int) -> None:
    got = wilson_interval(s, n)
    assert got is not None
    low, high = wilson_by_quadratic(s, n, Z)
    assert got == pytest.approx((low, high), rel=0, abs=1e-9)
    rounded = wilson_by_quadratic(s, n, 1.96)
    assert abs(got[1] - rounded[1]) + abs(got[0] - rounded[0]) > 1e-7


@pytest.mark.parametrize(
    ("value", "se"),
    [(80.0, 5.0), (50.0, 10.0), (2600 / 31, 6.6)],
)
def test_composite_interval_uses_the_one_z(value: float, se: float) -> None:
    low, high = composite_interval(value, se)
    half = Fraction(Z) * Fraction(se)  # exact product of the two binary floats
    assert low == pytest.approx(float(Fraction(value) - half), rel=0, abs=1e-12)
    assert high == pytest.approx(float(Fraction(value) + half), rel=0, abs=1e-12)
    assert abs(low - (value - 1.96 * se)) > 1e-6


# ---- 2.10 a composite's n runs over every respondent of the cell -------------------------------


@pytest.mark.parametrize("silent", [0, 1, 2, 5, 30])
def test_composite_n_counts_respondents_who_answered_none_of_its_items(silent: int) -> None:
    # r1 answers a = 1, b = 1; r2 answers a = 0, b = 0; `silent` more respondents answered
    # neither. c = 1/2 each, p_a = p_b = 1/2, n_a = n_b = 2: z_1 = 1/4, z_2 = −1/4, z_r = 0 for
    # the silent ones, so Σ z² = 1/8 and n = 2 + silent:
    # SE = 100·sqrt(n/(n−1) · 1/8), e.g. 50 for n = 2, 100·sqrt(3/16) = 43.30 for n = 3.
    n = 2 + silent
    variance = Fraction(n, n - 1) * Fraction(1, 8)
    expected = 100 * math.sqrt(variance)
    coefs = {"a": 0.5, "b": 0.5}
    cells = {"a": counts(1, 2), "b": counts(1, 2)}
    pairs = {("a", "b"): PairCounts(n_both=2, both_positive=1, first_positive=1, second_positive=1)}
    assert composite_se(coefs, cells, pairs, n) == pytest.approx(expected, rel=1e-12)
    rows: list[dict[str, int | None]] = [{"a": 1, "b": 1}, {"a": 0, "b": 0}]
    rows += [{"a": None, "b": None} for _ in range(silent)]
    assert composite_se_from_rows(coefs, rows) == pytest.approx(expected, rel=1e-12)
    e = composite_estimate(coefs, cells, pairs, n)
    assert e.n_respondents == n  # the composite's reported n
    assert e.value == pytest.approx(50.0)
    assert e.interval is not None
    half = Z * expected
    clipped = (max(0.0, 50 - half), min(100.0, 50 + half))
    assert e.interval == pytest.approx(clipped, rel=0, abs=1e-9)


def test_composite_estimate_null_and_criterion_estimate() -> None:
    assert composite_estimate(None, {}, {}, 100).value is None
    e = criterion_estimate(counts(8, 10), n_respondents=10)
    assert e.value == 80.0
    assert e.interval == wilson_interval(8, 10)
    assert (e.low_reliability, e.suppressed) == (True, False)


# ---- 2.11 small cells --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "low_reliability", "suppressed"),
    [(0, True, True), (4, True, True), (5, True, False), (29, True, False), (30, False, False)],
)
def test_small_cell_flags(n: int, low_reliability: bool, suppressed: bool) -> None:
    assert small_cell_flags(n) == (low_reliability, suppressed)
    e = publish(estimate(75.0, (50.0, 90.0), n))
    assert e.n_respondents == n  # the count is kept
    assert (e.value is None) == suppressed
    assert (e.interval is None) == suppressed


def test_small_cell_thresholds_are_configurable() -> None:
    t = Thresholds(low_reliability_below=50, suppress_below=10)
    assert small_cell_flags(9, t) == (True, True)
    assert small_cell_flags(10, t) == (True, False)
    assert small_cell_flags(50, t) == (False, False)


def test_present_suppressed_keeps_count_and_flags() -> None:
    shown = present(estimate(2600 / 31, (66.3, 92.9), 4))
    assert (shown.value, shown.low, shown.high) == (None, None, None)
    assert (shown.n_respondents, shown.low_reliability, shown.suppressed) == (4, True, True)
    shown = present(estimate(2600 / 31, (66.3, 92.9), 31))
    assert shown.value == Decimal("83.87")
    assert (shown.low, shown.high) == (Decimal("66.30"), Decimal("92.90"))


# ---- 2.12 ranking ------------------------------------------------------------------------------


def test_ranking_ties_share_a_rank() -> None:
    values: dict[str, float | None] = {"a": 80.0, "b": 90.0, "e": None, "c": 80.0, "d": 70.0}
    got = [(r.unit, r.rank) for r in rank(values)]
    assert got == [("b", 1), ("a", 2), ("c", 2), ("d", 4), ("e", None)]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # 83.866 and 83.874 both publish as 83.87: they share rank 1 (the larger listed first)
        ({"x": 83.866, "y": 83.874}, [("y", 1), ("x", 1)]),
        # 26.675 publishes as 26.68 (half up) like 26.684; 26.674 publishes as 26.67
        ({"a": 26.674, "b": 26.675, "c": 26.684}, [("c", 1), ("b", 1), ("a", 3)]),
        # 90.004 → 90.00 and 89.995 → 90.00 (half up): a tie; 89.994 → 89.99 ranks 3
        (
            {"p": 89.994, "q": 90.004, "r": 89.995, "s": None},
            [("q", 1), ("r", 1), ("p", 3), ("s", None)],
        ),
        # 1, 2, 2, 4 with published ties; nulls unranked at the end in input order
        (
            {"n1": None, "a": 70.001, "b": 80.0, "c": 69.996, "d": 60.0, "n2": None},
            [("b", 1), ("a", 2), ("c", 2), ("d", 4), ("n1", None), ("n2", None)],
        ),
        ({"only": None}, [("only", None)]),
        ({}, []),
    ],
)
def test_ranking_on_published_values(
    values: dict[str, float | None], expected: list[tuple[str, int | None]]
) -> None:
    # Every tie above is a tie of the 2-decimal half-up figures, checked independently here.
    def published(v: float) -> Decimal:
        return Decimal(repr(v)).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")

    got = [(r.unit, r.rank) for r in rank(values)]
    assert got == expected
    by_rank: dict[int, set[Decimal]] = {}
    for unit, r in got:
        v = values[unit]
        if r is not None and v is not None:
            by_rank.setdefault(r, set()).add(published(v))
    assert all(len(shown) == 1 for shown in by_rank.values())  # one figure per rank
    assert len({min(s) for s in by_rank.values()}) == len(by_rank)  # one rank per figure


def test_ranking_marks_overlapping_neighbours() -> None:
    values: dict[str, float | None] = {"a": 90.0, "b": 82.0, "c": 65.0, "d": 50.0, "e": None}
    intervals: dict[str, tuple[float, float] | None] = {
        "a": (85.0, 95.0),
        "b": (78.0, 86.0),  # overlaps a (85 <= 86)
        "c": (60.0, 70.0),  # clear of b (70 < 78)
        "d": None,  # no interval: unknown
        "e": None,
    }
    got = {r.unit: r for r in rank(values, intervals)}
    assert got["a"].distinguishable_from_next is False
    assert got["a"].not_distinguishable_from == ("b",)
    assert got["b"].distinguishable_from_next is True
    assert got["b"].not_distinguishable_from == ("a",)
    assert got["c"].distinguishable_from_next is None
    assert got["c"].not_distinguishable_from == ()
    assert got["d"].distinguishable_from_next is None  # last ranked unit
    assert got["e"].rank is None


def test_ranking_touching_intervals_overlap() -> None:
    got = rank({"a": 80.0, "b": 70.0}, {"a": (75.0, 85.0), "b": (65.0, 75.0)})
    assert got[0].distinguishable_from_next is False


# ---- 2.13 change over time ---------------------------------------------------------------------


def test_change_with_merged_and_renamed_units() -> None:
    # Baseline: A 9/10 and B 10/40 merged into C -> pooled 19/50 = 38 (not the unit mean 57.5);
    # D 30/40 = 75 renamed E; F 8/10 = 80 unchanged.
    successors = {"A": "C", "B": "C", "D": "E"}
    base_counts = {
        "A": {"q": counts(9, 10)},
        "B": {"q": counts(10, 40)},
        "D": {"q": counts(30, 40)},
        "F": {"q": counts(8, 10)},
    }
    merged = merge_baseline(base_counts, successors)
    assert merged == {
        "C": {"q": counts(19, 50)},
        "E": {"q": counts(30, 40)},
        "F": {"q": counts(8, 10)},
    }
    baseline = rank({u: criterion_index(c["q"]) for u, c in merged.items()})
    current = rank({"C": 50.0, "E": 70.0, "F": 60.0})
    # baseline ranks F 1 (80), E 2 (75), C 3 (38); current E 1 (70), F 2 (60), C 3 (50)
    got = changes(current, baseline)
    assert got["C"].points == pytest.approx(12.0)  # 50 − 38
    assert got["E"].points == pytest.approx(-5.0)  # 70 − 75
    assert got["F"].points == pytest.approx(-20.0)  # 60 − 80
    assert (got["C"].rank_change, got["E"].rank_change, got["F"].rank_change) == (0, 1, -1)


def test_change_without_baseline() -> None:
    got = changes(rank({"N": 70.0}), rank({"M": 60.0}))
    assert (got["N"].points, got["N"].rank_change) == (None, None)


def test_successor_chains_and_cycles() -> None:
    assert successor_of("A", {"A": "B", "B": "C"}) == "C"
    assert successor_of("X", {"A": "B"}) == "X"
    with pytest.raises(ValueError, match="cycle"):
        successor_of("A", {"A": "B", "B": "A"})
