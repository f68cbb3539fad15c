"""The browser tests' harness: CI (SIPAS_REQUIRE_BROWSER=1) fails where a laptop skips."""

from __future__ import annotations

import pytest

from tests.browser.conftest import _missing


def test_a_missing_browser_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPAS_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="required"):
        _missing("no chromium")


def test_a_missing_browser_skips_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIPAS_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception):
        _missing("no chromium")
