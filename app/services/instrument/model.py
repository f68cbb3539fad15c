"""The questionnaire model: what the `questionnaires.definition` column holds, and its helpers.

Pure code, no database: a `Questionnaire` is the definition (`model_dump(mode="json")`), and every
rule the index needs (item → element → pillar, weights, positive sets, small-cell thresholds,
dossier points and grade bands) is data on it. The helpers read it (items by id and by pointer,
options and their codes, positive sets, dossier points and bands); the checks of a definition are
in `checks.py`, those of a form's answers in `answers.py`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, StringConstraints

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


class _Labelled(_Frozen):
    """What a pillar and an element both start with: an id and its labels."""

    id: Id
    label_vi: Label
    label_en: Label | None = None
    label_source: LabelSource = "method"


class Pillar(_Labelled):
    weight: Weight
    elements: tuple[Id, ...]


class Element(_Labelled):
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


def pointer_token(key: str | int) -> str:
    """One JSON pointer reference token (RFC 6901)."""
    return str(key).replace("~", "~0").replace("/", "~1")


def is_code(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
