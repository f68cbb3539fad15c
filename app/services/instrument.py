"""Questionnaire versions as data: the instrument model, its checks and the built-in instruments.

Pure code, no database: a `Questionnaire` is what the `questionnaires.definition` column holds
(`model_dump(mode="json")`), and every rule the index needs (item → element → pillar, weights,
positive sets, small-cell thresholds, dossier points and grade bands) is data on it.

Answer values, as submitted in one form (`validate_answers`), keyed by item id:

- `satisfaction5`: the integer 1..5; `score012`: the integer 0, 1 or 2; `integer`: an integer
  within the item's bounds. Booleans are never integers.
- `yes_no`: the string "yes" or "no"; `intensity3`: "rat_nhieu", "nhieu" or "it";
  `single_choice`: one option code (a string or an integer, exactly as the option declares it).
- `multiple_choice`: a list of 1..max_choices distinct option codes.
- `free_text`: a string of at most max_length characters; `reference`: a catalogue code
  (agency, agency level, sector or procedure), checked against the catalogue elsewhere.
- **No answer is the JSON value null** (Python `None`), accepted when the item allows it
  (`allow_no_answer`, true by default). It is an explicit answer ("the respondent saw the item
  and gave no answer") and is not a valid answer for the index (N_i excludes it). A *missing*
  key means the item was not answered at all; it is an error only for `required` items. null
  was chosen over a sentinel string so that it can never collide with an option code.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Annotated, Any, Final, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
)

from app.errors import FieldError

# ---- the model -----------------------------------------------------------------------------------

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=1000)]
Code = StrictInt | Annotated[StrictStr, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
Weight = Annotated[float, Field(allow_inf_nan=False)]
LabelSource = Literal["method", "paraphrase"]


class ItemType(StrEnum):
    satisfaction5 = "satisfaction5"
    yes_no = "yes_no"
    single_choice = "single_choice"
    multiple_choice = "multiple_choice"
    intensity3 = "intensity3"
    integer = "integer"
    free_text = "free_text"
    score012 = "score012"
    reference = "reference"


class Role(StrEnum):
    criterion = "criterion"
    perception = "perception"
    expectation = "expectation"
    respondent = "respondent"
    service = "service"
    comment = "comment"
    dossier_indicator = "dossier_indicator"


class RefKind(StrEnum):
    """The catalogue a `reference` item points into."""

    agency = "agency"
    agency_level = "agency_level"
    sector = "sector"
    procedure = "procedure"


class ElementRule(StrEnum):
    mean_of_criteria = "mean_of_criteria"
    designated_item = "designated_item"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Option(_Frozen):
    code: Code
    label_vi: Label
    label_en: Label | None = None
    points: int | None = Field(
        default=None, description="score012 only: the points this answer earns (default: code)."
    )


class Item(_Frozen):
    id: Id
    type: ItemType
    role: Role
    label_vi: Label
    label_en: Label | None = None
    label_source: LabelSource = Field(
        default="method",
        description="'paraphrase' when the wording (item and options) is not the method's own.",
    )
    required: bool = Field(default=False, description="The key must be present in every form.")
    allow_no_answer: bool = Field(default=True, description="null (no answer) is accepted.")
    element: Id | None = Field(default=None, description="Criteria only: the element measured.")
    options: tuple[Option, ...] = Field(
        default=(),
        description="Choice types: the options. Fixed scales: optional labels of the scale codes.",
    )
    positive_set: tuple[Code, ...] | None = Field(
        default=None,
        description="Answers counted as satisfied/positive; satisfaction5 defaults to 4 and 5, "
        "intensity3 to rat_nhieu.",
    )
    max_choices: int | None = None
    min_value: int | None = None
    max_value: int | None = None
    max_length: int | None = None
    ref: RefKind | None = None


class Section(_Frozen):
    id: Id
    title_vi: Label
    title_en: Label | None = None
    items: tuple[Item, ...]


class Pillar(_Frozen):
    id: Id
    label_vi: Label
    label_en: Label | None = None
    label_source: LabelSource = "method"
    weight: Weight
    elements: tuple[Id, ...]


class Element(_Frozen):
    id: Id
    label_vi: Label
    label_en: Label | None = None
    label_source: LabelSource = "method"
    pillar: Id | None = Field(default=None, description="If given, must match the pillar's list.")
    weight: Weight
    rule: ElementRule = ElementRule.mean_of_criteria
    designated_item: Id | None = None


class IndexRules(_Frozen):
    """The overall index is the weighted mean of the elements, or of the pillars."""

    overall: Literal["elements", "pillars"] = "elements"


class Thresholds(_Frozen):
    low_reliability_below: int = 30
    suppress_below: int = 5


class GradeBand(_Frozen):
    code: Id
    label_vi: Label
    label_en: Label | None = None
    min_total: int
    max_total: int


DEFAULT_BANDS: Final = (
    GradeBand(
        code="xuat_sac", label_vi="Xuất sắc", label_en="Excellent", min_total=16, max_total=18
    ),
    GradeBand(code="tot", label_vi="Tốt", label_en="Good", min_total=12, max_total=15),
    GradeBand(code="kha", label_vi="Khá", label_en="Fair", min_total=9, max_total=11),
    GradeBand(
        code="trung_binh", label_vi="Trung bình", label_en="Average", min_total=6, max_total=8
    ),
    GradeBand(code="yeu", label_vi="Yếu", label_en="Poor", min_total=0, max_total=5),
)


class DossierScoring(_Frozen):
    """Per-dossier total = sum of the indicators' option points; bands cover 0..max total."""

    bands: tuple[GradeBand, ...] = DEFAULT_BANDS


