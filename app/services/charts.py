"""Charts as SVG, made on the server: readable without JavaScript, fonts or anything fetched.

Every chart carries a <title> and a <desc> that says each figure in words, so a screen reader
(and a search engine) gets the numbers; the pages also show them in a table next to the chart.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from xml.sax.saxutils import escape

WIDTH = 480  # narrow, so the text stays readable on a 360 px phone
ROW = 48
MAX_LABEL = 52  # characters that fit the width at 16 px
TOP = 12
LEFT = 8
BAR_WIDTH = 380  # 100 % of the scale
INK = "#1a1a1a"
BAR = "#1f5a96"  # 7:1 against white
MUTED = "#595959"  # 7:1 against white
WHISKER = "#000000"


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: Decimal | None
    low: Decimal | None = None
    high: Decimal | None = None
    note: str = ""  # shown after the value, e.g. "độ tin cậy thấp"


def number(value: Decimal | float | None) -> str:
    """Vietnamese notation: a decimal comma, 2 decimals; an em dash for no value."""
    if value is None:
        return "—"
    return f"{Decimal(value):.2f}".replace(".", ",")


def _x(value: Decimal | None) -> float:
    return LEFT + BAR_WIDTH * float(value or 0) / 100


def bar_words(bar: Bar) -> str:
    if bar.value is None:
        return f"{bar.label}: không công bố"
    words = f"{bar.label}: {number(bar.value)}"
    if bar.low is not None and bar.high is not None:
        words += f" (khoảng tin cậy 95% từ {number(bar.low)} đến {number(bar.high)})"
    return words + (f", {bar.note}" if bar.note else "")


def interval_bars(
    title: str, bars: list[Bar], *, chart_id: str = "chart", fluid: bool = False
) -> str:
    """One horizontal bar per row on a 0–100 scale, its 95% interval as a whisker, the label
    above the bar and the value after it. `fluid`: as wide as its container (inline in a
    page); otherwise a fixed size (a standalone image)."""
    height = TOP + ROW * len(bars) + 24
    desc = "; ".join(bar_words(b) for b in bars) + "."
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        + ('width="100%" ' if fluid else f'width="{WIDTH}" height="{height}" ')
        + f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'font-family="sans-serif" font-size="16">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    for i, b in enumerate(bars):
        y = TOP + ROW * i
        heading = b.label + (f" ({b.note})" if b.note else "")
        if len(heading) > MAX_LABEL:  # the whole text is in <desc> and in the page's table
            heading = heading[: MAX_LABEL - 1].rstrip() + "…"
        parts.append(f'<text x="{LEFT}" y="{y + 14}" fill="{INK}">{escape(heading)}</text>')
        if b.value is None:
            parts.append(
                f'<text x="{LEFT}" y="{y + 32}" fill="{MUTED}">không công bố (quá ít phiếu)</text>'
            )
            continue
        parts.append(
            f'<rect x="{LEFT}" y="{y + 22}" width="{_x(b.value) - LEFT:.1f}" height="18" '
            f'fill="{BAR}"/>'
        )
        if b.low is not None and b.high is not None:
            lo, hi, mid = _x(b.low), _x(b.high), y + 31
            parts.append(
                f'<path d="M{lo:.1f} {mid}H{hi:.1f}M{lo:.1f} {mid - 6}V{mid + 6}'
                f'M{hi:.1f} {mid - 6}V{mid + 6}" stroke="{WHISKER}" stroke-width="2" '
                'fill="none"/>'
            )
        x = max(_x(b.high), _x(b.value)) + 6
        parts.append(f'<text x="{x:.1f}" y="{y + 37}" fill="{INK}">{number(b.value)}</text>')
    axis = TOP + ROW * len(bars) + 4
    parts.append(f'<path d="M{LEFT} {axis}H{LEFT + BAR_WIDTH}" stroke="{MUTED}"/>')
    for tick in (0, 50, 100):
        x = LEFT + BAR_WIDTH * tick / 100
        anchor = "start" if tick == 0 else "end" if tick == 100 else "middle"
        parts.append(
            f'<text x="{x:.0f}" y="{axis + 16}" fill="{MUTED}" font-size="13" '
            f'text-anchor="{anchor}">{tick}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def badge(label: str, value: Decimal | None, caption: str) -> str:
    """A small image for an agency's own portal: its current index and the campaign."""
    shown = number(value)
    text = f"{label}: {shown} — {caption}"
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 320 56" width="320" height="56" '
        'role="img" aria-labelledby="badge-title" font-family="sans-serif">'
        f'<title id="badge-title">{escape(text)}</title>'
        f'<rect width="320" height="56" rx="6" fill="{BAR}"/>'
        f'<text x="12" y="22" fill="#ffffff" font-size="13">{escape(label)}</text>'
        f'<text x="12" y="46" fill="#ffffff" font-size="22" font-weight="bold">{shown}</text>'
        f'<text x="308" y="46" fill="#ffffff" font-size="12" text-anchor="end">'
        f"{escape(caption)}</text></svg>"
    )
