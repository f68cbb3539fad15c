"""Problems in the caller's language, and a form's every problem in one answer.

- `Accept-Language` picks Vietnamese (the default) or English for a problem's title, detail and
  field messages; the code, type and pointers never change.
- A form's type errors (the schema's) and answer errors (the questionnaire's) come together, in
  one 422 for a single form and in one result per batch item, with pointers from the body's
  root in both (`/body/...`, `/body/submissions/<i>/...`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from app import errors
from app.config import Settings
from app.errors import FieldError, negotiate_language, problem_body
from app.models.campaign import Campaign, CampaignState
from app.models.identity import Scope
from app.services import instrument
from tests.factories import TEST_DEFINITION, bearer, make_agency, make_campaign, make_client
from tests.helpers.problems import assert_problem, error_codes

GOOD = {"E1.C1": 5, "E1.C2": 4, "E2.C1": 3, "P.TRIPS": "1", "R.GENDER": "nu"}


@dataclass
class World:
    agency_code: str
    campaign: Campaign
    kiosk: dict[str, str]

    def url(self, suffix: str = "") -> str:
        return f"/api/v1/campaigns/{self.campaign.id}/submissions{suffix}"

    def form(self, **changes: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "submission_id": str(uuid.uuid4()),
            "agency_code": self.agency_code,
            "channel": "kiosk",
            "answers": dict(GOOD),
        }
        body.update(changes)
        return body


@pytest.fixture
async def world(session: AsyncSession, settings: Settings) -> World:
    agency = await make_agency(session, level="province")
    campaign = await make_campaign(session, agencies=[agency], state=CampaignState.open)
    kiosk, _ = await make_client(session, [Scope.submissions_write])
    await session.flush()
    return World(agency.code, campaign, bearer(settings, kiosk))


@pytest.fixture
async def plain(app: FastAPI, client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """The real app on the test's transaction (`client` points it there), with no
    Accept-Language header at all."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


# ---- language negotiation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "language"),
    [
        (None, "vi"),
        ("", "vi"),
        ("vi", "vi"),
        ("vi-VN,vi;q=0.9,en;q=0.8", "vi"),
        ("en", "en"),
        ("en-US,en;q=0.9", "en"),
        ("fr-FR, en;q=0.5", "en"),  # English is the only one of ours it accepts
        ("fr, de", "vi"),  # neither: the default
        ("en;q=0.4, vi;q=0.6", "vi"),
        ("vi;q=0.4, en;q=0.6", "en"),
        ("en, vi", "en"),  # equal q: the first listed
        ("vi, en", "vi"),
        ("en;q=0", "vi"),  # q = 0 means "not English"
        ("*", "vi"),
        ("en;q=abc", "vi"),  # an unreadable weight counts as 0
    ],
)
def test_language_negotiation(header: str | None, language: str) -> None:
    assert negotiate_language(header) == language


@pytest.mark.parametrize(
    ("status", "code", "detail", "vi"),
    [
        (404, "not_found", "The campaign was not found.", "Không tìm thấy đợt khảo sát."),
        (409, "campaign_locked", "A campaign that is open cannot change: dates.", None),
        (
            409,
            "transition_not_allowed",
            "A campaign that is open cannot become draft; it may become: closed.",
            "Đợt khảo sát đang ở trạng thái open không thể chuyển sang draft; có thể chuyển "
            "sang: closed.",
        ),
        (422, "invalid", "Unknown breakdown.", "Cách phân nhóm không được hỗ trợ."),
        (
            418,
            "teapot",
            "Something new.",
            "Yêu cầu không thực hiện được.",
        ),  # nothing known: still Vietnamese
    ],
)
def test_problem_details_in_vietnamese_and_english(
    status: int, code: str, detail: str, vi: str | None
) -> None:
    english = problem_body(status, code, detail, request_id=None, language="en")
    vietnamese = problem_body(status, code, detail, request_id=None, language="vi")
    assert english["detail"] == detail
    assert english["code"] == vietnamese["code"] == code
    assert english["type"] == vietnamese["type"]
    assert vietnamese["detail"] != detail
    if vi is not None:
        assert vietnamese["detail"] == vi