class Questionnaire(_Frozen):
    code: Id
    version: int = Field(default=1, ge=1, description="As questionnaires.version.")
    method: Label
    title_vi: Label
    title_en: Label | None = None
    sections: tuple[Section, ...]
    elements: tuple[Element, ...] = ()
    pillars: tuple[Pillar, ...] = ()
    index: IndexRules | None = IndexRules()
    thresholds: Thresholds = Thresholds()
    dossier_scoring: DossierScoring | None = None


# ---- scales and helpers ------------------------------------------------------------------------

FIXED_SCALES: Final[Mapping[ItemType, tuple[Option, ...]]] = {
    ItemType.satisfaction5: (
        Option(code=1, label_vi="Rất không hài lòng", label_en="Very dissatisfied"),
        Option(code=2, label_vi="Không hài lòng", label_en="Dissatisfied"),
        Option(code=3, label_vi="Bình thường", label_en="Neutral"),
        Option(code=4, label_vi="Hài lòng", label_en="Satisfied"),
        Option(code=5, label_vi="Rất hài lòng", label_en="Very satisfied"),
    ),
    ItemType.yes_no: (
        Option(code="yes", label_vi="Có", label_en="Yes"),
        Option(code="no", label_vi="Không", label_en="No"),
    ),
    ItemType.intensity3: (
        Option(code="rat_nhieu", label_vi="Rất nhiều", label_en="Very much"),
        Option(code="nhieu", label_vi="Nhiều", label_en="Much"),
        Option(code="it", label_vi="Ít", label_en="Little"),
    ),
    ItemType.score012: (
        Option(code=0, label_vi="0 điểm", label_en="0 points"),
        Option(code=1, label_vi="1 điểm", label_en="1 point"),
        Option(code=2, label_vi="2 điểm", label_en="2 points"),
    ),
}
DEFAULT_POSITIVE: Final[Mapping[ItemType, tuple[Code, ...]]] = {
    ItemType.satisfaction5: (4, 5),
    ItemType.intensity3: ("rat_nhieu",),
}
CHOICE_TYPES: Final = frozenset({ItemType.single_choice, ItemType.multiple_choice})
INTEGER_TYPES: Final = frozenset({ItemType.satisfaction5, ItemType.score012, ItemType.integer})
# Types a criterion may have: one answer, compared with a positive set.
SCORED_TYPES: Final = frozenset(
    {
        ItemType.satisfaction5,
        ItemType.yes_no,
        ItemType.intensity3,
        ItemType.single_choice,
        ItemType.score012,
    }
)
DEFAULT_TEXT_LENGTH: Final = 2000
WEIGHT_TOLERANCE: Final = 1e-9


def options_of(item: Item) -> tuple[Option, ...]:
    """The item's options, or the labelled codes of its fixed scale when it declares none."""
    return item.options or FIXED_SCALES.get(item.type, ())


