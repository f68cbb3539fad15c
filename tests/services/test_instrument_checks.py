"""Every check of a definition and of an answer, each on a small definition: the exact problems
(pointer, detail, code) in their order. tests/services/test_instrument.py breaks the built-ins;
these cases cover what the built-ins do not use (integer items, pillars gone wrong, rules that
do not apply to a type)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from app.services import instrument
from app.services.instrument.answers import _check_answer

Definition = dict[str, Any]
Found = list[tuple[str, str, str]]


def _base() -> Definition:
    """One criterion of one element: a definition without problems."""
    return {
        "code": "t",
        "method": "m",
        "title_vi": "T",
        "sections": [{"id": "S", "title_vi": "S", "items": [_criterion("C1", "E1")]}],
        "elements": [_element("E1", 1.0)],
    }


def _item(**fields: Any) -> Definition:
    return {"id": "X", "type": "free_text", "role": "comment", "label_vi": "X", **fields}


def _options(*codes: object) -> list[Definition]:
    return [{"code": c, "label_vi": f"o{c}"} for c in codes]


def _criterion(item_id: str, element_id: str) -> Definition:
    return _item(id=item_id, type="satisfaction5", role="criterion", element=element_id)


def _indicator(item_id: str) -> Definition:
    return _item(id=item_id, type="score012", role="dossier_indicator")


def _element(element_id: str, weight: float, **fields: Any) -> Definition:
    return {"id": element_id, "label_vi": element_id, "weight": weight, **fields}


def _pillar(pillar_id: str, weight: float, *elements: str) -> Definition:
    return {"id": pillar_id, "label_vi": pillar_id, "weight": weight, "elements": list(elements)}


def _problems(d: Definition) -> Found:
    q = instrument.Questionnaire.model_validate(d)
    return [(e.pointer, e.detail, e.code) for e in instrument.validate_questionnaire(q)]


def test_the_base_definition_has_no_problem() -> None:
    assert _problems(_base()) == []


# ---- one item, field by field ----------------------------------------------------------------

X = "/sections/0/items/1"
NOT_APPLICABLE = "not_applicable"

ITEMS: list[tuple[str, Definition, Found]] = [
    (
        "a choice item with one option",
        _item(type="single_choice", role="service", options=_options("a")),
        [(f"{X}/options", "a choice item needs at least two options", "too_few_options")],
    ),
    (
        "a scale relabelled without its 5",
        _item(type="satisfaction5", role="perception", options=_options(1, 2, 3, 4)),
        [
            (
                f"{X}/options",
                "the options must label exactly the scale codes ['1', '2', '3', '4', '5']",
                "scale",
            )
        ],
    ),
    (
        "options on free text",
        _item(options=_options("a", "b")),
        [(f"{X}/options", "free_text items take no options", NOT_APPLICABLE)],
    ),
    (
        "negative points",
        _item(
            type="score012",
            role="service",
            options=[{"code": 0, "label_vi": "a", "points": -1}, *_options(1, 2)],
        ),
        [(f"{X}/options/0/points", "points must not be negative", "out_of_range")],
    ),
    (
        "negative points on yes_no",
        _item(
            type="yes_no",
            role="service",
            options=[{"code": "yes", "label_vi": "a", "points": -1}, *_options("no")],
        ),
        [
            (f"{X}/options/0/points", "points apply to score012 items only", NOT_APPLICABLE),
            (f"{X}/options/0/points", "points must not be negative", "out_of_range"),
        ],
    ),
    (
        "a positive set on free text",
        _item(positive_set=["a"]),
        [(f"{X}/positive_set", "free_text items take no positive set", NOT_APPLICABLE)],
    ),
    (
        "an empty positive set",
        _item(type="yes_no", role="perception", positive_set=[]),
        [(f"{X}/positive_set", "the positive set is empty", "empty")],
    ),
    (
        "a repeated positive value",
        _item(type="yes_no", role="perception", positive_set=["yes", "yes"]),
        [(f"{X}/positive_set", "a value is repeated", "duplicate")],
    ),
    (
        "max_choices on a single choice",
        _item(type="single_choice", role="service", options=_options("a", "b"), max_choices=1),
        [(f"{X}/max_choices", "only multiple-choice items take max_choices", NOT_APPLICABLE)],
    ),
    (
        "a multiple choice without max_choices",
        _item(type="multiple_choice", role="service", options=_options("a", "b")),
        [(f"{X}/max_choices", "a multiple-choice item needs max_choices", "missing")],
    ),
    (
        "bounds on a scale",
        _item(type="satisfaction5", role="perception", min_value=1, max_value=5),
        [
            (f"{X}/min_value", "only integer items take bounds", NOT_APPLICABLE),
            (f"{X}/max_value", "only integer items take bounds", NOT_APPLICABLE),
        ],
    ),
    (
        "integer bounds inverted",
        _item(type="integer", role="respondent", min_value=5, max_value=1),
        [(f"{X}/min_value", "min_value is above max_value", "out_of_range")],
    ),
    (
        "max_length on an integer",
        _item(type="integer", role="respondent", max_length=10),
        [(f"{X}/max_length", "only free-text items take max_length", NOT_APPLICABLE)],
    ),
    (
        "max_length zero",
        _item(max_length=0),
        [(f"{X}/max_length", "must be at least 1", "out_of_range")],
    ),
    (
        "a reference without its catalogue",
        _item(type="reference", role="service"),
        [(f"{X}/ref", "a reference item names its catalogue", "missing")],
    ),
    (
        "ref on yes_no",
        _item(type="yes_no", role="service", ref="agency"),
        [(f"{X}/ref", "only reference items take ref", NOT_APPLICABLE)],
    ),
    (
        "a criterion without its element",
        _item(type="satisfaction5", role="criterion"),
        [(f"{X}/element", "a criterion belongs to an element", "missing")],
    ),
    (
        "a criterion on free text",
        _item(role="criterion", element="E1"),
        [(f"{X}/type", "a criterion needs a single-answer scale and a positive set", "not_scored")],
    ),
    (
        "an element on a comment",
        _item(element="E1"),
        [(f"{X}/element", "only criteria belong to an element", NOT_APPLICABLE)],
    ),
]


@pytest.mark.parametrize(("item", "found"), [pytest.param(*c[1:], id=c[0]) for c in ITEMS])
def test_an_item_check_names_the_field(item: Definition, found: Found) -> None:
    d = _base()
    d["sections"][0]["items"].append(item)
    assert _problems(d) == found


# ---- the definition, part by part --------------------------------------------------------------


def _with_pillars(d: Definition, *pillars: Definition) -> None:
    d["pillars"] = list(pillars)
    d["index"] = {"overall": "pillars"}


def _broken_pillars(d: Definition) -> None:
    _with_pillars(d, _pillar("P1", 1.0, "E1", "E9"), _pillar("P1", -0.5), _pillar("P3", 0.5, "E1"))


def _broken_elements(d: Definition) -> None:
    d["elements"] = [_element("E1", 1.0), _element("E1", -0.5)]


def _designated_without_item(d: Definition) -> None:
    d["elements"] = [_element("E1", 1.0, rule="designated_item")]


def _mean_with_designated(d: Definition) -> None:
    d["elements"] = [_element("E1", 1.0, designated_item="C1")]


def _unknown_pillar(d: Definition) -> None:
    d["elements"] = [_element("E1", 1.0, pillar="P9")]
    _with_pillars(d, _pillar("P1", 1.0, "E1"))


def _pillar_mismatch(d: Definition) -> None:
    d["sections"][0]["items"].append(_criterion("C2", "E2"))
    d["elements"] = [_element("E1", 1.0, pillar="P2"), _element("E2", 1.0)]
    _with_pillars(d, _pillar("P1", 0.5, "E1"), _pillar("P2", 0.5, "E2"))


def _element_outside_pillars(d: Definition) -> None:
    d["sections"][0]["items"].append(_criterion("C2", "E2"))
    d["elements"] = [_element("E1", 1.0), _element("E2", 1.0)]
    _with_pillars(d, _pillar("P1", 1.0, "E1"))


def _no_index(d: Definition) -> None:
    d["index"] = None


def _pillars_overall_without_pillars(d: Definition) -> None:
    d["index"] = {"overall": "pillars"}


def _pillars_unused(d: Definition) -> None:
    d["pillars"] = [_pillar("P1", 1.0, "E1")]


def _scoring_without_indicators(d: Definition) -> None:
    d["dossier_scoring"] = {}


def _indicators_without_scoring(d: Definition) -> None:
    d["sections"][0]["items"].append(_indicator("D1"))


def _bands_repeated_and_inverted(d: Definition) -> None:
    d["sections"][0]["items"].append(_indicator("D1"))
    band = {"code": "a", "label_vi": "A"}
    d["dossier_scoring"] = {
        "bands": [
            {**band, "min_total": 0, "max_total": 1},
            {**band, "min_total": 2, "max_total": 1},
        ]
    }


def _repeated_section(d: Definition) -> None:
    d["sections"].append({"id": "S", "title_vi": "S2", "items": [_item()]})


PARTS: list[tuple[str, Callable[[Definition], None], Found]] = [
    (
        "pillars: a repeated id, a negative weight, none listed, unknown and twice listed",
        _broken_pillars,
        [
            ("/pillars/0/elements/1", "no element 'E9'", "unknown_element"),
            ("/pillars/1/id", "duplicate pillar id 'P1'", "duplicate"),
            ("/pillars/1/weight", "weights must not be negative", "out_of_range"),
            ("/pillars/1/elements", "a pillar needs at least one element", "empty"),
            ("/pillars/2/elements/0", "'E1' is in two pillars", "duplicate"),
        ],
    ),
    (
        "elements: a repeated id, a negative weight",
        _broken_elements,
        [
            ("/elements/1/id", "duplicate element id 'E1'", "duplicate"),
            ("/elements/1/weight", "weights must not be negative", "out_of_range"),
            ("/elements", "element weights must sum to 1", "weights_sum"),
        ],
    ),
    (
        "the designated_item rule without an item",
        _designated_without_item,
        [("/elements/0/designated_item", "the designated_item rule names an item", "missing")],
    ),
    (
        "a designated item under the mean rule",
        _mean_with_designated,
        [("/elements/0/designated_item", "only the designated_item rule", NOT_APPLICABLE)],
    ),
    (
        "an element naming an unknown pillar",
        _unknown_pillar,
        [("/elements/0/pillar", "no pillar 'P9'", "unknown_pillar")],
    ),
    (
        "an element naming a pillar that does not list it",
        _pillar_mismatch,
        [("/elements/0/pillar", "pillar 'P2' does not list it", "pillar_mismatch")],
    ),
    (
        "an element in no pillar",
        _element_outside_pillars,
        [("/elements/1/pillar", "every element belongs to a pillar", "missing")],
    ),
    (
        "elements without index rules",
        _no_index,
        [("/index", "elements need index rules", "missing")],
    ),
    (
        "an overall of pillars without pillars",
        _pillars_overall_without_pillars,
        [("/index/overall", "no pillars to average", "no_pillars")],
    ),
    (
        "pillars the overall ignores",
        _pillars_unused,
        [("/index/overall", "pillars are defined but the overall ignores them", "unused_pillars")],
    ),
    (
        "a scoring without indicators",
        _scoring_without_indicators,
        [("/dossier_scoring", "no dossier indicator to score", NOT_APPLICABLE)],
    ),
    (
        "indicators without a scoring",
        _indicators_without_scoring,
        [("/dossier_scoring", "dossier indicators need a scoring", "missing")],
    ),
    (
        "grade bands repeated and inverted",
        _bands_repeated_and_inverted,
        [
            ("/dossier_scoring/bands/1/code", "duplicate", "duplicate"),
            ("/dossier_scoring/bands/1", "min_total above max_total", "range"),
            (
                "/dossier_scoring/bands",
                "bands must cover 0..2 without gaps or overlaps",
                "coverage",
            ),
        ],
    ),
    (
        "a repeated section id",
        _repeated_section,
        [("/sections/1/id", "duplicate section id 'S'", "duplicate")],
    ),
]


@pytest.mark.parametrize(("breaker", "found"), [pytest.param(*c[1:], id=c[0]) for c in PARTS])
def test_a_definition_check_names_the_part(
    breaker: Callable[[Definition], None], found: Found
) -> None:
    d = _base()
    breaker(d)
    assert _problems(d) == found


# ---- answers of the types the built-ins lack ---------------------------------------------------


def _answers_form() -> instrument.Questionnaire:
    d = _base()
    d["sections"][0]["items"] += [
        _item(id="N", type="integer", role="respondent", min_value=0, max_value=10),
        _item(id="U", type="integer", role="respondent", max_value=3),
        _item(id="R", type="reference", role="service", ref="sector"),
        _item(id="T", max_length=3),
    ]
    return instrument.parse_questionnaire(d)


ANSWERS: list[tuple[str, str, object, Found]] = [
    ("an integer as text", "N", "7", [("/N", "expected an integer", "wrong_type")]),
    ("a boolean for an integer", "N", True, [("/N", "expected an integer", "wrong_type")]),
    ("above the bounds", "N", 11, [("/N", "outside 0..10", "out_of_range")]),
    ("below the bounds", "N", -1, [("/N", "outside 0..10", "out_of_range")]),
    ("on the upper bound", "N", 10, []),
    ("no lower bound", "U", -100, []),
    ("above an upper bound alone", "U", 4, [("/U", "outside None..3", "out_of_range")]),
    ("a blank reference", "R", " ", [("/R", "empty code; use null for no answer", "empty")]),
    ("a reference code", "R", "tu-phap", []),
    ("text over its max_length", "T", "abcd", [("/T", "longer than 3 characters", "too_long")]),
    ("text at its max_length", "T", "abc", []),
    ("a float on a scale", "C1", 2.0, [("/C1", "expected an integer", "wrong_type")]),
]


@pytest.mark.parametrize(
    ("item_id", "value", "found"), [pytest.param(*c[1:], id=c[0]) for c in ANSWERS]
)
def test_an_answer_check_of_each_type(item_id: str, value: object, found: Found) -> None:
    errors = instrument.validate_answers(_answers_form(), {item_id: value})
    assert [(e.pointer, e.detail, e.code) for e in errors] == found


@pytest.mark.parametrize(
    "value",
    [
        ["channels"],
        ["channels", "time", "feedback"],
        ["channels", "time", "feedback", "attitude"],  # one more than M.IMPROVE takes
        ["channels", "channels"],
        ["channels", "nowhere"],
        [],
        [True],
        [1],
        [["channels"]],
        ["channels", None],
        [1.5],
        "channels",
    ],
)
def test_a_list_passed_quickly_is_one_the_full_check_passes(value: object) -> None:
    """validate_answers takes well-formed multiple choices without the full check: it must
    find exactly what the full check finds, for good lists and for each kind of bad one."""
    q = instrument.load_builtin("sipas-2017")
    item = instrument.item_index(q)["M.IMPROVE"]
    codes = frozenset(o.code for o in instrument.options_of(item))
    full = _check_answer(item, value, "/M.IMPROVE", codes)
    quick = instrument.validate_answers(q, {"M.IMPROVE": value})
    assert [(e.pointer, e.detail, e.code) for e in quick if e.code != "missing"] == [
        (e.pointer, e.detail, e.code) for e in full
    ]
    assert bool(full) == (value not in (["channels"], ["channels", "time", "feedback"]))