@pytest.mark.parametrize(
    ("error", "vi"),
    [
        (FieldError("/body/a", "Field required", "missing", {}), "Trường này là bắt buộc."),
        (
            FieldError(
                "/body/name",
                "String should have at most 64 characters",
                "string_too_long",
                {"max_length": 64},
            ),
            "Tối đa 64 ký tự.",
        ),
        (
            FieldError(
                "/body/channel",
                "Input should be 'web' or 'kiosk'",
                "enum",
                {"expected": "'web' or 'kiosk'"},
            ),
            "Phải là một trong các giá trị: 'web' or 'kiosk'.",
        ),
        (
            FieldError("/body/answers/E1.C1", "outside the satisfaction5 scale", "out_of_range"),
            None,
        ),
        (FieldError("/body/answers/X", "no such item in this questionnaire", "unknown_item"), None),
        (FieldError("/body/x", "must not be null"), "không được để trống"),
    ],
)
def test_field_messages_in_vietnamese(error: FieldError, vi: str | None) -> None:
    english = error.as_dict("en")
    vietnamese = error.as_dict("vi")
    assert english == {"pointer": error.pointer, "code": error.code, "detail": error.detail}
    assert (vietnamese["pointer"], vietnamese["code"]) == (error.pointer, error.code)
    assert vietnamese["detail"] != error.detail
    if vi is not None:
        assert vietnamese["detail"] == vi


def test_oauth_token_errors_stay_ascii_english() -> None:
    """RFC 6749 §5.2 allows only ASCII in a token error's description."""
    body = problem_body(
        401, "invalid_grant", "The username or password is wrong.", request_id=None, language="vi"
    )
    assert body["detail"] == "The username or password is wrong."
    assert body["title"] == "Unauthorized"


async def test_vietnamese_is_the_default_and_english_on_request(
    plain: httpx.AsyncClient, world: World
) -> None:
    no_token = await plain.get("/api/v1/campaigns")
    body = assert_problem(no_token, 401, "unauthorized")
    assert body["detail"] == "Cần một bearer token hợp lệ."
    assert body["title"] == "Chưa xác thực"
    assert no_token.headers["content-language"] == "vi"
    assert "Accept-Language" in no_token.headers["vary"]
    english = await plain.get("/api/v1/campaigns", headers={"Accept-Language": "en-GB"})
    body = assert_problem(english, 401, "unauthorized")
    assert body["detail"] == "A valid bearer token is required."
    assert body["title"] == "Unauthorized"
    assert english.headers["content-language"] == "en"

    missing = await plain.get(f"/api/v1/campaigns/{uuid.uuid4()}", headers=world.kiosk)
    assert missing.status_code in (403, 404)
    assert missing.json()["detail"] != missing.json()["title"]
    unknown = await plain.get("/api/v1/no-such-thing")
    assert assert_problem(unknown, 404, "not_found")["detail"] == (
        "Không có tài nguyên nào ở địa chỉ này."
    )


async def test_field_messages_follow_the_language(plain: httpx.AsyncClient, world: World) -> None:
    bad = world.form(channel="pigeon", answers={**GOOD, "E1.C1": 9})
    vi = await plain.post(world.url(), json=bad, headers=world.kiosk)
    en = await plain.post(world.url(), json=bad, headers={**world.kiosk, "Accept-Language": "en"})
    vi_body = assert_problem(vi, 422, "validation_failed")
    en_body = assert_problem(en, 422, "validation_failed")
    assert error_codes(vi_body) == error_codes(en_body)
    vi_details = {e["pointer"]: e["detail"] for e in vi_body["errors"]}  # type: ignore[attr-defined]
    en_details = {e["pointer"]: e["detail"] for e in en_body["errors"]}  # type: ignore[attr-defined]
    assert vi_details["/body/answers/E1.C1"] == "ngoài thang đo satisfaction5"
    assert en_details["/body/answers/E1.C1"] == "outside the satisfaction5 scale"
    assert vi_details["/body/channel"].startswith("Phải là một trong các giá trị")
    assert vi_body["detail"] == "Yêu cầu không hợp lệ; xem danh sách lỗi."
    assert en_body["detail"] == "The request is not valid; see errors."


