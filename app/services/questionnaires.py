"""Questionnaire versions in the database: built-ins, new versions, and the freeze rule."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.errors import ConflictError, FieldError, Invalid
from app.models.questionnaire import (
    Questionnaire,
    QuestionnairePage,
    QuestionnairePublic,
    QuestionnaireSummary,
)
from app.services import audit, instrument, rows
from app.services.paging import cursor_int, cursor_str, decode_cursor, keyset_page
from app.services.principal import Principal


async def _add(
    session: AsyncSession, actor: Principal | None, q: instrument.Questionnaire, *, builtin: bool
) -> Questionnaire:
    """Store a parsed version and record it: a built-in is installed (by no one, at migrate
    time), any other version created by its author."""
    row = Questionnaire(
        code=q.code,
        version=q.version,
        method=q.method,
        title_vi=q.title_vi,
        title_en=q.title_en,
        definition=q.model_dump(mode="json"),
        is_builtin=builtin,
    )
    await audit.record_change(
        session,
        actor,
        row,
        "questionnaire.install" if builtin else "questionnaire.create",
        object_type="questionnaire",
        summary={"code": q.code, "version": q.version},
    )
    return row


def public(row: Questionnaire) -> QuestionnairePublic:
    """A version as the API shows it: the definition with every item's labelled options
    (`instrument.presented`), so a frontend needs no scale of its own."""
    shown = instrument.presented(instrument.parsed(row))
    summary = QuestionnaireSummary.model_validate(row)
    return QuestionnairePublic(**summary.model_dump(), definition=shown.model_dump(mode="json"))


async def ensure_builtins(session: AsyncSession) -> list[str]:
    """Install the built-in instruments that are missing; returns the codes it added.

    Run by `sipas migrate`: they are reference data every deployment needs, not demo data."""
    added = []
    for code in instrument.BUILTINS:
        q = instrument.load_builtin(code)
        exists = await session.scalar(
            sa.select(col(Questionnaire.id)).where(
                col(Questionnaire.code) == q.code, col(Questionnaire.version) == q.version
            )
        )
        if exists is None:
            await _add(session, None, q, builtin=True)
            added.append(code)
    return added


def _parse(definition: dict[str, Any]) -> instrument.Questionnaire:
    try:
        return instrument.parse_questionnaire(definition)
    except instrument.InvalidQuestionnaire as exc:
        raise Invalid(
            "The questionnaire definition is not valid; see errors.",
            [FieldError("/body/definition" + e.pointer, e.detail, e.code) for e in exc.errors],
        ) from exc


async def create(
    session: AsyncSession, actor: Principal, definition: dict[str, Any]
) -> Questionnaire:
    """A new version: one more than the latest of the same code."""
    code = definition.get("code")
    latest = 0
    if isinstance(code, str):
        latest = (
            await session.scalar(
                sa.select(sa.func.coalesce(sa.func.max(col(Questionnaire.version)), 0)).where(
                    col(Questionnaire.code) == code
                )
            )
            or 0
        )
    q = _parse({**definition, "version": latest + 1})
    return await _add(session, actor, q, builtin=False)


async def get(session: AsyncSession, questionnaire_id: uuid.UUID) -> Questionnaire:
    return await rows.fetch(session, Questionnaire, questionnaire_id, "questionnaire")


async def replace(
    session: AsyncSession, actor: Principal, questionnaire_id: uuid.UUID, definition: dict[str, Any]
) -> Questionnaire:
    """Change a version that no campaign has opened on; a frozen one never changes."""
    query = sa.select(Questionnaire).where(col(Questionnaire.id) == questionnaire_id)
    row = await rows.one(session, query, "questionnaire", lock=True)
    if row.frozen_at is not None or row.is_builtin:
        raise ConflictError(
            "questionnaire_frozen",
            "This version is frozen (a campaign opened on it, or it is built in); "
            "create a new version instead.",
        )
    q = _parse({**definition, "code": row.code, "version": row.version})
    row.definition = q.model_dump(mode="json")
    row.method, row.title_vi, row.title_en = q.method, q.title_vi, q.title_en
    await audit.record_change(
        session,
        actor,
        row,
        "questionnaire.update",
        object_type="questionnaire",
        summary={"code": row.code, "version": row.version},
    )
    return row


async def list_questionnaires(
    session: AsyncSession, *, limit: int, cursor: str | None, code: str | None = None
) -> QuestionnairePage:
    query = sa.select(Questionnaire).order_by(col(Questionnaire.code), col(Questionnaire.version))
    after = decode_cursor(cursor)
    if after is not None:
        last = (cursor_str(after, "code"), cursor_int(after, "version"))
        query = query.where(
            sa.tuple_(col(Questionnaire.code), col(Questionnaire.version)) > sa.tuple_(*last)
        )
    if code is not None:
        query = query.where(col(Questionnaire.code) == code)
    rows, next_cursor = await keyset_page(
        session, query, limit=limit, key=lambda q: {"code": q.code, "version": q.version}
    )
    return QuestionnairePage(
        items=[QuestionnaireSummary.model_validate(r) for r in rows],
        next_cursor=next_cursor,
    )
