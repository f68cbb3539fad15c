"""Questionnaires as data: the built-in instruments, definition checks and answer checks."""

from __future__ import annotations

import copy
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.instrument import (
    BUILTINS,
    InvalidQuestionnaire,
    Item,
    ItemType,
    Questionnaire,
    Role,
    builtin_definition,
    criteria_of,
    dossier_band,
    dossier_max_total,
    iter_items,
    load_builtin,
    parse_questionnaire,
    positive_set_of,
    validate_answers,
    validate_questionnaire,
)
from app.services.instrument.answers import _check_answer

Definition = dict[str, Any]


def _items(q: Questionnaire, role: Role | None = None) -> list[Item]:
    return [item for _, item in iter_items(q) if role is None or item.role is role]


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for sub in value.values():
            yield from _strings(sub)
    elif isinstance(value, list):
        for sub in value:
            yield from _strings(sub)


# ---- built-ins -----------------------------------------------------------------------------------


@pytest.mark.parametrize("code", BUILTINS)
def test_builtin_loads_and_validates_clean(code: str) -> None:
    q = load_builtin(code)
    assert q.code == code
    assert validate_questionnaire(q) == []
    # The stored form is the JSON itself: dumping and re-parsing changes nothing.
    assert parse_questionnaire(q.model_dump(mode="json")) == q


@pytest.mark.parametrize("code", BUILTINS)
def test_builtin_text_is_nfc_with_vietnamese_labels(code: str) -> None:
    raw = builtin_definition(code)
    texts = list(_strings(raw))
    assert texts
    assert [t for t in texts if unicodedata.normalize("NFC", t) != t] == []
    for item in _items(load_builtin(code)):
        assert item.label_vi.strip() == item.label_vi
        assert item.label_en, item.id


def test_unknown_builtin_is_refused() -> None:
    with pytest.raises(ValueError, match="no built-in questionnaire"):
        load_builtin("sipas-1999")


def test_sipas_2017_has_22_criteria_in_five_equal_elements() -> None:
    q = load_builtin("sipas-2017")
    criteria = _items(q, Role.criterion)
    assert len(criteria) == 22
    assert Counter(c.element for c in criteria) == {"E1": 4, "E2": 5, "E3": 6, "E4": 3, "E5": 4}
    assert [c.id for c in criteria[:2]] == ["E1.C1", "E1.C2"]
    assert criteria[-1].id == "E5.C4"
    assert {c.type for c in criteria} == {ItemType.satisfaction5}
    assert {positive_set_of(c) for c in criteria} == {frozenset({4, 5})}
    assert [(e.id, e.weight) for e in q.elements] == [(f"E{k}", 0.2) for k in range(1, 6)]
    assert q.pillars == ()
    assert q.index is not None
    assert q.index.overall == "elements"
    assert (q.thresholds.low_reliability_below, q.thresholds.suppress_below) == (30, 5)
    by_id = {c.id: c for c in criteria}
    assert by_id["E1.C1"].label_vi == "Chỗ ngồi chờ"
    assert by_id["E5.C3"].label_vi == "Tiếp nhận, xử lý tích cực"


def test_sipas_2017_form_beside_the_criteria() -> None:
    q = load_builtin("sipas-2017")
    items = {i.id: i for i in _items(q)}
    assert {i.ref for i in _items(q, Role.service)} == {
        "agency",
        "agency_level",
        "sector",
        "procedure",
    }
    assert len(_items(q, Role.respondent)) == 6
    assert positive_set_of(items["N.EXTRA_PAYMENT"]) == frozenset({"no"})
    assert positive_set_of(items["N.HARASSED"]) == frozenset({"no"})
    assert [o.code for o in items["N.TRIPS"].options] == ["1", "2", "3", "more_than_3"]
    improve = items["M.IMPROVE"]
    assert (improve.type, improve.max_choices, len(improve.options)) == (
        ItemType.multiple_choice,
        3,
        7,
    )
    assert [i.type for i in _items(q, Role.comment)] == [ItemType.free_text]


