"""What taking, reading and reviewing forms share: the body hash that decides whether a retry is
the same form, a row's public shape, and which review states may follow which."""

from __future__ import annotations

import hashlib
import json

import orjson

from app.models.submission import Submission, SubmissionIn, SubmissionPublic, SubmissionState

# Made once: json.dumps with options builds a new encoder on every call. `encode` keeps no
# state, so the encoders are shared.
_SORTED = json.JSONEncoder(sort_keys=True, ensure_ascii=False)
_UNSORTED = json.JSONEncoder(ensure_ascii=False)
_SORT = orjson.OPT_SORT_KEYS


def sorted_json(value: object) -> str:
    """The value as JSON text with sorted keys: the stored answers' text.

    orjson writes a 600-byte form in about a seventh of the standard library's time; a value it
    refuses (an integer beyond 64 bits) is written by the standard library instead."""
    try:
        return orjson.dumps(value, option=_SORT).decode()
    except orjson.JSONEncodeError:
        return _SORTED.encode(value)


def plain_json(value: object) -> str:
    """`json.dumps(value, ensure_ascii=False)`."""
    return _UNSORTED.encode(value)


# Never changed (pydantic only reads them); sets, as model_dump's type asks.
_SKIPPED = {"submission_id", "answers"}
_SKIPPED_UNSTARTED = _SKIPPED | {"started_at"}


def _canonical(data: SubmissionIn) -> tuple[str, str]:
    """The body's hash and its answers as JSON text (what the INSERT stores).

    The hash is SHA-256 of the body's fields but its key (`submission_id`), as JSON text with
    sorted keys, a newline, and its answers the same way; `started_at` is left out when not
    sent. A newline never occurs inside either text (JSON escapes it), so two bodies hash alike
    only when they are the same. Forms stored before this spelling carry the legacy hash
    (`legacy_request_hash`); `same_body` accepts either."""
    answers = sorted_json(data.answers)
    rest = data.model_dump(
        mode="json", exclude=_SKIPPED if data.started_at is not None else _SKIPPED_UNSTARTED
    )
    text = sorted_json(rest) + "\n" + answers
    return hashlib.sha256(text.encode()).hexdigest(), answers


def request_hash(data: SubmissionIn) -> str:
    return _canonical(data)[0]


def legacy_request_hash(data: SubmissionIn) -> str:
    """The hash forms were stored with before orjson: SHA-256 of `json.dumps(body without
    submission_id (and started_at when not sent), sort_keys=True, ensure_ascii=False)`."""
    skipped = {"submission_id"} | ({"started_at"} if data.started_at is None else set())
    text = _SORTED.encode(data.model_dump(mode="json", exclude=skipped))
    return hashlib.sha256(text.encode()).hexdigest()


def same_body(stored_hash: str, body_hash: str, data: SubmissionIn) -> bool:
    """Whether a stored form's hash is this body's: in today's spelling, or, for a form stored
    before it, in the legacy one (worked out only then: a retry is rare, a mismatch rarer)."""
    return stored_hash == body_hash or stored_hash == legacy_request_hash(data)


def public(row: Submission) -> SubmissionPublic:
    values = {
        name: getattr(row, name)
        for name in SubmissionPublic.model_fields
        if name != "submission_id"
    }
    return SubmissionPublic(**values, submission_id=row.client_submission_id)


# The review states a form in each state may move to (one form, or many at once).
REVIEWABLE = {
    SubmissionState.received: {
        SubmissionState.valid,
        SubmissionState.flagged,
        SubmissionState.rejected,
    },
    SubmissionState.flagged: {SubmissionState.valid, SubmissionState.rejected},
    SubmissionState.valid: {SubmissionState.flagged, SubmissionState.rejected},
    SubmissionState.rejected: {SubmissionState.valid, SubmissionState.flagged},
}
