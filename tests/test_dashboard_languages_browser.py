"""The "Languages" page served by a real Streamlit server and drawn by a real headless Chromium.

Needs Debian's /usr/bin/chromium and the ``playwright`` Python package, like
tests/test_dashboard_browser.py (whose server and browser helpers this reuses). The run is written by
tests/support/parallel_run_factory.py: the built-in multilingual texts in en (reference), de, ar and zh, with
markup in one English text. What is checked is what a reader sees: the Arabic text laid out right to
left (computed ``direction`` and where its first and last characters land), the English left to right,
the charts drawn, and markup shown as text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.parallel_run_factory import (
    LANGUAGES,
    MARKUP_INSTANCE,
    MARKUP_TAIL,
    RTL_LANGUAGE,
    write_parallel_run,
)

pytestmark = pytest.mark.slow

if not Path("/usr/bin/chromium").exists():
    pytest.skip(
        "/usr/bin/chromium is absent; install it with `apt-get install -y chromium chromium-driver`",
        allow_module_level=True,
    )
pytest.importorskip("playwright.sync_api", reason="install the test extra: pip install playwright")

from playwright.sync_api import Locator, expect  # noqa: E402

from tests.test_dashboard_browser import (  # noqa: E402
    UI_TIMEOUT,
    browser_page,
    dashboard_server,
    expect_charts_drawn,
    expect_no_exception,
    open_page,
)

N_CHARTS = 6
"""Parity, then tokens per word, tokens per character, unknown-token, byte-fallback and truncation rates."""

# Where the first and the last visible character of an element's text are drawn (left edges, pixels).
_EDGES = """element => {
    const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
    const chars = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (let i = 0; i < node.data.length; i++) {
            if (node.data[i].trim()) chars.push([node, i]);
        }
    }
    const left = ([node, i]) => {
        const range = document.createRange();
        range.setStart(node, i);
        range.setEnd(node, i + 1);
        return range.getBoundingClientRect().left;
    };
    return {first: left(chars[0]), last: left(chars[chars.length - 1]), count: chars.length};
}"""


def text_of(page: object, lang: str) -> Locator:
    """The side-by-side text element of one language."""
    return page.locator(f'[data-testid="stHtml"] .probelens-text[lang="{lang}"]')  # type: ignore[attr-defined]


def test_languages_page_draws_charts_and_runs_arabic_right_to_left(tmp_path: Path) -> None:
    folder = tmp_path / "parallel_runs"
    write_parallel_run(folder, markup=True)
    with dashboard_server(folder, tmp_path) as url, browser_page() as page:
        open_page(page, url, "Languages", "languages")
        parity = expect_charts_drawn(page, N_CHARTS).first
        expect(page.locator('[data-testid="stAlert"]').first).to_contain_text("zh")
        expect_no_exception(page)
        parity.scroll_into_view_if_needed()
        parity.screenshot(path=str(tmp_path / "parity.png"))

        # the side-by-side view: one text per language, Arabic laid out right to left
        for lang in LANGUAGES:
            expect(text_of(page, lang)).to_have_count(1, timeout=UI_TIMEOUT)
        arabic, english = text_of(page, RTL_LANGUAGE), text_of(page, "en")
        arabic.scroll_into_view_if_needed()
        expect(arabic).to_be_visible(timeout=UI_TIMEOUT)
        assert arabic.evaluate("e => getComputedStyle(e).direction") == "rtl"
        assert english.evaluate("e => getComputedStyle(e).direction") == "ltr"
        assert arabic.get_attribute("dir") == "rtl" and english.get_attribute("dir") == "auto"
        # the paragraph's direction decides where its end goes: the Arabic full stop lands left of the
        # first letter, the English one right of it
        edges = arabic.evaluate(_EDGES)
        assert edges["count"] > 10 and edges["last"] < edges["first"], edges
        edges = english.evaluate(_EDGES)
        assert edges["count"] > 10 and edges["last"] > edges["first"], edges

        expect_no_exception(page)
        table = page.locator('[data-testid="stHtml"] table.probelens-languages')
        table.scroll_into_view_if_needed()
        table.screenshot(path=str(tmp_path / "side_by_side.png"))

        # probe text is user data: markup in an English text shows as text, nothing is parsed as HTML
        picker = page.get_by_role("combobox", name=re.compile("^Instance"))
        picker.scroll_into_view_if_needed()
        picker.click()
        page.get_by_role("option", name=re.compile(f"^{MARKUP_INSTANCE}")).click()
        expect(english).to_contain_text(MARKUP_TAIL, timeout=UI_TIMEOUT)
        expect(
            page.locator('[data-testid="stHtml"] script, [data-testid="stHtml"] .probelens-text b')
        ).to_have_count(0)
        expect_no_exception(page)
        shot = tmp_path / "languages.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
