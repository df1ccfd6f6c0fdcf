"""The dashboard served by a real Streamlit server on 127.0.0.1, driven by a real headless Chromium.

Needs Debian's /usr/bin/chromium (``apt-get install -y chromium chromium-driver``) and the
``playwright`` Python package (no ``playwright install``: the system Chromium is used).
The main walk uses a run made by the real CLI; the markup test writes its own run with
tests/support/run_factory.py (a probe text holding ``<script>`` and ``<b>``).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dashboard.data import list_runs
from dashboard.launch import streamlit_command
from tests.support.run_factory import MARKUP_INSTANCE, write_run

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START_TIMEOUT = 90.0  # seconds for the server to answer its health check (shared CPUs)
UI_TIMEOUT = 60_000  # milliseconds for an element to appear

if not CHROMIUM.exists():
    pytest.skip(
        "/usr/bin/chromium is absent; install it with `apt-get install -y chromium chromium-driver`",
        allow_module_level=True,
    )
pytest.importorskip("playwright.sync_api", reason="install the test extra: pip install playwright")

from playwright.sync_api import Locator, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture
def runs_dir(cli_run_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the runs folder the real CLI made (tests/conftest.py's ``cli_run_dir``)."""
    copy = tmp_path / "runs"
    shutil.copytree(cli_run_dir, copy)
    return copy


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def dashboard_server(runs_dir: Path, workdir: Path) -> Iterator[str]:
    """Start ``streamlit_command`` (from another working directory) and yield its base URL."""
    port = free_port()
    log_path = workdir / "streamlit.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
    env.pop("PROBELENS_RUNS_DIR", None)
    with log_path.open("w") as log:
        server = subprocess.Popen(
            streamlit_command(runs_dir, port), cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if server.poll() is not None:
                    pytest.fail(f"streamlit exited with {server.returncode}:\n{log_path.read_text()}")
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                        if answer.read().strip() == b"ok":
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not answer within {START_TIMEOUT} s:\n{log_path.read_text()}")
                time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=15)


@contextmanager
def browser_page() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def expect_no_exception(page: Page) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def open_page(page: Page, url: str, title: str, url_path: str) -> None:
    """From the Runs page to a page of the sidebar, with the run in its URL."""
    page.goto(url)
    expect(page.get_by_role("heading", name="Runs")).to_be_visible(timeout=UI_TIMEOUT)
    page.locator('[data-testid="stSidebarNavLink"]', has_text=title).click()
    expect(page.get_by_role("heading", name=title)).to_be_visible(timeout=UI_TIMEOUT)
    page.wait_for_url(re.compile(rf"/{url_path}\?run="), timeout=UI_TIMEOUT)


def expect_charts_drawn(page: Page, n_charts: int) -> Locator:
    """Every chart of the page draws (the first one at a readable size); returns the charts."""
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    drawing = charts.first.locator("canvas, svg").first
    expect(drawing).to_be_visible(timeout=UI_TIMEOUT)
    box = drawing.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    expect(charts).to_have_count(n_charts, timeout=UI_TIMEOUT)
    for index in range(n_charts):
        chart = charts.nth(index)
        chart.scroll_into_view_if_needed()
        expect(chart.locator("canvas, svg").first).to_be_visible(timeout=UI_TIMEOUT)
    return charts


def test_runs_list_then_findings_forest_plot(runs_dir: Path, tmp_path: Path) -> None:
    run = list_runs(runs_dir)[0]
    with dashboard_server(runs_dir, tmp_path) as url, browser_page() as page:
        page.goto(url)
        expect(page.get_by_role("heading", name="Runs")).to_be_visible(timeout=UI_TIMEOUT)
        expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible(timeout=UI_TIMEOUT)
        expect(page.locator('[data-testid="stDataFrame"]').first).to_contain_text(run.model_name)
        expect(page.get_by_role("combobox", name="Run to explore")).to_have_value(
            re.compile(re.escape(run.run_id))
        )
        expect(page.locator('[data-testid="stSidebar"]')).to_contain_text(run.run_id)
        expect_no_exception(page)
        page.screenshot(path=str(tmp_path / "runs.png"), full_page=True)

        page.locator('[data-testid="stSidebarNavLink"]', has_text="Findings").click()
        expect(page.get_by_role("heading", name="Findings")).to_be_visible(timeout=UI_TIMEOUT)
        page.wait_for_url(re.compile(r"/findings\?run="), timeout=UI_TIMEOUT)
        chart = page.locator('[data-testid="stVegaLiteChart"]').first
        expect(chart).to_be_visible(timeout=UI_TIMEOUT)
        drawing = chart.locator("canvas, svg").first
        expect(drawing).to_be_visible(timeout=UI_TIMEOUT)
        box = drawing.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 50
        expect_no_exception(page)
        chart.scroll_into_view_if_needed()
        chart.screenshot(path=str(tmp_path / "forest_plot.png"))
        shot = tmp_path / "findings.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_probe_markup_shows_as_text_in_the_browser(tmp_path: Path) -> None:
    folder = tmp_path / "markup_runs"
    write_run(folder, markup_probe=True)
    with dashboard_server(folder, tmp_path) as url, browser_page() as page:
        page.goto(f"{url}/instances")
        expect(page.get_by_role("heading", name="Instances")).to_be_visible(timeout=UI_TIMEOUT)
        picker = page.locator('[data-testid="stSelectbox"]', has_text="Instance (largest")
        picker.locator("input").click()
        page.get_by_role("option", name=re.compile(f"^{MARKUP_INSTANCE}")).click()
        texts = page.locator('[data-testid="stHtml"] .probelens-text')
        expect(texts).to_have_count(3, timeout=UI_TIMEOUT)
        expect(texts.first).to_contain_text("<script>alert('x')</script>", timeout=UI_TIMEOUT)
        expect(texts.first).to_contain_text("a <b>bold</b> review")
        expect(page.locator('[data-testid="stHtml"] script, [data-testid="stHtml"] b')).to_have_count(0)
        expect_no_exception(page)
        page.screenshot(path=str(tmp_path / "instances.png"), full_page=True)
