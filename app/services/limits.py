"""Limits a deployment sets on what one request may carry, beyond the schemas' hard caps."""

from __future__ import annotations

from app.config import Settings
from app.errors import FieldError, Invalid


def check_batch_size(settings: Settings, count: int, pointer: str) -> None:
    """422 naming the list when a batch carries more items than MAX_BATCH_ITEMS allows (the
    schemas cap every batch at 1000; a deployment may allow fewer)."""
    limit = settings.max_batch_items
    if count > limit:
        detail = f"A batch may carry at most {limit} items (MAX_BATCH_ITEMS); this one has {count}."
        raise Invalid(detail, [FieldError(pointer, f"more than {limit} items", "too_many_items")])
