"""Parsing a definition: checked (`parse_questionnaire`), the built-ins, and the one cached parse
of a stored version (`parsed`).

Parsed questionnaires are kept in the process cache `questionnaires.parsed` (app/cache.py): the
built-ins by code, and the frozen versions by row. A frozen version never changes again (the
trigger `questionnaires_frozen` refuses any change to its definition or its `frozen_at`), so the
key (row id, `frozen_at`) always names the same definition. A draft may still be replaced, and
hashing its definition to key it would cost about as much as parsing it, so a draft is parsed on
each call and never kept.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from importlib import resources
from typing import Any, Final

from pydantic import ValidationError

from app import cache as caches
from app.cache import Cache
from app.errors import FieldError
from app.models.questionnaire import Questionnaire as QuestionnaireRow
from app.services.instrument.checks import InvalidQuestionnaire, validate_questionnaire
from app.services.instrument.model import Questionnaire, pointer_token

BUILTINS: Final = ("sipas-2017", "sipas-2023", "dossier-rating-2018")

# ("builtin", code) or ("frozen", row id, frozen_at).
ParsedKey = tuple[str, str] | tuple[str, uuid.UUID, datetime]


def _weight(q: Questionnaire) -> int:
    """What a parsed questionnaire weighs: the length of its JSON (paid once, on a miss)."""
    return len(q.model_dump_json())


# The parsed questionnaires, within the budget of the cache `questionnaires.parsed`.
PARSED: Cache[ParsedKey, Questionnaire] = caches.named("questionnaires.parsed", _weight)


def _loc_pointer(loc: tuple[int | str, ...]) -> str:
    return "".join(f"/{pointer_token(part)}" for part in loc)


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


def parsed(row: QuestionnaireRow) -> Questionnaire:
    """The definition of a stored questionnaire version, parsed (it was validated when stored).

    A frozen version is parsed once a process and then served from the cache; a draft is parsed
    on every call, since its definition may still change (see the module docstring)."""
    if row.frozen_at is None:
        return Questionnaire.model_validate(row.definition)
    key: ParsedKey = ("frozen", row.id, row.frozen_at)
    q = PARSED.get(key)
    if q is None:
        q = Questionnaire.model_validate(row.definition)
        PARSED.put(key, q)
    return q


def builtin_definition(code: str) -> dict[str, Any]:
    """The raw JSON of a built-in instrument (app/seed/questionnaires/<code>.json)."""
    if code not in BUILTINS:
        raise ValueError(f"no built-in questionnaire {code!r}; known: {', '.join(BUILTINS)}")
    path = resources.files("app") / "seed" / "questionnaires" / f"{code}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def load_builtin(code: str) -> Questionnaire:
    """A built-in instrument, parsed and validated (the model is frozen, so it is shared)."""
    key: ParsedKey = ("builtin", code)
    q = PARSED.get(key)
    if q is None:
        q = parse_questionnaire(builtin_definition(code))
        if q.code != code:
            raise InvalidQuestionnaire([FieldError("/code", f"file {code}.json holds {q.code!r}")])
        PARSED.put(key, q)
    return q
