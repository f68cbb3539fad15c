"""The checks of a questionnaire definition: every structural problem, located by a JSON pointer.

`validate_questionnaire` runs one check per part of the definition, in a fixed order (sections,
items, pillars, elements, weights, index rules, thresholds, dossier scoring, Unicode), so that a
definition's problems always come out in the same order. An item is checked field by field by
the checkers of `_ITEM_CHECKS`; each yields its problems as (pointer below the item, detail,
code).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from itertools import chain
from typing import Any, Final

from app.errors import FieldError
from app.services.instrument.model import (
    CHOICE_TYPES,
    FIXED_SCALES,
    SCORED_TYPES,
    Code,
    DossierScoring,
    Element,
    ElementRule,
    Item,
    ItemType,
    Option,
    Questionnaire,
    Role,
    codes_of,
    criteria_of,
    dossier_max_total,
    item_index,
    iter_items,
    pointer_token,
    positive_set_of,
)


class InvalidQuestionnaire(ValueError):
    """A definition that does not parse or does not validate; `errors` locates each problem."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        listed = "; ".join(f"{e.pointer}: {e.detail}" for e in self.errors[:5])
        super().__init__(f"invalid questionnaire ({len(self.errors)} problems): {listed}")


def validate_questionnaire(q: Questionnaire) -> list[FieldError]:
    """Every structural problem of a definition, each located by a JSON pointer into it.

    An empty list means the version can be stored and a campaign can run on it.
    """
    element_ids = frozenset(e.id for e in q.elements)
    return list(
        chain(
            _check_sections(q),
            _check_items(q, element_ids),
            _check_pillars(q, element_ids),
            _check_elements(q),
            _check_weights(q),
            _check_index_rules(q),
            _check_thresholds(q),
            _check_dossier_scoring(q),
            _check_nfc(q),
        )
    )


# ---- sections and items --------------------------------------------------------------------------

# What an item checker finds: (pointer below the item, detail, code).
Problem = tuple[str, str, str]


def _check_sections(q: Questionnaire) -> Iterator[FieldError]:
    seen: set[str] = set()
    for si, section in enumerate(q.sections):
        if section.id in seen:
            yield FieldError(
                f"/sections/{si}/id", f"duplicate section id {section.id!r}", "duplicate"
            )
        seen.add(section.id)


def _check_items(q: Questionnaire, element_ids: AbstractSet[str]) -> Iterator[FieldError]:
    first_at: dict[str, str] = {}
    for ip, item in iter_items(q):
        if item.id in first_at:
            yield FieldError(
                f"{ip}/id",
                f"duplicate item id {item.id!r} (first at {first_at[item.id]})",
                "duplicate",
            )
        else:
            first_at[item.id] = ip
        yield from _check_item(item, ip, element_ids)


def _check_item(item: Item, ip: str, element_ids: AbstractSet[str]) -> list[FieldError]:
    """The problems of one item (at pointer `ip`), field by field in a fixed order."""
    found = chain(
        chain.from_iterable(check(item) for check in _ITEM_CHECKS), _role(item, element_ids)
    )
    return [FieldError(f"{ip}{field}", detail, code) for field, detail, code in found]


def _options(item: Item) -> Iterator[Problem]:
    """Option codes are unique; points belong to score012 items; a choice item has at least two
    options, a fixed scale's options label exactly its codes, other types take none."""
    t = item.type
    seen: set[Code] = set()
    for oi, option in enumerate(item.options):
        if option.code in seen:
            yield f"/options/{oi}/code", f"duplicate option code {option.code!r}", "duplicate"
        seen.add(option.code)
        yield from _option_points(option, f"/options/{oi}/points", t)
    if t in CHOICE_TYPES and len(item.options) < 2:
        yield "/options", "a choice item needs at least two options", "too_few_options"
    elif t in FIXED_SCALES and item.options and seen != codes_of(item):
        expected = sorted(str(o.code) for o in FIXED_SCALES[t])
        yield "/options", f"the options must label exactly the scale codes {expected}", "scale"
    elif t not in CHOICE_TYPES and t not in FIXED_SCALES and item.options:
        yield "/options", f"{t} items take no options", "not_applicable"


