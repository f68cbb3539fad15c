"""Files the routers hand out (CSV, XLSX): their media types and the attachment header."""

from __future__ import annotations

from app.services.tabular import XLSX_MEDIA_TYPE

CSV = "text/csv; charset=utf-8"
XLSX = XLSX_MEDIA_TYPE
MEDIA_TYPES = {"csv": CSV, "xlsx": XLSX}


def attachment(filename: str) -> dict[str, str]:
    """The header that makes a browser save the body as `filename`."""
    return {"Content-Disposition": f'attachment; filename="{filename}"'}
