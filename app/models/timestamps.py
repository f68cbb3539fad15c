"""Dates and times a client may send: within years a record of this service can hold.

Python's datetime stops at year 9999 and year 1, so a value at the edge with an offset
(`9999-12-31T23:59:59-14:00`) cannot be turned into UTC, as storing or comparing it does: it
used to fail there, as a 500. Every date and datetime the API takes is one of the annotated
types below instead; a value outside the years MIN_YEAR..MAX_YEAR (its UTC instant, for a
datetime with an offset) is refused by the request model with a 422 naming the field, code
`date_out_of_range`.

How far from *now* a client-given timestamp may lie (a form's `received_at`, a dossier's
`returned_at`) depends on the settings and is checked by the services; see `window_problem`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

MIN_YEAR = 1900
MAX_YEAR = 2200


def _out_of_range() -> PydanticCustomError:
    return PydanticCustomError(
        "date_out_of_range",
        "must fall within the years {min_year} to {max_year}",
        {"min_year": MIN_YEAR, "max_year": MAX_YEAR},
    )


def sane_datetime(value: datetime) -> datetime:
    """The value, when its UTC instant exists and falls within MIN_YEAR..MAX_YEAR."""
    if value.tzinfo is not None:
        try:
            instant = value.astimezone(UTC)
        except OverflowError:
            raise _out_of_range() from None
    else:
        instant = value
    if not MIN_YEAR <= instant.year <= MAX_YEAR:
        raise _out_of_range()
    return value


def sane_date(value: date) -> date:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise _out_of_range()
    return value


SaneDatetime = Annotated[datetime, AfterValidator(sane_datetime)]
SaneDate = Annotated[date, AfterValidator(sane_date)]


def window_problem(
    value: datetime, now: datetime, *, max_age: timedelta, max_ahead: timedelta
) -> str | None:
    """Why a client-given instant is refused (too far in the past or in the future), or None.

    A value without an offset is read as UTC."""
    instant = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if instant > now + max_ahead:
        return f"lies in the future (more than {int(max_ahead.total_seconds())} s ahead)"
    if instant < now - max_age:
        return f"lies more than {max_age.days} days in the past"
    return None
