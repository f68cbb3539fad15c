"""A published report's files: JSON, CSV and XLSX rendered from the stored snapshot.

Pure functions of the snapshot and of the codes of the agencies and sectors that key its cells
(looked up by the caller, since older snapshots hold only their ids). Published figures are
never changed here; text is neutralised against formulas at rendering (see `tabular`)."""

from __future__ import annotations

import io
import json
import uuid
from decimal import Decimal
from typing import Any

from openpyxl import Workbook

from app.services import tabular

# The breakdowns every report holds (publishing computes each), with their sheet names.
BREAKDOWNS: dict[str, str] = {
    "agency": "Theo cơ quan, đơn vị",
    "level": "Theo cấp hành chính",
    "sector": "Theo lĩnh vực",
    "channel": "Theo kênh thu phiếu",
    "respondent_type": "Theo đối tượng",
}
# Exports are rendered from the stored snapshot with the current renderers; their ETags carry
# this version, so a caller holding an export made by older renderers gets the new one.
RENDERING_VERSION = "2"
COLUMNS = [
    "breakdown",
    "cell_code",
    "cell_label",
    "n_respondents",
    "node_id",
    "node_kind",
    "label_vi",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "low_reliability",
    "suppressed",
    "value_exact",
]
HEADINGS_VI = [
    "Nhóm",
    "Mã nhóm",
    "Tên nhóm",
    "Số phiếu",
    "Mã chỉ số",
    "Loại chỉ số",
    "Tên chỉ số",
    "Giá trị (%)",
    "Cận dưới 95%",
    "Cận trên 95%",
    "Số trả lời hợp lệ",
    "Độ tin cậy thấp",
    "Bị ẩn",
    "Giá trị đầy đủ (%)",
]
KINDS_VI = {
    "overall": "Chỉ số chung",
    "pillar": "Trụ cột",
    "element": "Yếu tố",
    "criterion": "Tiêu chí",
}
# Breakdowns whose cells are keyed by a row id: exports name them by the row's code.
CODED_BREAKDOWNS = ("agency", "sector")


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _shown(figure: dict[str, Any], name: str) -> float | None:
    """A figure's number as published (2 decimals, half up): its `<name>_display` string, or,
    in snapshots made before numbers were JSON numbers, the field itself (then a string)."""
    return _number(figure.get(f"{name}_display", figure[name]))


def published(figure: dict[str, Any], name: str) -> Decimal | None:
    """A snapshot figure as published, 2 decimals half up (`<name>_display`; in snapshots
    made before numbers were JSON numbers, the field itself held that string). Public pages,
    plans and the reform report show and compare these, as the report does."""
    shown = figure.get(f"{name}_display", figure.get(name))
    return None if shown is None else Decimal(str(shown))


def _count(value: Any) -> int | float | None:
    """Counts as integers (a weighted count that is not whole stays a decimal)."""
    if value is None:
        return None
    number = float(value)
    return int(number) if number.is_integer() else number


def _rows(breakdown: str, cell: dict[str, Any], codes: dict[str, str]) -> list[list[Any]]:
    out: list[list[Any]] = []
    key = str(cell["key"])

    def walk(node: dict[str, Any] | None) -> None:
        if node is None:
            return
        out.append(
            [
                breakdown,
                codes.get(key, key),
                cell["label"],
                _count(cell["n_respondents"]),
                node["id"],
                node["kind"],
                node["label_vi"],
                _shown(node, "value"),
                _shown(node, "ci_low"),
                _shown(node, "ci_high"),
                _count(node["n"]),
                bool(node["low_reliability"]),
                bool(node["suppressed"]),
                node.get("exact"),
            ]
        )
        for child in node["children"]:
            walk(child)

    walk(cell.get("index"))
    return out


def table(content: dict[str, Any], codes: dict[str, str] | None = None) -> list[list[Any]]:
    codes = codes or {}
    rows = _rows("total", content["total"], codes)
    for breakdown, cells in content["breakdowns"].items():
        for cell in cells:
            rows.extend(_rows(breakdown, cell, codes))
    return rows


def coded_keys(content: dict[str, Any]) -> dict[str, set[uuid.UUID]]:
    """The row ids that key the cells of the agency and sector breakdowns."""
    keys: dict[str, set[uuid.UUID]] = {}
    for breakdown in CODED_BREAKDOWNS:
        for cell in content["breakdowns"].get(breakdown, []):
            try:
                keys.setdefault(breakdown, set()).add(uuid.UUID(str(cell["key"])))
            except ValueError:
                continue
    return keys


def _decimals(value: Any) -> Any:
    return f"{value:.2f}" if isinstance(value, float) else value


def to_csv(content: dict[str, Any], codes: dict[str, str] | None = None) -> bytes:
    """UTF-8 with a BOM, so Excel opens the Vietnamese text correctly. One row per cell and
    index node, one column per measure: values to 2 decimals (`value_exact` unrounded), counts
    as integers, flags as 1 and 0, agencies and sectors by code; text neutralised."""
    return tabular.csv_bytes(
        COLUMNS,
        (
            [*row[:7], *(_decimals(v) for v in row[7:10]), *row[10:]]
            for row in table(content, codes)
        ),
    )


def to_xlsx(content: dict[str, Any], codes: dict[str, str] | None = None) -> bytes:
    """One sheet per breakdown (and per ranking), Vietnamese headings, numbers as numbers, text
    as string cells (never formulas)."""
    codes = codes or {}
    book = Workbook()
    book.remove(book.worksheets[0])
    first = book.create_sheet("Tổng hợp")
    sheets = [(first, "total", [content["total"]])]
    for breakdown, cells in content["breakdowns"].items():
        sheets.append(
            (book.create_sheet(BREAKDOWNS.get(breakdown, breakdown)[:31]), breakdown, cells)
        )
    for sheet, breakdown, cells in sheets:
        tabular.xlsx_append(sheet, HEADINGS_VI)
        for cell in cells:
            for row in _rows(breakdown, cell, codes):
                row[5] = KINDS_VI.get(row[5], row[5])
                row[11] = "Có" if row[11] else "Không"
                row[12] = "Có" if row[12] else "Không"
                tabular.xlsx_append(sheet, row)
        for column in ("H", "I", "J"):
            for c in sheet[column][1:]:
                c.number_format = "0.00"
    for level, rows in content["rankings"].items():
        sheet = book.create_sheet(f"Xếp hạng {level}"[:31])
        tabular.xlsx_append(
            sheet,
            [
                "Hạng",
                "Mã đơn vị",
                "Tên đơn vị",
                "Giá trị (%)",
                "Cận dưới 95%",
                "Cận trên 95%",
                "Số phiếu",
                "Phân biệt được với đơn vị sau",
            ],
        )
        for r in rows:
            tabular.xlsx_append(
                sheet,
                [
                    r["rank"],
                    r["agency_code"],
                    r["agency_name"],
                    _shown(r, "value"),
                    _shown(r, "ci_low"),
                    _shown(r, "ci_high"),
                    _count(r["n_respondents"]),
                    {True: "Có", False: "Không", None: ""}[r["distinguishable_from_next"]],
                ],
            )
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def canonical(content: Any) -> bytes:
    """Canonical JSON (sorted keys, no spaces, UTF-8): what the snapshot's ETag hashes."""
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def to_json(content: dict[str, Any], codes: dict[str, str] | None = None) -> bytes:
    """The snapshot as stored, in canonical JSON."""
    return canonical(content)
