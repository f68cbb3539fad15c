"""Shared model machinery. Imported before any table so the naming convention applies to all."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Self, TypeVar, overload

import sqlalchemy as sa
from pydantic import BaseModel, Field, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from sqlmodel import Field as ModelField
from sqlmodel import SQLModel

from app.errors import FieldError, InvalidError

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def timestamptz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def uuid_pk() -> Any:
    """A UUID primary key, made by Python or, for a bulk INSERT that leaves it out, PostgreSQL."""
    return ModelField(
        default_factory=uuid.uuid4,
        sa_column_kwargs={"server_default": sa.text("gen_random_uuid()")},
        primary_key=True,
    )


def writing_tx(description: str | None = None) -> Any:
    """The id of the transaction that wrote the row, set by PostgreSQL: lists that must not skip
    a row a slower transaction commits later page in this order."""
    return ModelField(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger,
            nullable=False,
            server_default=sa.text("(pg_current_xact_id()::text)::bigint"),
        ),
        description=description,
    )


def fk(
    target: str,
    ondelete: str,
    nullable: bool = False,
    primary_key: bool = False,
    *,
    index: bool = False,
) -> sa.Column[Any]:
    """A UUID foreign key to `target` ("table.column") with an explicit ON DELETE; `index`
    gives it an index of its own, named by the convention (`ix_<table>_<column>`)."""
    return sa.Column(
        sa.Uuid,
        sa.ForeignKey(target, ondelete=ondelete),
        nullable=nullable,
        primary_key=primary_key,
        index=index,
    )


def _now_column() -> Any:
    return ModelField(
        default_factory=utcnow,
        sa_type=timestamptz(),
        sa_column_kwargs={"server_default": sa.func.now()},
    )


class Created(SQLModel):
    """A table's `created_at`: set when the row is made (by Python, or by the database's now()
    when a bulk INSERT leaves it out), never changed."""

    created_at: datetime = _now_column()


class Timestamped(Created):
    """`created_at` and `updated_at`. `updated_at` moves only when a use case says so, through
    `touch(row)`, never by itself.

    Why not SQLAlchemy's `onupdate`: `updated_at` is part of what the index cache keys and the
    ETags are made of (`services/index/cache.py` reads `max(updated_at)` of submissions and
    agencies), and several writes deliberately leave it: a sign-in setting `last_login_at`, the
    webhook worker counting a subscription's failures (`failing_since`), a search key rebuilt.
    An `onupdate` would move it on every ORM flush of such a row and on every `sa.update(...)` of
    the table, so a cache would miss and an ETag change with nothing a client can see changed.
    """

    updated_at: datetime = _now_column()


def touch(*rows: Timestamped, at: datetime | None = None) -> datetime:
    """Mark rows as changed now (or `at`): their `updated_at`, the same instant for all."""
    now = at or utcnow()
    for row in rows:
        row.updated_at = now
    return now


class DocumentedAs:
    """`Annotated[dict[str, Any], DocumentedAs(Model)]`: accepted as any JSON object (a service
    checks it, item by item, with pointers) but documented as `Model`, so a generated client
    types it. Batch items and questionnaire definitions are declared this way."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model

    def __get_pydantic_json_schema__(
        self, _schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return handler(self.model.__pydantic_core_schema__)

    def __repr__(self) -> str:
        return f"DocumentedAs({self.model.__name__})"


class FieldProblem(BaseModel):
    """One offending field of a request, located by a JSON pointer into it."""

    pointer: str = Field(
        description="JSON pointer into the request, its first part naming where the value came "
        "from (body, query, path, header).",
        examples=["/body/answers/E1.C1"],
    )
    code: str = Field(description="Stable machine-readable reason.", examples=["out_of_range"])
    detail: str = Field(description="Human-readable explanation.", examples=["must be 1..5"])


def no_nul(value: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL: refused by the request model, it is an error on the
    field, not a failed statement (which in a batch would also fail every other item)."""
    if value is not None and "\x00" in value:
        raise ValueError("holds a NUL character (\\u0000), which cannot be stored")
    return value


@overload
def nfc(value: str) -> str: ...
@overload
def nfc(value: None) -> None: ...
@overload
def nfc(value: str | None) -> str | None: ...
def nfc(value: str | None) -> str | None:
    """Vietnamese text is stored composed (NFC) and without surrounding blanks; None (an optional
    field, or a PATCH field not sent) is left as it is."""
    return unicodedata.normalize("NFC", value).strip() if value is not None else None


class Page(BaseModel, Generic[T]):
    """One page of a list: the items, and the cursor of the next page (null on the last)."""

    items: list[T]
    next_cursor: str | None = None


class UpdateSchema(SQLModel):
    """Base of the `*Update` (PATCH) schemas: every field optional, only the fields sent change
    (`model_dump(exclude_unset=True)`). The fields named in `not_null` may be left out but never
    sent as null; a null there is refused here, before any service runs, as a 422 `invalid`
    problem naming each such field (`/body/<name>`, "must not be null")."""

    not_null: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _refuse_nulls(self) -> Self:
        nulls = [
            n for n in self.not_null if n in self.model_fields_set and getattr(self, n) is None
        ]
        if nulls:
            # Not a ValueError: pydantic lets it through, and the AppError handler renders it
            # with the code the services used when they checked this themselves.
            raise InvalidError(
                "These fields cannot be null.",
                [FieldError(f"/body/{n}", "must not be null") for n in nulls],
            )
        return self