def _option_points(option: Option, pointer: str, t: ItemType) -> Iterator[Problem]:
    if option.points is None:
        return
    if t is not ItemType.score012:
        yield pointer, "points apply to score012 items only", "not_applicable"
    if option.points < 0:
        yield pointer, "points must not be negative", "out_of_range"


def _positive_set(item: Item) -> Iterator[Problem]:
    chosen = item.positive_set
    if chosen is None:
        return
    if item.type not in SCORED_TYPES:
        yield "/positive_set", f"{item.type} items take no positive set", "not_applicable"
        return
    if not chosen:
        yield "/positive_set", "the positive set is empty", "empty"
        return
    unknown = [v for v in chosen if v not in codes_of(item)]
    if unknown:
        yield "/positive_set", f"not answer codes of this item: {unknown!r}", "unknown_option"
    if len(set(chosen)) != len(chosen):
        yield "/positive_set", "a value is repeated", "duplicate"


def _max_choices(item: Item) -> Iterator[Problem]:
    if item.type is not ItemType.multiple_choice:
        if item.max_choices is not None:
            yield "/max_choices", "only multiple-choice items take max_choices", "not_applicable"
    elif item.max_choices is None:
        yield "/max_choices", "a multiple-choice item needs max_choices", "missing"
    elif not 1 <= item.max_choices <= len(item.options):
        n = len(item.options)
        yield "/max_choices", f"must be between 1 and the {n} options", "out_of_range"


def _bounds(item: Item) -> Iterator[Problem]:
    low, high = item.min_value, item.max_value
    if item.type is not ItemType.integer:
        for name, value in (("min_value", low), ("max_value", high)):
            if value is not None:
                yield f"/{name}", "only integer items take bounds", "not_applicable"
    elif low is not None and high is not None and low > high:
        yield "/min_value", "min_value is above max_value", "out_of_range"


def _max_length(item: Item) -> Iterator[Problem]:
    if item.max_length is None:
        return
    if item.type is not ItemType.free_text:
        yield "/max_length", "only free-text items take max_length", "not_applicable"
    elif item.max_length < 1:
        yield "/max_length", "must be at least 1", "out_of_range"


def _ref(item: Item) -> Iterator[Problem]:
    if item.type is ItemType.reference and item.ref is None:
        yield "/ref", "a reference item names its catalogue", "missing"
    elif item.type is not ItemType.reference and item.ref is not None:
        yield "/ref", "only reference items take ref", "not_applicable"


def _role(item: Item, element_ids: AbstractSet[str]) -> Iterator[Problem]:
    """A criterion measures a known element on a scored scale; a dossier indicator is score012."""
    if item.role is Role.criterion:
        if item.element is None:
            yield "/element", "a criterion belongs to an element", "missing"
        elif item.element not in element_ids:
            yield "/element", f"no element {item.element!r}", "unknown_element"
        if item.type not in SCORED_TYPES or not positive_set_of(item):
            yield (
                "/type",
                "a criterion needs a single-answer scale and a positive set",
                "not_scored",
            )
    elif item.element is not None:
        yield "/element", "only criteria belong to an element", "not_applicable"
    if item.role is Role.dossier_indicator and item.type is not ItemType.score012:
        yield "/type", "a dossier indicator is scored 0/1/2", "mismatch"


# The field checks of one item, in the order their problems are reported (`_role` comes last).
_ITEM_CHECKS: Final[tuple[Callable[[Item], Iterator[Problem]], ...]] = (
    _options,
    _positive_set,
    _max_choices,
    _bounds,
    _max_length,
    _ref,
)


# ---- pillars and elements ------------------------------------------------------------------------


def _pillar_of(q: Questionnaire) -> dict[str, str]:
    """The pillar of each element. The pillars' lists are authoritative: an element's pillar is
    the first that lists it (`element.pillar` must agree; a second listing is an error)."""
    element_ids = {e.id for e in q.elements}
    member_of: dict[str, str] = {}
    for pillar in q.pillars:
        for element_id in pillar.elements:
            if element_id in element_ids:
                member_of.setdefault(element_id, pillar.id)
    return member_of


