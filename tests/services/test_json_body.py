"""Request bodies read by orjson mean what the standard library reads them as."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.json_body import parse_json

TEXT = st.text(alphabet=st.sampled_from('aăđêơưÁạ1234567890 "\\/\n\t\u0000\U0001f600'), max_size=25)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


def same(a: object, b: object) -> bool:
    """Equal as JSON values, NaN included, and of the same Python types (1 is not 1.0)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) and repr(a) == repr(b)


@settings(max_examples=400, deadline=None)
@given(value=VALUES, ascii_only=st.booleans())
def test_a_body_parses_to_the_standard_librarys_value(value: object, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert same(parse_json(body), json.loads(body))


@pytest.mark.parametrize(
    "body",
    [
        b"123456789012345678901234567890",  # orjson would read a float
        b'{"n": -99999999999999999999}',
        b'{"code": "12345678901234567890"}',  # a long digit run inside a string
        b"1e400",  # orjson refuses infinity
        b"[NaN, Infinity, -Infinity]",
        b'"\\ud800"',  # a lone surrogate: refused later with its pointer, not here
        b'{"a": 1, "a": 2}',
    ],
)
def test_the_inputs_where_the_parsers_differ(body: bytes) -> None:
    assert same(parse_json(body), json.loads(body))


@pytest.mark.parametrize("body", [b"[1,]", b"{", b'{"a" 1}', b"\xff", b"", b"[1] x"])
def test_malformed_text_fails_as_the_standard_library_fails(body: bytes) -> None:
    """The same exception, message and position (not UTF-8 is a UnicodeDecodeError)."""
    with pytest.raises(ValueError) as ours:  # noqa: PT011 - the type is compared below
        parse_json(body)
    with pytest.raises(ValueError) as theirs:  # noqa: PT011
        json.loads(body)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value) == str(theirs.value)
