"""The one cached parse of a stored questionnaire version (`instrument.parsed`) and of the
built-ins, on the process cache `questionnaires.parsed`."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from app.models.questionnaire import Questionnaire
from app.services import instrument
from app.services.instrument.parsing import PARSED


def _row(*, frozen: bool) -> Questionnaire:
    q = instrument.load_builtin("sipas-2017")
    return Questionnaire(
        code="q-parsed",
        version=1,
        method=q.method,
        title_vi=q.title_vi,
        definition=copy.deepcopy(instrument.builtin_definition("sipas-2017")),
        frozen_at=datetime(2026, 1, 1, tzinfo=UTC) if frozen else None,
    )


def test_a_frozen_version_is_parsed_once_and_then_served_from_the_cache() -> None:
    row = _row(frozen=True)
    before = PARSED.stats()
    first = instrument.parsed(row)
    assert first == instrument.Questionnaire.model_validate(row.definition)
    assert instrument.parsed(row) is first
    after = PARSED.stats()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    assert ("frozen", row.id, row.frozen_at) in PARSED


def test_a_draft_is_parsed_on_every_read_so_a_replaced_definition_shows() -> None:
    row = _row(frozen=False)
    assert instrument.parsed(row).title_vi == row.definition["title_vi"]
    row.definition = {**row.definition, "title_vi": "Phiếu sửa đổi"}
    assert instrument.parsed(row).title_vi == "Phiếu sửa đổi"
    assert not [key for key in PARSED if key[0] == "frozen" and key[1] == row.id]


def test_the_builtins_are_kept_in_the_same_cache() -> None:
    q = instrument.load_builtin("sipas-2023")
    assert instrument.load_builtin("sipas-2023") is q
    assert ("builtin", "sipas-2023") in PARSED
