"""Refuse JSON bodies that hold text which is not Unicode.

JSON may spell a UTF-16 surrogate as an escape (`"\\ud800"`); Python decodes a lone one into a
string that cannot be encoded again, so it would fail later, where the data is hashed, stored or
echoed in an error, as a 500. Every route of the API depends on this check instead: the request
is refused with a 422 whose pointer names the first offending string (or key).

Only bodies that spell a surrogate escape at all are walked: a bytes search rules out the rest.
"""

from __future__ import annotations

import re

from fastapi import Request

from app.errors import FieldError, Invalid

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _token(key: str | int) -> str:
    """An RFC 6901 reference token, with surrogates shown as U+FFFD so the answer can be sent."""
    text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in str(key))
    return text.replace("~", "~0").replace("/", "~1")


def first_lone_surrogate(value: object, path: tuple[str | int, ...] = ()) -> str | None:
    """The JSON pointer of the first string or key that is not Unicode; None when all are."""
    if isinstance(value, str):
        return None if _is_unicode(value) else "".join("/" + _token(p) for p in path)
    if isinstance(value, dict):
        for key, item in value.items():
            if not _is_unicode(key):
                return "".join("/" + _token(p) for p in (*path, key))
            found = first_lone_surrogate(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = first_lone_surrogate(item, (*path, i))
            if found is not None:
                return found
    return None


async def reject_lone_surrogates(request: Request) -> None:
    if "json" not in request.headers.get("content-type", ""):
        return
    body = await request.body()
    if not _SURROGATE_ESCAPE.search(body):
        return
    try:
        data = await request.json()
    except ValueError:  # not JSON: the framework has answered that already
        return
    pointer = first_lone_surrogate(data)
    if pointer is not None:
        raise Invalid(
            "The request holds text that is not Unicode; see errors.",
            [
                FieldError(
                    "/body" + pointer,
                    "holds a lone UTF-16 surrogate escape (\\ud800 to \\udfff), which is not text",
                    "not_unicode",
                )
            ],
        )
