"""Table constraints declared from what they guard, for `__table_args__`.

Column helpers (`uuid_pk`, `fk`, timestamps) live in `app.models.base`; these build constraints
over a whole row.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa


def one_of(column: str, values: Iterable[str], *, nullable: bool = False) -> sa.CheckConstraint:
    """A CHECK named `<column>_known` that `column` holds one of `values` (usually an enum's
    members, so the database refuses what the API would), or NULL when `nullable`."""
    listed = ", ".join(f"'{value}'" for value in values)
    test = f"{column} IN ({listed})"
    if nullable:
        test = f"{column} IS NULL OR {test}"
    return sa.CheckConstraint(test, name=f"{column}_known")


def campaign_fk(
    column: str, table: str, ondelete: str, *, use_alter: bool = False
) -> sa.ForeignKeyConstraint:
    """A foreign key from `column` to `table`.id within the row's own campaign: (column,
    campaign_id) references (id, campaign_id), since every key of a table distributed by
    campaign holds the campaign (docs/scaling.md), and a row cannot point into another one."""
    return sa.ForeignKeyConstraint(
        [column, "campaign_id"],
        [f"{table}.id", f"{table}.campaign_id"],
        ondelete=ondelete,
        use_alter=use_alter,
    )


def unique_nulls_not_distinct(*columns: str, name: str) -> sa.UniqueConstraint:
    """A UNIQUE over `columns` in which NULL counts as a value like any other (PostgreSQL's
    NULLS NOT DISTINCT): where NULL means "the whole of it", only one such row may exist."""
    return sa.UniqueConstraint(*columns, name=name, postgresql_nulls_not_distinct=True)