def labelled_options(item: Item) -> tuple[Option, ...]:
    """The options a form shows for an item, each with its Vietnamese and English label: the
    item's own, or its fixed scale's; an option of a fixed scale that lacks an English label
    takes the scale's. Items without options (free text, integer, reference) have none."""
    scale = {o.code: o for o in FIXED_SCALES.get(item.type, ())}
    if not item.options:
        return tuple(scale.values())
    return tuple(
        o.model_copy(update={"label_en": scale[o.code].label_en})
        if o.label_en is None and o.code in scale
        else o
        for o in item.options
    )


def presented(q: Questionnaire) -> Questionnaire:
    """The questionnaire as a frontend renders it: every item carries its labelled options
    (`labelled_options`), the shared scales included. The stored definition is left as it is
    (a frozen version and the hash of a report's inputs never change)."""
    sections = tuple(
        section.model_copy(
            update={
                "items": tuple(
                    item.model_copy(update={"options": labelled_options(item)})
                    for item in section.items
                )
            }
        )
        for section in q.sections
    )
    return q.model_copy(update={"sections": sections})


def codes_of(item: Item) -> frozenset[Code]:
    if item.type in FIXED_SCALES:
        return frozenset(o.code for o in FIXED_SCALES[item.type])
    return frozenset(o.code for o in item.options)


def positive_set_of(item: Item) -> frozenset[Code] | None:
    """The answers that count as satisfied/positive; None: report each option's share."""
    chosen = item.positive_set if item.positive_set is not None else DEFAULT_POSITIVE.get(item.type)
    return None if chosen is None else frozenset(chosen)


def iter_items(q: Questionnaire) -> Iterator[tuple[str, Item]]:
    """Every item with its JSON pointer, in form order."""
    for si, section in enumerate(q.sections):
        for ii, item in enumerate(section.items):
            yield f"/sections/{si}/items/{ii}", item


def item_index(q: Questionnaire) -> dict[str, Item]:
    """Items by id (the first, if a broken definition repeats an id)."""
    index: dict[str, Item] = {}
    for _, item in iter_items(q):
        index.setdefault(item.id, item)
    return index


def criteria_of(q: Questionnaire, element_id: str) -> list[Item]:
    return [
        item
        for _, item in iter_items(q)
        if item.role is Role.criterion and item.element == element_id
    ]


def option_points(item: Item, code: Code) -> int:
    """Dossier points of one answer: the option's points, by default the score itself."""
    for option in item.options:
        if option.code == code and option.points is not None:
            return option.points
    return code if isinstance(code, int) else 0


def dossier_max_total(q: Questionnaire) -> int:
    return sum(
        max(option_points(item, code) for code in codes_of(item))
        for _, item in iter_items(q)
        if item.role is Role.dossier_indicator and codes_of(item)
    )


def dossier_band(q: Questionnaire, total: int) -> GradeBand | None:
    if q.dossier_scoring is None:
        return None
    for band in q.dossier_scoring.bands:
        if band.min_total <= total <= band.max_total:
            return band
    return None


def _token(key: str | int) -> str:
    """One JSON pointer reference token (RFC 6901)."""
    return str(key).replace("~", "~0").replace("/", "~1")