def _check_id_and_weight(
    kind: str, path: str, id_: str, weight: float, seen: set[str]
) -> Iterator[FieldError]:
    """A pillar's or element's id is not taken by an earlier one (it is added to `seen`), and
    its weight is not negative."""
    if id_ in seen:
        yield FieldError(f"{path}/id", f"duplicate {kind} id {id_!r}", "duplicate")
    seen.add(id_)
    if weight < 0:
        yield FieldError(f"{path}/weight", "weights must not be negative", "out_of_range")


def _check_pillars(q: Questionnaire, element_ids: AbstractSet[str]) -> Iterator[FieldError]:
    seen: set[str] = set()
    listed: set[str] = set()
    for pi, pillar in enumerate(q.pillars):
        pp = f"/pillars/{pi}"
        yield from _check_id_and_weight("pillar", pp, pillar.id, pillar.weight, seen)
        if not pillar.elements:
            yield FieldError(f"{pp}/elements", "a pillar needs at least one element", "empty")
        for ei, element_id in enumerate(pillar.elements):
            if element_id not in element_ids:
                detail, code = f"no element {element_id!r}", "unknown_element"
            elif element_id in listed:
                detail, code = f"{element_id!r} is in two pillars", "duplicate"
            else:
                listed.add(element_id)
                continue
            yield FieldError(f"{pp}/elements/{ei}", detail, code)


def _check_elements(q: Questionnaire) -> Iterator[FieldError]:
    items = item_index(q)
    pillar_ids = {p.id for p in q.pillars}
    member_of = _pillar_of(q)
    seen: set[str] = set()
    for ei, element in enumerate(q.elements):
        ep = f"/elements/{ei}"
        yield from _check_id_and_weight("element", ep, element.id, element.weight, seen)
        if element.rule is ElementRule.designated_item:
            yield from _check_designated_item(element, ep, items)
        else:
            yield from _check_mean_of_criteria(q, element, ep)
        yield from _check_element_pillar(q, element, ep, pillar_ids, member_of)


def _check_designated_item(
    element: Element, ep: str, items: Mapping[str, Item]
) -> Iterator[FieldError]:
    pointer = f"{ep}/designated_item"
    if element.designated_item is None:
        yield FieldError(pointer, "the designated_item rule names an item", "missing")
        return
    target = items.get(element.designated_item)
    if target is None:
        yield FieldError(pointer, f"no item {element.designated_item!r}", "unknown_item")
    elif target.role is not Role.criterion or target.element != element.id:
        yield FieldError(
            pointer, f"{target.id!r} is not a criterion of this element", "not_in_element"
        )


def _check_mean_of_criteria(q: Questionnaire, element: Element, ep: str) -> Iterator[FieldError]:
    if element.designated_item is not None:
        yield FieldError(f"{ep}/designated_item", "only the designated_item rule", "not_applicable")
    if not criteria_of(q, element.id):
        yield FieldError(ep, f"element {element.id!r} has no criterion item", "no_criteria")


def _check_element_pillar(
    q: Questionnaire,
    element: Element,
    ep: str,
    pillar_ids: AbstractSet[str],
    member_of: Mapping[str, str],
) -> Iterator[FieldError]:
    pointer = f"{ep}/pillar"
    if element.pillar is not None and element.pillar not in pillar_ids:
        yield FieldError(pointer, f"no pillar {element.pillar!r}", "unknown_pillar")
    elif element.pillar is not None and member_of.get(element.id) != element.pillar:
        yield FieldError(pointer, f"pillar {element.pillar!r} does not list it", "pillar_mismatch")
    elif q.pillars and element.id not in member_of:
        yield FieldError(pointer, "every element belongs to a pillar", "missing")


WEIGHT_TOLERANCE: Final = 1e-9
"""How far from 1 a sum of weights may fall, by float rounding, and still count as 1."""


