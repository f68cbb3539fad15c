"""Screening rules, one by one: hand-made forms that must and must not raise each flag."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest

from app.models.quality import Contradiction, QualityConfig, Rule
from app.services import instrument
from app.services.quality import screening

Q = instrument.load_builtin("sipas-2017")
RATED = screening.rated_items(Q)
# A weekday (Tuesday 1 December 2026) at 10:00 in Hanoi: inside office hours.
OFFICE = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def varied() -> dict[str, Any]:
    """A clean form: every criterion answered, not all alike, no contradiction."""
    answers: dict[str, Any] = {item: 4 + (i % 2) for i, item in enumerate(RATED)}
    answers["N.ON_TIME"] = "on_time"
    return answers


def flags(answers: dict[str, Any], config: QualityConfig | None = None, **kw: Any) -> set[str]:
    kw.setdefault("channel", "web")
    kw.setdefault("received_at", OFFICE)
    return set(screening.screen(Q, config or QualityConfig(), answers, **kw))


def test_the_sipas_2017_form_has_22_rated_criteria() -> None:
    assert RATED[:3] == ("E1.C1", "E1.C2", "E1.C3")
    assert len(RATED) == 22


def test_a_clean_form_carries_no_flag() -> None:
    assert flags(varied(), started_at=OFFICE - timedelta(minutes=10), channel="kiosk") == set()


@pytest.mark.parametrize(
    ("seconds", "flagged"), [(30, True), (119, True), (120, False), (900, False)]
)
def test_too_fast_below_the_threshold(seconds: int, flagged: bool) -> None:
    found = screening.screen(
        Q,
        QualityConfig(),
        varied(),
        channel="web",
        received_at=OFFICE,
        started_at=OFFICE - timedelta(seconds=seconds),
    )
    assert ("too_fast" in found) is flagged
    if flagged:
        assert found["too_fast"] == {"seconds": float(seconds), "threshold": 120}


def test_too_fast_needs_a_start_time() -> None:
    assert "too_fast" not in flags(varied())


def test_straight_lining_is_the_same_answer_everywhere() -> None:
    same = {**varied(), **dict.fromkeys(RATED, 5)}
    found = screening.screen(Q, QualityConfig(), same, channel="web", received_at=OFFICE)
    assert found["straight_lining"] == {"value": 5, "items": 22}
    # one different answer, or too few answered items, is not straight-lining
    assert "straight_lining" not in flags({**same, RATED[3]: 4})
    few = {item: (5 if i < 7 else None) for i, item in enumerate(RATED)}
    assert "straight_lining" not in flags(few, QualityConfig(max_no_answer_share=1))
    assert "straight_lining" in flags(few, QualityConfig(straight_lining_min_items=7))


def test_too_many_no_answers() -> None:
    answers = varied()
    for item in RATED[:7]:  # 7 of 22 = 31.8 % > 30 %
        answers[item] = None
    found = screening.screen(Q, QualityConfig(), answers, channel="web", received_at=OFFICE)
    assert found["too_many_no_answers"] == {"no_answers": 7, "items": 22, "threshold": 0.3}
    for item in RATED[:6]:  # 6 of 22 = 27.3 %
        answers.pop(item)
    answers[RATED[6]] = 4
    assert "too_many_no_answers" not in flags(answers)


@pytest.mark.parametrize(
    ("when", "flagged"),
    [
        (datetime(2026, 12, 1, 3, 0, tzinfo=UTC), False),  # Tue 10:00 Hanoi
        (datetime(2026, 12, 1, 0, 0, tzinfo=UTC), False),  # Tue 07:00 sharp
        (datetime(2026, 11, 30, 23, 59, tzinfo=UTC), True),  # Tue 06:59
        (datetime(2026, 12, 1, 10, 30, tzinfo=UTC), True),  # Tue 17:30: closed
        (datetime(2026, 12, 5, 3, 0, tzinfo=UTC), True),  # Saturday 10:00
    ],
)
def test_kiosk_forms_outside_office_hours(when: datetime, flagged: bool) -> None:
    assert ("kiosk_off_hours" in flags(varied(), channel="kiosk", received_at=when)) is flagged
    # only kiosks: a web form at night is fine
    assert "kiosk_off_hours" not in flags(varied(), channel="web", received_at=when)


def test_office_days_come_from_the_config() -> None:
    saturday = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    config = QualityConfig(office_days=[0, 1, 2, 3, 4, 5])
    assert "kiosk_off_hours" not in flags(varied(), config, channel="kiosk", received_at=saturday)


def test_late_result_with_timeliness_very_satisfied_is_a_contradiction() -> None:
    late = {**varied(), "N.ON_TIME": "late", "E2.C5": 5}
    found = screening.screen(Q, QualityConfig(), late, channel="web", received_at=OFFICE)
    assert found["contradiction"] == {"rules": ["late_but_timely"]}
    assert "contradiction" not in flags({**late, "E2.C5": 2})  # late and unhappy: coherent
    assert "contradiction" not in flags({**late, "N.ON_TIME": "on_time"})
    assert "contradiction" not in flags({**late, "E2.C5": None})


def test_contradictions_are_campaign_data() -> None:
    own = QualityConfig(
        contradictions=[
            Contradiction(
                name="harassed_but_polite",
                when_item="N.HARASSED",
                when_in=["yes"],
                then_items=["E3.C1", "E3.C6"],
                then_in=[5],
            )
        ]
    )
    answers = {**varied(), "N.HARASSED": "yes", "E3.C1": 5, "E3.C6": 5}
    assert "contradiction" in flags(answers, own)
    assert "contradiction" not in flags({**answers, "E3.C6": 4}, own)
    # the campaign's own list replaces the default
    assert "contradiction" not in flags({**varied(), "N.ON_TIME": "late", "E2.C5": 5}, own)


def test_agency_in_the_answers_differs_from_the_dossiers() -> None:
    form_agency, dossier_agency = uuid.uuid4(), uuid.uuid4()
    found = screening.screen(
        Q,
        QualityConfig(),
        varied(),
        channel="post_office",
        received_at=OFFICE,
        agency_id=form_agency,
        dossier_agency_id=dossier_agency,
    )
    assert found["agency_mismatch"] == {
        "form_agency_id": str(form_agency),
        "dossier_agency_id": str(dossier_agency),
    }
    same = flags(varied(), agency_id=form_agency, dossier_agency_id=form_agency)
    assert "agency_mismatch" not in same
    assert "agency_mismatch" not in flags(varied(), agency_id=form_agency)


def test_a_disabled_rule_raises_no_flag() -> None:
    same = dict.fromkeys(RATED, 5)
    assert "straight_lining" in flags(same)
    off = QualityConfig(disabled_rules=[Rule.straight_lining])
    assert "straight_lining" not in flags(same, off)


def test_the_stored_config_fills_in_defaults() -> None:
    config = screening.config_of({"review_policy": "auto", "burst_max_forms": 3})
    assert config.review_policy == "auto"
    assert config.burst_max_forms == 3
    assert config.min_completion_seconds == 120
    assert screening.config_of({}).review_policy == "manual"


@pytest.mark.parametrize(
    ("given", "kept"), [("07:30", "07:30:00"), ("17:30:00", "17:30:00"), ("00:00", "00:00:00")]
)
def test_office_hours_are_a_local_time_of_day(given: str, kept: str) -> None:
    config = QualityConfig(office_hours_end=given)  # type: ignore[arg-type]
    assert config.model_dump(mode="json")["office_hours_end"] == kept


@pytest.mark.parametrize("given", [0, 3600, "00:00:00Z", "07:00+07:00", "25:00", "7h30"])
def test_office_hours_refuse_numbers_offsets_and_nonsense(given: object) -> None:
    """The fuzzer sent 0 and got back `00:00:00Z`, which broke the documented pattern."""
    with pytest.raises(pydantic.ValidationError):
        QualityConfig(office_hours_end=given)  # type: ignore[arg-type]