# ---- one 422 for every problem of a form -------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # a type error and an answer error: both, in one response
        (
            {"channel": "pigeon", "answers": {**GOOD, "E1.C1": 9}},
            [("/body/channel", "enum"), ("/body/answers/E1.C1", "out_of_range")],
        ),
        # several of each
        (
            {
                "submission_id": "not-a-uuid",
                "respondent_type": "company",
                "answers": {**GOOD, "E1.C2": "five", "NOPE": 1},
            },
            [
                ("/body/submission_id", "uuid_parsing"),
                ("/body/respondent_type", "literal_error"),
                ("/body/answers/E1.C2", "wrong_type"),
                ("/body/answers/NOPE", "unknown_item"),
            ],
        ),
        # a null field, a bad answer and a required item left out (R.GENDER)
        (
            {"channel": None, "answers": {"E1.C1": 0}},
            [
                ("/body/channel", "enum"),
                ("/body/answers/E1.C1", "out_of_range"),
                ("/body/answers/R.GENDER", "missing"),
            ],
        ),
        # answers that are not an object: only the type error (nothing to check inside)
        (
            {"channel": "pigeon", "answers": [5, 4]},
            [("/body/channel", "enum"), ("/body/answers", "dict_type")],
        ),
        # type errors alone and answer errors alone keep their codes
        ({"channel": "pigeon"}, [("/body/channel", "enum")]),
    ],
)
async def test_single_form_lists_type_and_answer_errors_together(
    client: httpx.AsyncClient,
    world: World,
    changes: dict[str, Any],
    expected: list[tuple[str, str]],
) -> None:
    response = await client.post(world.url(), json=world.form(**changes), headers=world.kiosk)
    body = assert_problem(response, 422, "validation_failed")
    assert sorted(error_codes(body)) == sorted(expected)


async def test_answer_errors_alone_keep_their_code(client: httpx.AsyncClient, world: World) -> None:
    response = await client.post(
        world.url(), json=world.form(answers={**GOOD, "E1.C1": 9}), headers=world.kiosk
    )
    body = assert_problem(response, 422, "invalid")
    assert error_codes(body) == [("/body/answers/E1.C1", "out_of_range")]


async def test_batch_items_list_type_and_answer_errors_with_full_pointers(
    client: httpx.AsyncClient, world: World
) -> None:
    items = [
        world.form(),
        world.form(channel="pigeon", answers={**GOOD, "E1.C1": 9}),
        world.form(answers={**GOOD, "E2.C1": "x"}, agency_code="NO-SUCH-AGENCY"),
        {"answers": {"E1.C1": 7}},
    ]
    response = await client.post(
        world.url("/batch"), json={"submissions": items}, headers=world.kiosk
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "error", "error", "error"]

    def codes(result: dict[str, Any]) -> list[tuple[str, str]]:
        return sorted((e["pointer"], e["code"]) for e in result["errors"])

    assert codes(results[1]) == [
        ("/body/submissions/1/answers/E1.C1", "out_of_range"),
        ("/body/submissions/1/channel", "enum"),
    ]
    assert codes(results[2]) == [
        ("/body/submissions/2/agency_code", "unknown"),
        ("/body/submissions/2/answers/E2.C1", "wrong_type"),
    ]
    assert codes(results[3]) == [
        ("/body/submissions/3/answers/E1.C1", "out_of_range"),
        ("/body/submissions/3/answers/R.GENDER", "missing"),  # a required item
        ("/body/submissions/3/channel", "missing"),
    ]
    # The same form alone answers the same problems at the same place under /body.
    alone = await client.post(world.url(), json=items[1], headers=world.kiosk)
    single = {
        (p.replace("/body", "/body/submissions/1", 1), c) for p, c in error_codes(alone.json())
    }
    assert single == set(codes(results[1]))


