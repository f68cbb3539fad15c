"""One way to apply a PATCH to a row and tell the audit log what changed.

The services' update use cases all did the same: take the fields the client sent
(`model_dump(exclude_unset=True)`), snapshot the row, set the changed attributes, fix whatever
derives from them, snapshot again and record the difference. `apply_changes` is that routine;
the checks a field needs before it is set (references, states, rights) stay in the service, and
the "must not be null" checks live on the `*Update` schemas (`app.models.base.UpdateSchema`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from app.services import audit

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Changed:
    """The row's snapshot before and after the change."""

    before: dict[str, Any]
    after: dict[str, Any]

    def diff(self) -> dict[str, Any]:
        """The fields that changed, as the audit log records them: {"before": ..., "after": ...}."""
        return audit.diff(self.before, self.after)


def fields(*names: str) -> Callable[[object], dict[str, Any]]:
    """A snapshot that takes the named attributes of a row, lists copied: a change made in
    place after the "before" was taken must not show in it."""

    def take(row: object) -> dict[str, Any]:
        values = {name: getattr(row, name) for name in names}
        return {k: list(v) if isinstance(v, list) else v for k, v in values.items()}

    return take


def sent(data: BaseModel) -> dict[str, Any]:
    """The fields the client sent, with their values (null included)."""
    return data.model_dump(exclude_unset=True)


def apply_changes(
    row: R,
    changes: Mapping[str, Any] | BaseModel,
    snapshot: Callable[[R], dict[str, Any]] | None = None,
    *,
    skip: Collection[str] = (),
    derive: Callable[[R], None] | None = None,
) -> Changed:
    """Set every changed attribute of `row` (but those in `skip`, which the caller applies
    itself), then run `derive` (search keys, defaults, state moves that follow from the
    fields); `snapshot` (none: nothing to compare) is taken before and after all of it."""
    values = sent(changes) if isinstance(changes, BaseModel) else changes
    take = snapshot or _nothing
    before = take(row)
    for name, value in values.items():
        if name not in skip:
            setattr(row, name, value)
    if derive is not None:
        derive(row)
    return Changed(before, take(row))


def _nothing(_row: object) -> dict[str, Any]:
    return {}