def test_sipas_2023_pillars_and_groups() -> None:
    q = load_builtin("sipas-2023")
    assert q.index is not None
    assert q.index.overall == "pillars"
    assert [(p.id, p.weight) for p in q.pillars] == [("policies", 0.5), ("services", 0.5)]
    sizes = {e.id: len(criteria_of(q, e.id)) for e in q.elements}
    policies, services = q.pillars
    assert [sizes[e] for e in policies.elements] == [2, 2, 8, 2]
    assert [sizes[e] for e in services.elements] == [4, 4, 5, 3, 3]
    assert sum(sizes[e] for e in policies.elements) == 14
    assert sum(sizes[e] for e in services.elements) == 19
    weights = {e.id: e.weight for e in q.elements}
    assert {weights[e] for e in policies.elements} == {0.25}
    assert {weights[e] for e in services.elements} == {0.2}
    expectations = _items(q, Role.expectation)
    assert len(expectations) == 10
    assert {(i.type, positive_set_of(i)) for i in expectations} == {
        (ItemType.intensity3, frozenset({"rat_nhieu"}))
    }
    perception = {i.id: i for i in _items(q, Role.perception)}
    assert positive_set_of(perception["N.HARASSMENT"]) == frozenset({"none"})
    assert positive_set_of(perception["N.UNOFFICIAL_PAYMENT"]) == frozenset({"none"})
    assert positive_set_of(perception["N.PREFERRED_CHANNEL"]) is None


def test_dossier_rating_scores_0_to_18_in_five_bands() -> None:
    q = load_builtin("dossier-rating-2018")
    indicators = _items(q, Role.dossier_indicator)
    assert len(indicators) == 9
    assert {i.type for i in indicators} == {ItemType.score012}
    assert all([o.points for o in i.options] == [2, 1, 0] for i in indicators)
    assert dossier_max_total(q) == 18
    grades = [dossier_band(q, t) for t in (18, 16, 15, 12, 11, 9, 8, 6, 5, 0)]
    assert [g.code if g else None for g in grades] == [
        "xuat_sac",
        "xuat_sac",
        "tot",
        "tot",
        "kha",
        "kha",
        "trung_binh",
        "trung_binh",
        "yeu",
        "yeu",
    ]
    assert dossier_band(q, 19) is None


# ---- broken definitions --------------------------------------------------------------------------


def _items_of(d: Definition, section: int) -> list[Definition]:
    items: list[Definition] = d["sections"][section]["items"]
    return items


def _duplicate_item(d: Definition) -> None:
    _items_of(d, 2)[1]["id"] = "E1.C1"


def _empty_element(d: Definition) -> None:
    for item in _items_of(d, 6):  # section E5: its four criteria go to E4
        item["element"] = "E4"


def _weights_0_9(d: Definition) -> None:
    d["elements"][4]["weight"] = 0.1


def _pillar_weights(d: Definition) -> None:
    d["pillars"][1]["weight"] = 0.4


def _element_weights_in_pillar(d: Definition) -> None:
    d["elements"][0]["weight"] = 0.15


def _positive_outside(d: Definition) -> None:
    _items_of(d, 7)[4]["positive_set"] = ["maybe"]  # N.HARASSED is yes/no


def _satisfaction_positive_outside(d: Definition) -> None:
    _items_of(d, 2)[0]["positive_set"] = [4, 6]


def _max_choices_too_large(d: Definition) -> None:
    _items_of(d, 8)[0]["max_choices"] = 8


def _max_choices_zero(d: Definition) -> None:
    _items_of(d, 8)[0]["max_choices"] = 0


def _designated_missing(d: Definition) -> None:
    d["elements"][1].update(rule="designated_item", designated_item="E2.C9")


def _designated_elsewhere(d: Definition) -> None:
    d["elements"][1].update(rule="designated_item", designated_item="E1.C1")


def _duplicate_option(d: Definition) -> None:
    _items_of(d, 0)[1]["options"][1]["code"] = "male"


def _unknown_element(d: Definition) -> None:
    _items_of(d, 3)[0]["element"] = "E9"


def _thresholds_inverted(d: Definition) -> None:
    d["thresholds"] = {"low_reliability_below": 5, "suppress_below": 5}


