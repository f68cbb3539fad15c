"""Questionnaire versions as data: the instrument model, its checks and the built-in instruments.

Pure code, no database: a `Questionnaire` is what the `questionnaires.definition` column holds.
The package is read through this module (`from app.services import instrument`,
`instrument.X`); its parts:

- `model.py`: the model (`Questionnaire`, `Item`, `Option`, ...), the fixed scales, and the
  helpers that read a definition (`iter_items`, `item_index`, `options_of`, `positive_set_of`,
  `option_points`, `presented`, ...);
- `checks.py`: every structural problem of a definition (`validate_questionnaire`);
- `answers.py`: the problems of one form's answers (`validate_answers`), and what an answer of
  each item type is;
- `parsing.py`: parsing a definition (`parse_questionnaire`), the built-ins (`load_builtin`) and
  the one cached parse of a stored version (`parsed`).
"""

from app.services.instrument.answers import (
    NUL_DETAIL,
    AnswerValidator,
    answer_validator,
    item_ids,
    validate_answers,
)
from app.services.instrument.checks import InvalidQuestionnaire, validate_questionnaire
from app.services.instrument.model import (
    CHOICE_TYPES,
    DEFAULT_BANDS,
    DEFAULT_POSITIVE,
    DEFAULT_TEXT_LENGTH,
    FIXED_SCALES,
    INTEGER_TYPES,
    SCORED_TYPES,
    Code,
    DossierScoring,
    Element,
    ElementRule,
    GradeBand,
    Id,
    IndexRules,
    Item,
    ItemType,
    Label,
    LabelSource,
    Option,
    Pillar,
    Questionnaire,
    RefKind,
    Role,
    Section,
    Thresholds,
    Weight,
    codes_of,
    criteria_of,
    dossier_band,
    dossier_max_total,
    item_index,
    iter_items,
    labelled_options,
    option_points,
    options_of,
    positive_set_of,
    presented,
)
from app.services.instrument.parsing import (
    BUILTINS,
    builtin_definition,
    load_builtin,
    parse_questionnaire,
    parsed,
    parsed_frozen,
)

__all__ = [
    "BUILTINS",
    "CHOICE_TYPES",
    "DEFAULT_BANDS",
    "DEFAULT_POSITIVE",
    "DEFAULT_TEXT_LENGTH",
    "FIXED_SCALES",
    "INTEGER_TYPES",
    "NUL_DETAIL",
    "SCORED_TYPES",
    "AnswerValidator",
    "Code",
    "DossierScoring",
    "Element",
    "ElementRule",
    "GradeBand",
    "Id",
    "IndexRules",
    "InvalidQuestionnaire",
    "Item",
    "ItemType",
    "Label",
    "LabelSource",
    "Option",
    "Pillar",
    "Questionnaire",
    "RefKind",
    "Role",
    "Section",
    "Thresholds",
    "Weight",
    "answer_validator",
    "builtin_definition",
    "codes_of",
    "criteria_of",
    "dossier_band",
    "dossier_max_total",
    "item_ids",
    "item_index",
    "iter_items",
    "labelled_options",
    "load_builtin",
    "option_points",
    "options_of",
    "parse_questionnaire",
    "parsed",
    "parsed_frozen",
    "positive_set_of",
    "presented",
    "validate_answers",
    "validate_questionnaire",
]