async def test_batch_messages_follow_the_language(plain: httpx.AsyncClient, world: World) -> None:
    items = {"submissions": [world.form(answers={**GOOD, "E1.C1": 9})]}
    vi_response = await plain.post(world.url("/batch"), json=items, headers=world.kiosk)
    assert vi_response.headers["content-language"] == "vi"
    assert vi_response.headers["vary"] == "Accept-Language"
    vi = vi_response.json()
    items = {"submissions": [world.form(answers={**GOOD, "E1.C1": 9})]}
    en = (
        await plain.post(
            world.url("/batch"), json=items, headers={**world.kiosk, "Accept-Language": "en"}
        )
    ).json()
    assert vi["results"][0]["errors"][0]["detail"] == "ngoài thang đo satisfaction5"
    assert en["results"][0]["errors"][0]["detail"] == "outside the satisfaction5 scale"


def test_every_problem_code_the_app_raises_has_a_vietnamese_message() -> None:
    """A new code without a Vietnamese message would answer a generic sentence: the catalogue
    must grow with the codes (OAuth token errors excepted, see app/errors.py)."""
    source = "\n".join(
        p.read_text(encoding="utf-8") for p in Path(errors.__file__).parent.rglob("*.py")
    )
    raised = set(
        re.findall(r'(?:AppError|Conflict(?:Error)?|super\(\)\.__init__)\(\s*"([a-z_]+)"', source)
    )
    raised |= set(re.findall(r'\bcode="([a-z_]+)",?\s*\)', source))
    raised |= set(re.findall(r'_bad_invitation\(\s*"([a-z_]+)"', source))
    raised |= set(re.findall(r'problem\(\s*\d+,\s*"([a-z_]+)"', source))
    assert {"not_found", "bad_cursor", "campaign_locked", "import_rejected"} <= raised
    missing = sorted(raised - set(errors.MESSAGES_VI) - errors.OAUTH_CODES)
    assert missing == []


@pytest.mark.parametrize(
    ("answers", "code"),
    [
        ({"E1.C1": "5"}, "wrong_type"),
        ({"E1.C1": 6}, "out_of_range"),
        ({"P.TRIPS": 1}, "unknown_option"),
        ({"P.TRIPS": ["1"]}, "wrong_type"),
        ({"X.IMPROVE": "a"}, "wrong_type"),
        ({"X.IMPROVE": []}, "empty"),
        ({"X.IMPROVE": ["a", "a"]}, "duplicate_choice"),
        ({"X.IMPROVE": ["a", "z"]}, "unknown_option"),
        ({"X.IMPROVE": ["a", "b", "c"]}, "too_many_choices"),
        ({"X.IMPROVE": [True]}, "wrong_type"),
        ({"C.NOTE": 5}, "wrong_type"),
        ({"C.NOTE": "x" * 5000}, "too_long"),
        ({"C.NOTE": "a\x00b"}, "nul_character"),
        ({"NO.SUCH": 1}, "unknown_item"),
        ({}, "missing"),  # R.GENDER is required
    ],
)
def test_every_answer_error_has_a_vietnamese_message(answers: dict[str, Any], code: str) -> None:
    q = instrument.parse_questionnaire(TEST_DEFINITION)
    found = instrument.validate_answers(q, {"R.GENDER": "nu", **answers}, pointer_prefix="/body")
    if code == "missing":
        found = instrument.validate_answers(q, answers, pointer_prefix="/body")
    assert code in {e.code for e in found}
    for error in found:
        vietnamese = error.as_dict("vi")["detail"]
        assert vietnamese != error.detail, error
        english = re.search(r"\b(the|expected|outside|item|choices|characters)\b", vietnamese)
        assert english is None, vietnamese
