"""The body hash that decides whether a retry is the same form.

Hashes are stored with each form and compared with every retry, so the text they are made from
cannot change between releases: the reference below is the definition the stored hashes were
made with, and the fast spelling in the app must agree with it byte for byte."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.models.submission import SubmissionIn
from app.services.submissions.common import _canonical, request_hash


def reference(data: SubmissionIn) -> str:
    # started_at came later: a form that does not send it hashes as every form did before.
    left_out = {"submission_id"} | ({"started_at"} if data.started_at is None else set())
    canonical = data.model_dump(mode="json", exclude=left_out)
    return hashlib.sha256(
        json.dumps(canonical, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()


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
        "0ece05c07d57b9d21b6b76b2b0f68590f867a9a40504cae6fa88e19a745aa0e0"
    )
