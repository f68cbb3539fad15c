"""The body hash that decides whether a retry is the same form.

Hashes are stored with each form and compared with every retry, so the text they are made from
cannot change silently between releases. Two spellings exist: today's (orjson, `reference`) and
the legacy one forms were stored with before it (the standard library's `json.dumps`,
`legacy_reference`); a stored hash in either matches its body (`same_body`)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from app.models.submission import SubmissionIn
from app.services.submissions.common import (
    _canonical,
    legacy_request_hash,
    request_hash,
    same_body,
)


def _left_out(data: SubmissionIn) -> set[str]:
    # started_at came later: a form that does not send it hashes as every form did before.
    return {"submission_id"} | ({"started_at"} if data.started_at is None else set())


def legacy_reference(data: SubmissionIn) -> str:
    canonical = data.model_dump(mode="json", exclude=_left_out(data))
    return hashlib.sha256(
        json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()


def reference(data: SubmissionIn) -> str:
    """The fields but the answers as orjson writes them with sorted keys; a newline; the
    answers likewise (integers orjson refuses are written by the standard library, compact).
    The JSON text is orjson's: it writes floats in their shortest form (1e16, where the
    standard library writes 1e+16)."""

    def text(value: object) -> bytes:
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:
            return json.dumps(value, sort_keys=True, ensure_ascii=False).encode()

    rest = data.model_dump(mode="json", exclude=_left_out(data) | {"answers"})
    return hashlib.sha256(text(rest) + b"\n" + text(data.answers)).hexdigest()


TEXT = st.text(alphabet=st.sampled_from('aăâbđeêoôơuưyÁàảãạ ~/"\\,:{}\n\t'), max_size=8)
JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)
FORMS = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(["web", "kiosk", "post_office", "one_stop", "phone"]),
        "answers": st.dictionaries(TEXT, JSON_VALUE, max_size=6),
    },
    optional={
        "submission_id": st.uuids().map(str),
        "agency_code": st.none() | TEXT,
        "sector_code": st.none() | TEXT,
        "procedure_code": st.none() | TEXT,
        "dossier_code": st.none() | TEXT,
        "invitation": st.none() | TEXT,
        "respondent_type": st.sampled_from([None, "individual", "organisation"]),
        "device_id": st.none() | TEXT,
        # within the years the model takes (app.models.timestamps), a day off each end;
        # hypothesis takes naive bounds
        "started_at": st.none()
        | st.datetimes(
            min_value=datetime(1900, 1, 2),  # noqa: DTZ001
            max_value=datetime(2200, 12, 30),  # noqa: DTZ001
        ).map(lambda d: d.isoformat() + "+07:00"),
        "received_at": st.none()
        | st.datetimes(
            min_value=datetime(1900, 1, 2),  # noqa: DTZ001
            max_value=datetime(2200, 12, 30),  # noqa: DTZ001
        ).map(lambda d: d.isoformat() + "+07:00"),
    },
)


@settings(max_examples=300, deadline=None)
@given(raw=FORMS)
def test_the_hash_is_the_one_stored_hashes_were_made_with(raw: dict[str, Any]) -> None:
    data = SubmissionIn.model_validate(raw)
    digest, answers = _canonical(data)
    assert digest == reference(data)
    assert json.loads(answers) == data.answers
    assert legacy_request_hash(data) == legacy_reference(data)
    assert same_body(digest, digest, data)
    assert same_body(legacy_reference(data), digest, data)
    assert not same_body("0" * 64, digest, data)


def test_an_integer_beyond_64_bits_is_hashed_and_stored_too() -> None:
    """orjson refuses integers beyond 64 bits; the standard library writes them instead."""
    data = SubmissionIn.model_validate({"channel": "web", "answers": {"N": 2**70, "M": [-(2**65)]}})
    digest, answers = _canonical(data)
    assert json.loads(answers) == {"N": 2**70, "M": [-(2**65)]}
    assert digest == reference(data)


def test_a_known_form_keeps_its_hash() -> None:
    """A digest worked out once and written down: a change of spelling would break retries of
    every stored form, so it must fail here first."""
    data = SubmissionIn.model_validate(
        {
            "submission_id": str(uuid.UUID(int=1)),
            "agency_code": "SỞ.NỘI VỤ",
            "channel": "web",
            "respondent_type": "individual",
            "received_at": "2026-01-02T03:04:05+07:00",
            "answers": {"E1.C1": 5, "E1.C2": None, "T": "Tiếng Việt có dấu", "M": ["a", "b"]},
        }
    )
    assert request_hash(data) == reference(data)
    assert request_hash(data) == (
        "1408510eac618fa1ad55d0991122d21f2652eca3e2f20055b63e603c8f57306e"
    )
    assert legacy_request_hash(data) == legacy_reference(data)
    assert legacy_request_hash(data) == (
        "0ece05c07d57b9d21b6b76b2b0f68590f867a9a40504cae6fa88e19a745aa0e0"
    )