def _is_code(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


# ---- definition checks ---------------------------------------------------------------------------


class InvalidQuestionnaire(ValueError):
    """A definition that does not parse or does not validate; `errors` locates each problem."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        listed = "; ".join(f"{e.pointer}: {e.detail}" for e in self.errors[:5])
        super().__init__(f"invalid questionnaire ({len(self.errors)} problems): {listed}")


def _check_item(item: Item, ip: str, element_ids: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []

    def add(field: str, detail: str, code: str) -> None:
        errors.append(FieldError(f"{ip}{field}", detail, code))

    t = item.type
    seen: set[Code] = set()
    for oi, option in enumerate(item.options):
        if option.code in seen:
            add(f"/options/{oi}/code", f"duplicate option code {option.code!r}", "duplicate")
        seen.add(option.code)
        if option.points is not None and t is not ItemType.score012:
            add(f"/options/{oi}/points", "points apply to score012 items only", "not_applicable")
        if option.points is not None and option.points < 0:
            add(f"/options/{oi}/points", "points must not be negative", "out_of_range")
    if t in CHOICE_TYPES and len(item.options) < 2:
        add("/options", "a choice item needs at least two options", "too_few_options")
    elif t in FIXED_SCALES and item.options and seen != codes_of(item):
        expected = sorted(str(o.code) for o in FIXED_SCALES[t])
        add("/options", f"the options must label exactly the scale codes {expected}", "scale")
    elif t not in CHOICE_TYPES and t not in FIXED_SCALES and item.options:
        add("/options", f"{t} items take no options", "not_applicable")

    if item.positive_set is not None:
        if t not in SCORED_TYPES:
            add("/positive_set", f"{t} items take no positive set", "not_applicable")
        elif not item.positive_set:
            add("/positive_set", "the positive set is empty", "empty")
        else:
            unknown = [v for v in item.positive_set if v not in codes_of(item)]
            if unknown:
                add(
                    "/positive_set", f"not answer codes of this item: {unknown!r}", "unknown_option"
                )
            if len(set(item.positive_set)) != len(item.positive_set):
                add("/positive_set", "a value is repeated", "duplicate")

    if t is ItemType.multiple_choice:
        if item.max_choices is None:
            add("/max_choices", "a multiple-choice item needs max_choices", "missing")
        elif not 1 <= item.max_choices <= len(item.options):
            add(
                "/max_choices",
                f"must be between 1 and the {len(item.options)} options",
                "out_of_range",
            )
    elif item.max_choices is not None:
        add("/max_choices", "only multiple-choice items take max_choices", "not_applicable")

    if t is not ItemType.integer:
        for name in ("min_value", "max_value"):
            if getattr(item, name) is not None:
                add(f"/{name}", "only integer items take bounds", "not_applicable")
    elif (
        item.min_value is not None
        and item.max_value is not None
        and item.min_value > item.max_value
    ):
        add("/min_value", "min_value is above max_value", "out_of_range")

    if t is not ItemType.free_text and item.max_length is not None:
        add("/max_length", "only free-text items take max_length", "not_applicable")
    elif item.max_length is not None and item.max_length < 1:
        add("/max_length", "must be at least 1", "out_of_range")

    if t is ItemType.reference and item.ref is None:
        add("/ref", "a reference item names its catalogue", "missing")
    elif t is not ItemType.reference and item.ref is not None:
        add("/ref", "only reference items take ref", "not_applicable")

    if item.role is Role.criterion:
        if item.element is None:
            add("/element", "a criterion belongs to an element", "missing")
        elif item.element not in element_ids:
            add("/element", f"no element {item.element!r}", "unknown_element")
        if t not in SCORED_TYPES or not positive_set_of(item):
            add("/type", "a criterion needs a single-answer scale and a positive set", "not_scored")
    elif item.element is not None:
        add("/element", "only criteria belong to an element", "not_applicable")
    if item.role is Role.dossier_indicator and t is not ItemType.score012:
        add("/type", "a dossier indicator is scored 0/1/2", "mismatch")
    return errors


def _weights_sum_to_one(weights: Sequence[float]) -> bool:
    return abs(math.fsum(weights) - 1.0) <= WEIGHT_TOLERANCE


def _non_nfc(value: Any, pointer: str) -> Iterator[str]:
    if isinstance(value, str):
        if unicodedata.normalize("NFC", value) != value:
            yield pointer
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _non_nfc(sub, f"{pointer}/{_token(key)}")
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _non_nfc(sub, f"{pointer}/{i}")


def validate_questionnaire(q: Questionnaire) -> list[FieldError]:
    """Every structural problem of a definition, each located by a JSON pointer into it.

    An empty list means the version can be stored and a campaign can run on it.
    """
    errors: list[FieldError] = []

    def add(pointer: str, detail: str, code: str) -> None:
        errors.append(FieldError(pointer, detail, code))

    element_ids = {e.id for e in q.elements}
    pillar_ids = {p.id for p in q.pillars}

    section_ids: set[str] = set()
    first_at: dict[str, str] = {}
    for si, section in enumerate(q.sections):
        if section.id in section_ids:
            add(f"/sections/{si}/id", f"duplicate section id {section.id!r}", "duplicate")
        section_ids.add(section.id)
    for ip, item in iter_items(q):
        if item.id in first_at:
            add(
                f"{ip}/id",
                f"duplicate item id {item.id!r} (first at {first_at[item.id]})",
                "duplicate",
            )
        else:
            first_at[item.id] = ip
        errors.extend(_check_item(item, ip, element_ids))
    items = item_index(q)

    # Pillar membership: the pillar's list is authoritative, element.pillar must agree.
    member_of: dict[str, str] = {}
    seen_pillars: set[str] = set()
    for pi, pillar in enumerate(q.pillars):
        pp = f"/pillars/{pi}"
        if pillar.id in seen_pillars:
            add(f"{pp}/id", f"duplicate pillar id {pillar.id!r}", "duplicate")
        seen_pillars.add(pillar.id)
        if pillar.weight < 0:
            add(f"{pp}/weight", "weights must not be negative", "out_of_range")
        if not pillar.elements:
            add(f"{pp}/elements", "a pillar needs at least one element", "empty")
        for ei, element_id in enumerate(pillar.elements):
            if element_id not in element_ids:
                add(f"{pp}/elements/{ei}", f"no element {element_id!r}", "unknown_element")
            elif element_id in member_of:
                add(f"{pp}/elements/{ei}", f"{element_id!r} is in two pillars", "duplicate")
            else:
                member_of[element_id] = pillar.id

    seen_elements: set[str] = set()
    for ei, element in enumerate(q.elements):
        ep = f"/elements/{ei}"
        if element.id in seen_elements:
            add(f"{ep}/id", f"duplicate element id {element.id!r}", "duplicate")
        seen_elements.add(element.id)
        if element.weight < 0:
            add(f"{ep}/weight", "weights must not be negative", "out_of_range")
        if element.rule is ElementRule.designated_item:
            target = items.get(element.designated_item) if element.designated_item else None
            if element.designated_item is None:
                add(f"{ep}/designated_item", "the designated_item rule names an item", "missing")
            elif target is None:
                add(
                    f"{ep}/designated_item",
                    f"no item {element.designated_item!r}",
                    "unknown_item",
                )
            elif target.role is not Role.criterion or target.element != element.id:
                add(
                    f"{ep}/designated_item",
                    f"{target.id!r} is not a criterion of this element",
                    "not_in_element",
                )
        else:
            if element.designated_item is not None:
                add(f"{ep}/designated_item", "only the designated_item rule", "not_applicable")
            if not criteria_of(q, element.id):
                add(ep, f"element {element.id!r} has no criterion item", "no_criteria")
        if element.pillar is not None and element.pillar not in pillar_ids:
            add(f"{ep}/pillar", f"no pillar {element.pillar!r}", "unknown_pillar")
        elif element.pillar is not None and member_of.get(element.id) != element.pillar:
            add(f"{ep}/pillar", f"pillar {element.pillar!r} does not list it", "pillar_mismatch")
        elif q.pillars and element.id not in member_of:
            add(f"{ep}/pillar", "every element belongs to a pillar", "missing")

    if q.pillars:
        if not _weights_sum_to_one([p.weight for p in q.pillars]):
            add("/pillars", "pillar weights must sum to 1", "weights_sum")
        weights = {e.id: e.weight for e in q.elements}
        for pi, pillar in enumerate(q.pillars):
            listed = [weights[e] for e in dict.fromkeys(pillar.elements) if e in weights]
            if listed and not _weights_sum_to_one(listed):
                add(f"/pillars/{pi}/elements", "element weights must sum to 1", "weights_sum")
    elif q.elements and not _weights_sum_to_one([e.weight for e in q.elements]):
        add("/elements", "element weights must sum to 1", "weights_sum")

    if q.index is None:
        if q.elements or q.pillars:
            add("/index", "elements need index rules", "missing")
    elif q.index.overall == "pillars" and not q.pillars:
        add("/index/overall", "no pillars to average", "no_pillars")
    elif q.index.overall == "elements" and q.pillars:
        add("/index/overall", "pillars are defined but the overall ignores them", "unused_pillars")

    if q.thresholds.suppress_below < 1:
        add("/thresholds/suppress_below", "must be at least 1", "out_of_range")
    if q.thresholds.low_reliability_below <= q.thresholds.suppress_below:
        add(
            "/thresholds/low_reliability_below",
            "must be above suppress_below",
            "out_of_range",
        )

    has_indicators = any(i.role is Role.dossier_indicator for _, i in iter_items(q))
    if q.dossier_scoring is None:
        if has_indicators:
            add("/dossier_scoring", "dossier indicators need a scoring", "missing")
    elif not has_indicators:
        add("/dossier_scoring", "no dossier indicator to score", "not_applicable")
    else:
        errors.extend(_check_bands(q.dossier_scoring, dossier_max_total(q)))

    errors.extend(
        FieldError(p, "text must be Unicode NFC", "not_nfc")
        for p in _non_nfc(q.model_dump(mode="json"), "")
    )
    return errors


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


# ---- one submitted form --------------------------------------------------------------------------


NUL_DETAIL: Final = "holds a NUL character (\\u0000), which cannot be stored"


def _check_answer(
    item: Item, value: object, p: str, codes: frozenset[Code] | None = None
) -> list[FieldError]:
    t = item.type
    if codes is None:
        codes = codes_of(item)
    if value is None:
        if item.allow_no_answer:
            return []
        return [FieldError(p, "this item needs an answer", "no_answer_not_allowed")]
    if t in INTEGER_TYPES:
        if not isinstance(value, int) or isinstance(value, bool):
            return [FieldError(p, "expected an integer", "wrong_type")]
        if t is ItemType.integer:
            low, high = item.min_value, item.max_value
            if (low is not None and value < low) or (high is not None and value > high):
                return [FieldError(p, f"outside {low}..{high}", "out_of_range")]
        elif value not in codes:
            return [FieldError(p, f"outside the {t} scale", "out_of_range")]
        return []
    if t in (ItemType.yes_no, ItemType.intensity3, ItemType.single_choice):
        if not _is_code(value):
            return [FieldError(p, "expected one option code", "wrong_type")]
        if value not in codes:
            return [FieldError(p, f"{value!r} is not an option", "unknown_option")]
        return []
    if t is ItemType.multiple_choice:
        return _check_choices(item, value, p, codes)
    if t is ItemType.free_text:
        if not isinstance(value, str):
            return [FieldError(p, "expected text", "wrong_type")]
        if "\x00" in value:
            return [FieldError(p, NUL_DETAIL, "nul_character")]
        limit = item.max_length or DEFAULT_TEXT_LENGTH
        if len(value) > limit:
            return [FieldError(p, f"longer than {limit} characters", "too_long")]
        return []
    # reference: a catalogue code; whether it exists is the catalogue's business.
    if not isinstance(value, str):
        return [FieldError(p, "expected a catalogue code", "wrong_type")]
    if not value.strip():
        return [FieldError(p, "empty code; use null for no answer", "empty")]
    if "\x00" in value:
        return [FieldError(p, NUL_DETAIL, "nul_character")]
    return []


def _check_choices(item: Item, value: object, p: str, codes: frozenset[Code]) -> list[FieldError]:
    if not isinstance(value, list | tuple):
        return [FieldError(p, "expected a list of option codes", "wrong_type")]
    if not value:
        return [FieldError(p, "no option chosen; use null for no answer", "empty")]
    errors: list[FieldError] = []
    chosen: set[Code] = set()
    for i, code in enumerate(value):
        if not _is_code(code):
            errors.append(FieldError(f"{p}/{i}", "expected an option code", "wrong_type"))
        elif code not in codes:
            errors.append(FieldError(f"{p}/{i}", f"{code!r} is not an option", "unknown_option"))
        elif code in chosen:
            errors.append(FieldError(f"{p}/{i}", f"{code!r} chosen twice", "duplicate_choice"))
        else:
            chosen.add(code)
    limit = item.max_choices or len(codes)
    if len(value) > limit:
        errors.append(FieldError(p, f"at most {limit} choices", "too_many_choices"))
    return errors


# Questionnaires are frozen models: each one's item index and answer codes are worked out once
# and kept while the object lives (the entry holds it, so its id cannot be reused meanwhile).
class _Lookup(NamedTuple):
    questionnaire: Questionnaire
    items: dict[str, Item]
    codes: dict[str, frozenset[Code]]
    # For items answered with one code: every answer that passes (None when no answer may be
    # given). A value of a plain type found here needs no further check.
    accepted: dict[str, frozenset[Code | None]]
    required: tuple[str, ...]


_LOOKUPS: dict[int, _Lookup] = {}
_MAX_LOOKUPS = 256
_ONE_CODE: Final = frozenset(
    {
        ItemType.satisfaction5,
        ItemType.score012,
        ItemType.yes_no,
        ItemType.intensity3,
        ItemType.single_choice,
    }
)
# bool is a subclass of int but never a code, so the test is on the exact type.
_PLAIN: Final = (int, str, type(None))


def _lookup(q: Questionnaire) -> _Lookup:
    entry = _LOOKUPS.get(id(q))
    if entry is None or entry.questionnaire is not q:
        items = item_index(q)
        codes = {k: codes_of(i) for k, i in items.items()}
        accepted: dict[str, frozenset[Code | None]] = {
            k: codes[k] | ({None} if i.allow_no_answer else set())
            for k, i in items.items()
            if i.type in _ONE_CODE
        }
        if len(_LOOKUPS) >= _MAX_LOOKUPS:
            _LOOKUPS.clear()
        required = tuple(k for k, i in items.items() if i.required)
        entry = _LOOKUPS[id(q)] = _Lookup(q, items, codes, accepted, required)
    return entry


def validate_answers(
    q: Questionnaire, answers: Mapping[str, object], *, pointer_prefix: str = ""
) -> list[FieldError]:
    """The problems of one submitted form; pointers are `{pointer_prefix}/{item id}[/{index}]`.

    Codes: unknown_item, wrong_type, out_of_range, unknown_option, too_many_choices,
    duplicate_choice, empty, too_long, nul_character, no_answer_not_allowed, missing. null is
    "no answer" (see the module docstring); a missing key is "not answered", an error only when
    required.
    """
    _, items, codes, accepted, required = _lookup(q)
    errors: list[FieldError] = []
    for key, value in answers.items():
        ok = accepted.get(key)
        if ok is not None and type(value) in _PLAIN and value in ok:
            continue  # the common case: a valid code of a scale or a single choice
        item = items.get(key)
        if item is None:
            p = f"{pointer_prefix}/{_token(key)}"
            errors.append(FieldError(p, "no such item in this questionnaire", "unknown_item"))
        else:
            found = _check_answer(item, value, "", codes[key])
            if found:  # pointers are built only for the (rare) answers that have problems
                p = f"{pointer_prefix}/{_token(key)}"
                found = _check_answer(item, value, p, codes[key])
            errors.extend(found)
    for item_id in required:
        if item_id not in answers:
            errors.append(
                FieldError(f"{pointer_prefix}/{_token(item_id)}", "required item", "missing")
            )
    return errors


# ---- parsing and the built-ins -------------------------------------------------------------------

BUILTINS: Final = ("sipas-2017", "sipas-2023", "dossier-rating-2018")


def _loc_pointer(loc: tuple[int | str, ...]) -> str:
    return "".join(f"/{_token(part)}" for part in loc)


def parse_questionnaire(data: object) -> Questionnaire:
    """Parse and validate a definition; raise InvalidQuestionnaire with pointers otherwise."""
    try:
        q = Questionnaire.model_validate(data)
    except ValidationError as exc:
        raise InvalidQuestionnaire(
            [FieldError(_loc_pointer(e["loc"]), e["msg"], e["type"]) for e in exc.errors()]
        ) from exc
    problems = validate_questionnaire(q)
    if problems:
        raise InvalidQuestionnaire(problems)
    return q


def builtin_definition(code: str) -> dict[str, Any]:
    """The raw JSON of a built-in instrument (app/seed/questionnaires/<code>.json)."""
    if code not in BUILTINS:
        raise ValueError(f"no built-in questionnaire {code!r}; known: {', '.join(BUILTINS)}")
    path = resources.files("app") / "seed" / "questionnaires" / f"{code}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@cache
def load_builtin(code: str) -> Questionnaire:
    """A built-in instrument, parsed and validated (the model is frozen, so it is shared)."""
    q = parse_questionnaire(builtin_definition(code))
    if q.code != code:
        raise InvalidQuestionnaire([FieldError("/code", f"file {code}.json holds {q.code!r}")])
    return q