def _thresholds_zero(d: Definition) -> None:
    d["thresholds"]["suppress_below"] = 0


def _not_nfc(d: Definition) -> None:
    _items_of(d, 2)[0]["label_vi"] = unicodedata.normalize("NFD", "Chỗ ngồi chờ")


def _bands_gap(d: Definition) -> None:
    d["dossier_scoring"]["bands"][1]["min_total"] = 13  # 12 is in no band


def _indicator_not_score(d: Definition) -> None:
    _items_of(d, 0)[0].update(type="satisfaction5", options=[])


BROKEN: list[tuple[str, str, Callable[[Definition], None], str, str]] = [
    ("duplicate item id", "sipas-2017", _duplicate_item, "/sections/2/items/1/id", "duplicate"),
    ("element without items", "sipas-2017", _empty_element, "/elements/4", "no_criteria"),
    ("weights sum to 0.9", "sipas-2017", _weights_0_9, "/elements", "weights_sum"),
    ("pillar weights", "sipas-2023", _pillar_weights, "/pillars", "weights_sum"),
    (
        "weights within a pillar",
        "sipas-2023",
        _element_weights_in_pillar,
        "/pillars/0/elements",
        "weights_sum",
    ),
    (
        "positive set outside options",
        "sipas-2017",
        _positive_outside,
        "/sections/7/items/4/positive_set",
        "unknown_option",
    ),
    (
        "positive set outside the scale",
        "sipas-2017",
        _satisfaction_positive_outside,
        "/sections/2/items/0/positive_set",
        "unknown_option",
    ),
    (
        "max_choices too large",
        "sipas-2017",
        _max_choices_too_large,
        "/sections/8/items/0/max_choices",
        "out_of_range",
    ),
    (
        "max_choices zero",
        "sipas-2017",
        _max_choices_zero,
        "/sections/8/items/0/max_choices",
        "out_of_range",
    ),
    (
        "designated item missing",
        "sipas-2017",
        _designated_missing,
        "/elements/1/designated_item",
        "unknown_item",
    ),
    (
        "designated item of another element",
        "sipas-2017",
        _designated_elsewhere,
        "/elements/1/designated_item",
        "not_in_element",
    ),
    (
        "duplicate option code",
        "sipas-2017",
        _duplicate_option,
        "/sections/0/items/1/options/1/code",
        "duplicate",
    ),
    (
        "criterion of an unknown element",
        "sipas-2017",
        _unknown_element,
        "/sections/3/items/0/element",
        "unknown_element",
    ),
    (
        "suppress not below low reliability",
        "sipas-2017",
        _thresholds_inverted,
        "/thresholds/low_reliability_below",
        "out_of_range",
    ),
    (
        "suppress threshold not positive",
        "sipas-2017",
        _thresholds_zero,
        "/thresholds/suppress_below",
        "out_of_range",
    ),
    ("label not NFC", "sipas-2017", _not_nfc, "/sections/2/items/0/label_vi", "not_nfc"),
    (
        "grade bands with a gap",
        "dossier-rating-2018",
        _bands_gap,
        "/dossier_scoring/bands",
        "coverage",
    ),
    (
        "dossier indicator not scored 0/1/2",
        "dossier-rating-2018",
        _indicator_not_score,
        "/sections/0/items/0/type",
        "mismatch",
    ),
]


@pytest.mark.parametrize(
    ("code", "breaker", "pointer", "error_code"),
    [pytest.param(*case[1:], id=case[0]) for case in BROKEN],
)
def test_broken_definition_is_located(
    code: str, breaker: Callable[[Definition], None], pointer: str, error_code: str
) -> None:
    d = copy.deepcopy(builtin_definition(code))
    breaker(d)
    problems = validate_questionnaire(Questionnaire.model_validate(d))
    assert (pointer, error_code) in [(p.pointer, p.code) for p in problems]
    with pytest.raises(InvalidQuestionnaire) as raised:
        parse_questionnaire(d)
    assert pointer in [e.pointer for e in raised.value.errors]


