"""What taking, reading and reviewing forms share: the body hash that decides whether a retry is
the same form, a row's public shape, and which review states may follow which."""

from __future__ import annotations

import hashlib
import json

from app.models.submission import Submission, SubmissionIn, SubmissionPublic, SubmissionState

# Made once: json.dumps with options builds a new encoder on every call, and a batch encodes
# thousands of values. `encode` keeps no state, so the encoders are shared.
_SORTED = json.JSONEncoder(sort_keys=True, ensure_ascii=False)
_UNSORTED = json.JSONEncoder(ensure_ascii=False)


def sorted_json(value: object) -> str:
    """`json.dumps(value, sort_keys=True, ensure_ascii=False)`: the stored answers' text."""
    return _SORTED.encode(value)


def plain_json(value: object) -> str:
    """`json.dumps(value, ensure_ascii=False)`."""
    return _UNSORTED.encode(value)


def _canonical(data: SubmissionIn) -> tuple[str, str]:
    """The body's hash and its answers as JSON text (what the INSERT stores).

    The hash is SHA-256 of `json.dumps(data.model_dump(mode="json", exclude={"submission_id"}),
    sort_keys=True, ensure_ascii=False)`: stored hashes were made so and a retry must match
    them. That text is spelled here from two parts so that the answers, the bulk of a form, are
    written out once and serve both: "agency_code" sorts before "answers", and every other
    field after it."""
    answers = _SORTED.encode(data.answers)
    # started_at came later: left out of the hash when not sent, so stored hashes still match.
    skipped = _SKIPPED if data.started_at is not None else _SKIPPED_UNSTARTED
    rest = data.model_dump(mode="json", exclude=skipped)
    text = (
        '{"agency_code": '
        + _SORTED.encode(data.agency_code)
        + ', "answers": '
        + answers
        + ", "
        + _SORTED.encode(rest)[1:]
    )
    return hashlib.sha256(text.encode()).hexdigest(), answers


# Never changed (pydantic only reads them); sets, as model_dump's type asks.
_SKIPPED = {"submission_id", "answers", "agency_code"}
_SKIPPED_UNSTARTED = _SKIPPED | {"started_at"}


def request_hash(data: SubmissionIn) -> str:
    return _canonical(data)[0]


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
