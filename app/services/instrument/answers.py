"""The checks of one submitted form's answers against its questionnaire (`validate_answers`).

Answer values, keyed by item id:

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

import functools
from collections.abc import Callable, Mapping
from typing import Final, NamedTuple, TypeGuard

from app import cache as caches
from app.cache import Cache
from app.errors import FieldError
from app.services.instrument.model import (
    DEFAULT_TEXT_LENGTH,
    Code,
    Item,
    ItemType,
    Questionnaire,
    codes_of,
    is_code,
    item_index,
    pointer_token,
)

NUL_DETAIL: Final = "holds a NUL character (\\u0000), which cannot be stored"

# A checker of one answer that is not null: (item, value, pointer, the item's codes) → problems.
AnswerCheck = Callable[[Item, object, str, frozenset[Code]], list[FieldError]]


def _check_answer(
    item: Item, value: object, p: str, codes: frozenset[Code] | None = None
) -> list[FieldError]:
    """The problems of one answer (at pointer `p`): null is judged by `allow_no_answer`, any
    other value by the checker of the item's type (`_ANSWER_CHECKS`)."""
    if value is None:
        if item.allow_no_answer:
            return []
        return [FieldError(p, "this item needs an answer", "no_answer_not_allowed")]
    return _ANSWER_CHECKS[item.type](item, value, p, codes_of(item) if codes is None else codes)


def _is_integer(value: object) -> TypeGuard[int]:
    """An integer answer (a boolean never is one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check_scale_point(
    item: Item, value: object, p: str, codes: frozenset[Code]
) -> list[FieldError]:
    """satisfaction5 and score012: an integer among the scale's codes."""
    if not _is_integer(value):
        return [FieldError(p, "expected an integer", "wrong_type")]
    if value not in codes:
        return [FieldError(p, f"outside the {item.type} scale", "out_of_range")]
    return []


def _check_integer(item: Item, value: object, p: str, codes: frozenset[Code]) -> list[FieldError]:
    """integer: within the item's bounds, when it has them."""
    if not _is_integer(value):
        return [FieldError(p, "expected an integer", "wrong_type")]
    low, high = item.min_value, item.max_value
    if (low is not None and value < low) or (high is not None and value > high):
        return [FieldError(p, f"outside {low}..{high}", "out_of_range")]
    return []


def _check_one_code(item: Item, value: object, p: str, codes: frozenset[Code]) -> list[FieldError]:
    """yes_no, intensity3, single_choice: one of the item's option codes."""
    if not is_code(value):
        return [FieldError(p, "expected one option code", "wrong_type")]
    if value not in codes:
        return [FieldError(p, f"{value!r} is not an option", "unknown_option")]
    return []


def _check_choices(item: Item, value: object, p: str, codes: frozenset[Code]) -> list[FieldError]:
    """multiple_choice: a non-empty list of distinct option codes, at most max_choices."""
    if not isinstance(value, list | tuple):
        return [FieldError(p, "expected a list of option codes", "wrong_type")]
    if not value:
        return [FieldError(p, "no option chosen; use null for no answer", "empty")]
    errors: list[FieldError] = []
    chosen: set[Code] = set()
    for i, code in enumerate(value):
        if not is_code(code):
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


def _check_text(item: Item, value: object, p: str, codes: frozenset[Code]) -> list[FieldError]:
    """free_text: a string without NUL, at most max_length characters."""
    if not isinstance(value, str):
        return [FieldError(p, "expected text", "wrong_type")]
    if "\x00" in value:
        return [FieldError(p, NUL_DETAIL, "nul_character")]
    limit = item.max_length or DEFAULT_TEXT_LENGTH
    if len(value) > limit:
        return [FieldError(p, f"longer than {limit} characters", "too_long")]
    return []


def _check_reference(item: Item, value: object, p: str, codes: frozenset[Code]) -> list[FieldError]:
    """reference: a catalogue code; whether it exists is the catalogue's business."""
    if not isinstance(value, str):
        return [FieldError(p, "expected a catalogue code", "wrong_type")]
    if not value.strip():
        return [FieldError(p, "empty code; use null for no answer", "empty")]
    if "\x00" in value:
        return [FieldError(p, NUL_DETAIL, "nul_character")]
    return []