def test_the_broken_fixtures_point_where_the_tests_think() -> None:
    q = load_builtin("sipas-2017")
    assert q.sections[2].items[1].id == "E1.C2"
    assert q.sections[6].id == "E5"
    assert q.sections[7].items[4].id == "N.HARASSED"
    assert q.sections[8].items[0].id == "M.IMPROVE"
    assert q.sections[0].items[1].id == "R.GENDER"


def test_shape_errors_carry_pointers() -> None:
    d = copy.deepcopy(builtin_definition("sipas-2017"))
    _items_of(d, 2)[0]["type"] = "stars10"
    d["surplus"] = True
    with pytest.raises(InvalidQuestionnaire) as raised:
        parse_questionnaire(d)
    pointers = {e.pointer for e in raised.value.errors}
    assert {"/sections/2/items/0/type", "/surplus"} <= pointers


def test_weights_sum_tolerance_is_tight() -> None:
    d = copy.deepcopy(builtin_definition("sipas-2017"))
    for element, weight in zip(d["elements"], [0.1, 0.3, 0.15, 0.25, 0.2], strict=True):
        element["weight"] = weight
    assert validate_questionnaire(Questionnaire.model_validate(d)) == []
    d["elements"][0]["weight"] = 0.1 + 1e-6
    problems = validate_questionnaire(Questionnaire.model_validate(d))
    assert [(p.pointer, p.code) for p in problems] == [("/elements", "weights_sum")]


# ---- answers -------------------------------------------------------------------------------------


def _valid_2017_form() -> dict[str, object]:
    return {
        "R.TYPE": "individual",
        "R.GENDER": "female",
        "S.AGENCY": "TQ.STP",
        "S.SECTOR": "tu-phap",
        "E1.C1": 5,
        "E1.C2": 4,
        "E2.C1": 3,
        "E3.C6": 1,
        "N.TRIPS": "more_than_3",
        "N.EXTRA_PAYMENT": "no",
        "N.ON_TIME": "late",
        "M.IMPROVE": ["procedures", "time", "attitude"],
        "C.COMMENT": "Cán bộ hướng dẫn nhiệt tình.",
    }


def test_valid_form_has_no_errors() -> None:
    assert validate_answers(load_builtin("sipas-2017"), _valid_2017_form()) == []


BAD_ANSWERS: list[tuple[str, str, object, str, str]] = [
    ("unknown item", "E9.C9", 4, "/E9.C9", "unknown_item"),
    ("text for a scale", "E1.C1", "5", "/E1.C1", "wrong_type"),
    ("boolean for a scale", "E1.C1", True, "/E1.C1", "wrong_type"),
    ("float for a scale", "E1.C1", 4.0, "/E1.C1", "wrong_type"),
    ("above the scale", "E1.C1", 6, "/E1.C1", "out_of_range"),
    ("below the scale", "E1.C1", 0, "/E1.C1", "out_of_range"),
    ("unknown option", "R.GENDER", "other", "/R.GENDER", "unknown_option"),
    ("yes_no with a boolean", "N.HARASSED", False, "/N.HARASSED", "wrong_type"),
    (
        "too many choices",
        "M.IMPROVE",
        ["time", "attitude", "procedures", "channels"],
        "/M.IMPROVE",
        "too_many_choices",
    ),
    (
        "unknown option in a list",
        "M.IMPROVE",
        ["time", "nothing"],
        "/M.IMPROVE/1",
        "unknown_option",
    ),
    ("the same choice twice", "M.IMPROVE", ["time", "time"], "/M.IMPROVE/1", "duplicate_choice"),
    ("choices not a list", "M.IMPROVE", "time", "/M.IMPROVE", "wrong_type"),
    ("empty choice list", "M.IMPROVE", [], "/M.IMPROVE", "empty"),
    ("comment too long", "C.COMMENT", "x" * 2001, "/C.COMMENT", "too_long"),
    ("reference not text", "S.SECTOR", 12, "/S.SECTOR", "wrong_type"),
    ("NUL in a comment", "C.COMMENT", "tốt\x00", "/C.COMMENT", "nul_character"),
    ("NUL in a reference", "S.SECTOR", "tu\x00phap", "/S.SECTOR", "nul_character"),
    ("boolean for a single choice", "N.ON_TIME", True, "/N.ON_TIME", "wrong_type"),
    ("a number for a coded option", "R.GENDER", 1, "/R.GENDER", "unknown_option"),
    ("no answer where one is needed", "S.AGENCY", None, "/S.AGENCY", "no_answer_not_allowed"),
]


