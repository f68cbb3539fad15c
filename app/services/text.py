"""Text rules: NFC everywhere, and a folded form for diacritic-insensitive search."""

from __future__ import annotations

import unicodedata

# Letters that do not decompose into a base letter plus marks.
_SPECIAL = str.maketrans({"đ": "d", "Đ": "d"})


def fold(text: str) -> str:
    """Lower case, without diacritics, blanks collapsed: 'Sơn Dương' -> 'son duong'."""
    decomposed = unicodedata.normalize("NFD", text.translate(_SPECIAL))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())