# The checker of each item type's (non-null) answers.
_ANSWER_CHECKS: Final[Mapping[ItemType, AnswerCheck]] = {
    ItemType.satisfaction5: _check_scale_point,
    ItemType.score012: _check_scale_point,
    ItemType.integer: _check_integer,
    ItemType.yes_no: _check_one_code,
    ItemType.intensity3: _check_one_code,
    ItemType.single_choice: _check_one_code,
    ItemType.multiple_choice: _check_choices,
    ItemType.free_text: _check_text,
    ItemType.reference: _check_reference,
}


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
    # For multiple-choice items: at most how many options a list may hold.
    choice_limits: dict[str, int]
    ids: frozenset[str]  # every item's id


def _weigh(entry: _Lookup) -> int:
    """About what an entry holds: a few hundred bytes per item and per answer code."""
    return 256 * (len(entry.items) + sum(len(c) for c in entry.codes.values()))


_LOOKUPS: Cache[int, _Lookup] = caches.named("instrument.lookups", _weigh)
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
_CODE_TYPES: Final = (int, str)


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
        required = tuple(k for k, i in items.items() if i.required)
        limits = {
            k: i.max_choices or len(codes[k])
            for k, i in items.items()
            if i.type == ItemType.multiple_choice
        }
        entry = _Lookup(q, items, codes, accepted, required, limits, frozenset(items))
        _LOOKUPS.put(id(q), entry)
    return entry


def _fine_choices(value: list[object], limit: int | None, known: frozenset[Code] | None) -> bool:
    """Whether a list passes `_check_choices` as it is (a quick yes; no means "check it")."""
    if limit is None or known is None or not 0 < len(value) <= limit:
        return False
    for code in value:
        if type(code) not in _CODE_TYPES or code not in known:
            return False
    return len(set(value)) == len(value)


def validate_answers(
    q: Questionnaire, answers: Mapping[str, object], *, pointer_prefix: str = ""
) -> list[FieldError]:
    """The problems of one submitted form; pointers are `{pointer_prefix}/{item id}[/{index}]`.

    Codes: unknown_item, wrong_type, out_of_range, unknown_option, too_many_choices,
    duplicate_choice, empty, too_long, nul_character, no_answer_not_allowed, missing. null is
    "no answer" (see the module docstring); a missing key is "not answered", an error only when
    required.
    """
    return _validate(_lookup(q), answers, pointer_prefix)


def item_ids(q: Questionnaire) -> frozenset[str]:
    """The ids of the questionnaire's items (looked up once per questionnaire)."""
    return _lookup(q).ids


AnswerValidator = Callable[[Mapping[str, object], str], list[FieldError]]


def answer_validator(q: Questionnaire) -> AnswerValidator:
    """`validate_answers` of one questionnaire, its lookups found once: a batch checks its
    thousand forms with one, as `validator(answers, pointer_prefix)`."""
    return functools.partial(_validate, _lookup(q))


def _validate(
    lookup: _Lookup, answers: Mapping[str, object], pointer_prefix: str
) -> list[FieldError]:
    _, items, codes, accepted, required, limits, _ = lookup
    errors: list[FieldError] = []
    for key, value in answers.items():
        ok = accepted.get(key)
        if ok is not None and type(value) in _PLAIN and value in ok:
            continue  # the common case: a valid code of a scale or a single choice
        if type(value) is list and _fine_choices(value, limits.get(key), codes.get(key)):
            continue  # the common case of a multiple choice: distinct known options
        item = items.get(key)
        if item is None:
            p = f"{pointer_prefix}/{pointer_token(key)}"
            errors.append(FieldError(p, "no such item in this questionnaire", "unknown_item"))
        else:
            found = _check_answer(item, value, "", codes[key])
            if found:  # pointers are built only for the (rare) answers that have problems
                p = f"{pointer_prefix}/{pointer_token(key)}"
                found = _check_answer(item, value, p, codes[key])
            errors.extend(found)
    for item_id in required:
        if item_id not in answers:
            errors.append(
                FieldError(f"{pointer_prefix}/{pointer_token(item_id)}", "required item", "missing")
            )
    return errors
