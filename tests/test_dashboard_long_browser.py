"""The "Long documents" page served by a real Streamlit server and drawn by a real headless Chromium.

Needs Debian's /usr/bin/chromium and the ``playwright`` Python package, like
tests/test_dashboard_browser.py (whose server and browser helpers this reuses). The run is written by
tests/support/long_run_factory.py, with a key sentence holding ``<script>`` and ``<b>`` markup.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.long_run_factory import MARKUP_KEY, MARKUP_TEXT, write_long_run

pytestmark = pytest.mark.slow

if not Path("/usr/bin/chromium").exists():
    pytest.skip(
        "/usr/bin/chromium is absent; install it with `apt-get install -y chromium chromium-driver`",
        allow_module_level=True,
    )
pytest.importorskip("playwright.sync_api", reason="install the test extra: pip install playwright")

from playwright.sync_api import expect  # noqa: E402

from tests.test_dashboard_browser import (  # noqa: E402
    UI_TIMEOUT,
    browser_page,
    dashboard_server,
    expect_charts_drawn,
    expect_no_exception,
    open_page,
)

N_CHARTS = 6
"""Heat map, position curves, effective-context bars, attention by layer, identity swaps, segments."""


def test_long_documents_page_draws_its_charts(tmp_path: Path) -> None:
    folder = tmp_path / "long_runs"
    write_long_run(folder, markup=True)
    with dashboard_server(folder, tmp_path) as url, browser_page() as page:
        open_page(page, url, "Long documents", "long-documents")
        heat_map = expect_charts_drawn(page, N_CHARTS).first
        expect(page.locator('[data-testid="stMetric"]').first).to_contain_text("512 tokens")
        expect_no_exception(page)
        heat_map.scroll_into_view_if_needed()
        heat_map.screenshot(path=str(tmp_path / "long_heat_map.png"))

        # the markup key's document: its text shows as text inside the expander, nothing is parsed as HTML
        picker = page.get_by_role("combobox", name="Document", exact=True)
        picker.scroll_into_view_if_needed()
        picker.click()
        page.get_by_role("option", name=re.compile(f"^{MARKUP_KEY}-512")).click()
        page.get_by_text("Document text, coloured by segment").click()
        text = page.locator('[data-testid="stHtml"] .probelens-text')
        expect(text).to_contain_text(MARKUP_TEXT, timeout=UI_TIMEOUT)
        expect(page.locator('[data-testid="stHtml"] script, [data-testid="stHtml"] b')).to_have_count(0)
        expect_no_exception(page)
        shot = tmp_path / "long_documents.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