def _weights_sum_to_one(weights: Sequence[float]) -> bool:
    return abs(math.fsum(weights) - 1.0) <= WEIGHT_TOLERANCE


def _check_weights(q: Questionnaire) -> Iterator[FieldError]:
    """Pillar weights sum to 1, and the element weights of each pillar; without pillars, the
    element weights sum to 1."""
    if not q.pillars:
        if q.elements and not _weights_sum_to_one([e.weight for e in q.elements]):
            yield FieldError("/elements", "element weights must sum to 1", "weights_sum")
        return
    if not _weights_sum_to_one([p.weight for p in q.pillars]):
        yield FieldError("/pillars", "pillar weights must sum to 1", "weights_sum")
    weights = {e.id: e.weight for e in q.elements}
    for pi, pillar in enumerate(q.pillars):
        listed = [weights[e] for e in dict.fromkeys(pillar.elements) if e in weights]
        if listed and not _weights_sum_to_one(listed):
            yield FieldError(
                f"/pillars/{pi}/elements", "element weights must sum to 1", "weights_sum"
            )


# ---- index rules, thresholds, dossier scoring, text ----------------------------------------------


def _check_index_rules(q: Questionnaire) -> Iterator[FieldError]:
    if q.index is None:
        if q.elements or q.pillars:
            yield FieldError("/index", "elements need index rules", "missing")
    elif q.index.overall == "pillars" and not q.pillars:
        yield FieldError("/index/overall", "no pillars to average", "no_pillars")
    elif q.index.overall == "elements" and q.pillars:
        yield FieldError(
            "/index/overall", "pillars are defined but the overall ignores them", "unused_pillars"
        )


def _check_thresholds(q: Questionnaire) -> Iterator[FieldError]:
    if q.thresholds.suppress_below < 1:
        yield FieldError("/thresholds/suppress_below", "must be at least 1", "out_of_range")
    if q.thresholds.low_reliability_below <= q.thresholds.suppress_below:
        yield FieldError(
            "/thresholds/low_reliability_below", "must be above suppress_below", "out_of_range"
        )


def _check_dossier_scoring(q: Questionnaire) -> Iterator[FieldError]:
    has_indicators = any(i.role is Role.dossier_indicator for _, i in iter_items(q))
    if q.dossier_scoring is None:
        if has_indicators:
            yield FieldError("/dossier_scoring", "dossier indicators need a scoring", "missing")
    elif not has_indicators:
        yield FieldError("/dossier_scoring", "no dossier indicator to score", "not_applicable")
    else:
        yield from _check_bands(q.dossier_scoring, dossier_max_total(q))


def _check_bands(scoring: DossierScoring, top: int) -> list[FieldError]:
    errors: list[FieldError] = []
    codes: set[str] = set()
    for bi, band in enumerate(scoring.bands):
        if band.code in codes:
            errors.append(FieldError(f"/dossier_scoring/bands/{bi}/code", "duplicate", "duplicate"))
        codes.add(band.code)
        if band.min_total > band.max_total:
            errors.append(
                FieldError(f"/dossier_scoring/bands/{bi}", "min_total above max_total", "range")
            )
    expected = 0
    for band in sorted(scoring.bands, key=lambda b: b.min_total):
        if band.min_total != expected:
            break
        expected = band.max_total + 1
    if expected != top + 1:
        errors.append(
            FieldError(
                "/dossier_scoring/bands",
                f"bands must cover 0..{top} without gaps or overlaps",
                "coverage",
            )
        )
    return errors


def _check_nfc(q: Questionnaire) -> Iterator[FieldError]:
    for pointer in _non_nfc(q.model_dump(mode="json"), ""):
        yield FieldError(pointer, "text must be Unicode NFC", "not_nfc")


def _non_nfc(value: Any, pointer: str) -> Iterator[str]:
    if isinstance(value, str):
        if unicodedata.normalize("NFC", value) != value:
            yield pointer
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _non_nfc(sub, f"{pointer}/{pointer_token(key)}")
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _non_nfc(sub, f"{pointer}/{i}")