@pytest.mark.parametrize(
    ("item_id", "value", "pointer", "error_code"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_ANSWERS],
)
def test_bad_answer_is_located(item_id: str, value: object, pointer: str, error_code: str) -> None:
    form = _valid_2017_form()
    form[item_id] = value
    errors = validate_answers(load_builtin("sipas-2017"), form, pointer_prefix="/answers")
    assert [(e.pointer, e.code) for e in errors] == [(f"/answers{pointer}", error_code)]


ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 8),
    st.floats(allow_nan=False, min_value=-2, max_value=8),
    st.sampled_from(["1", "5", "yes", "no", "nu", "late", "time", "", " ", "x\x00"]),
    st.text(max_size=4),
    st.lists(st.sampled_from(["time", "attitude", "procedures", 1, True]), max_size=4),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_the_fast_path_agrees_with_the_full_check(data: st.DataObject) -> None:
    """validate_answers accepts common answers from a precomputed set; for any value, its verdict
    on an item must be the full check's (bool is not an int code, 5.0 is not 5, None only where
    no answer is allowed)."""
    q = load_builtin(data.draw(st.sampled_from(BUILTINS)))
    items = {item.id: item for _, item in iter_items(q)}
    item_id = data.draw(st.sampled_from(sorted(items)))
    value = data.draw(ODD_VALUES)
    found = [
        (e.pointer, e.code)
        for e in validate_answers(q, {item_id: value})
        if e.pointer == f"/{item_id}" or e.pointer.startswith(f"/{item_id}/")
    ]
    expected = [(e.pointer, e.code) for e in _check_answer(items[item_id], value, f"/{item_id}")]
    assert found == expected


def test_missing_required_item() -> None:
    form = _valid_2017_form()
    del form["S.AGENCY"]
    errors = validate_answers(load_builtin("sipas-2017"), form)
    assert [(e.pointer, e.code) for e in errors] == [("/S.AGENCY", "missing")]


def test_no_answer_is_an_answer_distinct_from_a_missing_item() -> None:
    q = load_builtin("sipas-2017")
    criterion = next(i for i in _items(q) if i.id == "E1.C1")
    assert not criterion.required
    assert criterion.allow_no_answer
    answered_none = {**_valid_2017_form(), "E1.C1": None}
    assert validate_answers(q, answered_none) == []
    skipped = _valid_2017_form()
    del skipped["E1.C1"]
    assert validate_answers(q, skipped) == []
    # Where an answer must be given, null and absence are told apart.
    null_agency = {**_valid_2017_form(), "S.AGENCY": None}
    no_agency = {k: v for k, v in _valid_2017_form().items() if k != "S.AGENCY"}
    assert [e.code for e in validate_answers(q, null_agency)] == ["no_answer_not_allowed"]
    assert [e.code for e in validate_answers(q, no_agency)] == ["missing"]


def test_dossier_form_needs_every_indicator() -> None:
    q = load_builtin("dossier-rating-2018")
    full: dict[str, object] = {f"D{n}": 2 for n in range(1, 10)}
    assert validate_answers(q, full) == []
    partial = {**full, "D3": 3}
    del partial["D9"]
    errors = validate_answers(q, partial)
    assert sorted((e.pointer, e.code) for e in errors) == [
        ("/D3", "out_of_range"),
        ("/D9", "missing"),
    ]


def test_item_ids_with_slashes_are_escaped_in_pointers() -> None:
    errors = validate_answers(load_builtin("sipas-2023"), {"a/b~c": 1, "S.AGENCY": "X"})
    assert [(e.pointer, e.code) for e in errors] == [("/a~1b~0c", "unknown_item")]
