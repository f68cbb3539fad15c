"""A campaign world for the index roll-up tests: agencies, an installed campaign of a built-in
questionnaire, random forms in mixed states, and a comparison of two index answers."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.models.agency import Agency
from app.models.campaign import Campaign, CampaignState
from app.models.questionnaire import Questionnaire
from app.models.submission import Channel, Submission, SubmissionState
from app.services import instrument
from app.services.index import rollups
from tests.factories import TEST_DEFINITION, make_agency, make_campaign, unique


def _answer(item: instrument.Item, rng: random.Random) -> Any:
    if rng.random() < 0.1:
        return None  # no answer
    codes = sorted((str(c) for c in instrument.codes_of(item)), key=str)
    if item.type is instrument.ItemType.free_text:
        return "Thủ tục nhanh gọn, cán bộ nhiệt tình"
    if item.type is instrument.ItemType.integer:
        return rng.randint(item.min_value or 0, item.max_value or 10)
    if not codes:  # a reference to the catalogue: not needed here
        return None
    if item.type is instrument.ItemType.multiple_choice:
        limit = item.max_choices or len(codes)
        return rng.sample(codes, rng.randint(1, min(limit, len(codes))))
    code = rng.choice(codes)
    return int(code) if code.lstrip("-").isdigit() else code


def answers(q: instrument.Questionnaire, rng: random.Random) -> dict[str, Any]:
    out = {}
    for _, item in instrument.iter_items(q):
        value = _answer(item, rng)
        while (
            value is None
            and (item.required or not item.allow_no_answer)
            and (instrument.codes_of(item) or item.type is instrument.ItemType.free_text)
        ):
            value = _answer(item, rng)
        out[item.id] = value
    return out


def definition(kind: str) -> dict[str, Any]:
    if kind == "test":
        return {**TEST_DEFINITION, "code": unique("q-")}
    return {**instrument.load_builtin(kind).model_dump(mode="json"), "code": unique("q-")}


async def setup(
    session: AsyncSession, kind: str
) -> tuple[Campaign, instrument.Questionnaire, list[Agency]]:
    province = await make_agency(session, name="UBND tỉnh Tuyên Quang", level="province")
    departments = [
        await make_agency(session, name=f"Sở {n}", parent=province, level="department")
        for n in ("Tư pháp", "Xây dựng")
    ]
    communes = [
        await make_agency(session, name=f"UBND xã {n}", parent=departments[i % 2], level="commune")
        for i, n in enumerate(("Yên Sơn", "Hàm Yên", "Na Hang"))
    ]
    raw = definition(kind)
    parsed = instrument.Questionnaire.model_validate(raw)
    row = Questionnaire(
        code=raw["code"],
        version=parsed.version,
        method=parsed.method,
        title_vi=parsed.title_vi,
        definition=raw,
        frozen_at=datetime.now(UTC),
    )
    session.add(row)
    await session.flush()
    agencies = [province, *departments, *communes]
    campaign = await make_campaign(
        session, agencies=[province], questionnaire=row, state=CampaignState.open
    )
    assert await rollups.install(session, campaign.id)
    return campaign, parsed, agencies


def forms(
    campaign: Campaign,
    q: instrument.Questionnaire,
    agencies: list[Agency],
    rng: random.Random,
    count: int,
) -> list[Submission]:
    states = [SubmissionState.valid] * 6 + [SubmissionState.received, SubmissionState.rejected]
    return [
        Submission(
            campaign_id=campaign.id,
            client_submission_id=uuid.uuid4(),
            request_hash="x",
            agency_id=rng.choice(agencies).id,
            channel=rng.choice(list(Channel)),
            respondent_type=rng.choice(["individual", "organisation", None]),
            state=rng.choice(states),
            answers=answers(q, rng),
            received_at=datetime.now(UTC),
        )
        for _ in range(count)
    ]


def close(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths where two JSON documents differ (floats to 1e-9 relative)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [
            d for k in sorted(a.keys() | b.keys()) for d in close(a.get(k), b.get(k), f"{path}/{k}")
        ]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} != {len(b)} items"]
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in close(x, y, f"{path}/{i}")
        ]
    if isinstance(a, float) and isinstance(b, float):
        # Where a composite's Σ z² is 0 (every respondent of a small cell alike), the pair
        # counts give it as a difference of equal sums, a rounding error of about 1e-16 that the
        # square root lifts to about 1e-7 points: far below the 2 decimals shown.
        tolerance = max(1e-9 * max(1.0, abs(a)), 1e-5 if "ci_" in path else 0.0)
        return [] if abs(a - b) <= tolerance else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]
