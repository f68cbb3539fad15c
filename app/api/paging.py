"""The page a list endpoint answers: one bundle of the two query parameters every list takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from app.deps import DEFAULT_PAGE, Cursor, Limit


@dataclass
class Page:
    """`limit` items after `cursor` (the previous page's `next_cursor`; none for the first).

    Pass it on as `**asdict(page)`: the services take `limit=` and `cursor=`."""

    limit: Limit = DEFAULT_PAGE
    cursor: Cursor = None


# A route that takes filters besides the page declares them as a dependency too (a dataclass),
# beside `page` in the order its document lists them: FastAPI lists a route's own query
# parameters before those of its dependencies, so a filter left in the signature would move.
PageDep = Annotated[Page, Depends()]
