"""``/docs`` and ``/redoc`` render in headless Chromium with every non-loopback request sent to a dead
proxy (no internet): the rendered DOM holds the operations of the live server's OpenAPI document. Under their
Content-Security-Policy (Playwright, recording violations) Swagger UI renders and runs "Try it out" with no
violation at all, and ReDoc renders with none but the blocked Redocly logo from its CDN."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conftest import Server, chromium_path, record_csp_violations  # noqa: E402


def _render(chromium: str, url: str, profile: Path) -> str:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--proxy-server=http://127.0.0.1:9",  # nothing listens there: any outside request fails;
        # loopback (the server under test) bypasses a proxy by default in Chromium
        "--virtual-time-budget=30000",  # let the page's scripts run and fetch /openapi.json
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize(("page", "rendered"), [("/docs", "opblock"), ("/redoc", "operation/submit_drums")])
def test_docs_render_without_network(server: Server, tmp_path: Path, page: str, rendered: str) -> None:
    dom = _render(chromium_path(), server.base_url + page, tmp_path / "profile")
    assert rendered in dom, dom[:2000]
    assert "/v1/drums" in dom


@pytest.fixture(scope="module")
def browser() -> Iterator:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


def _open(browser, server: Server, path: str, foreign: list[str], violations: list[str]):
    """``path`` in a new page: requests to other origins aborted and added to ``foreign``, CSP violations added to
    ``violations``; the page's policy runs only scripts of the server."""
    page = browser.new_page()
    page.set_default_timeout(120_000)
    record_csp_violations(page, violations)

    def route(route) -> None:
        if route.request.url.startswith((server.base_url, "blob:", "data:")):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    page.route("**/*", route)
    response = page.goto(server.base_url + path)
    directives = [directive.split() for directive in response.headers["content-security-policy"].split(";")]
    assert ["script-src", "'self'"] in directives
    return page


def test_swagger_ui_runs_under_its_csp(browser, server: Server) -> None:
    foreign: list[str] = []
    violations: list[str] = []
    page = _open(browser, server, "/docs", foreign, violations)
    page.wait_for_selector(".opblock")
    styles = page.locator(".opblock:has(.opblock-summary-path[data-path='/v1/styles'])").first
    styles.locator(".opblock-summary").click()
    styles.locator(".try-out__btn").click()
    styles.locator(".execute").click()  # "Try it out": fetch from the page, connect-src 'self'
    answer = styles.locator(".live-responses-table tbody tr.response").first
    answer.wait_for()
    assert answer.locator(".response-col_status").inner_text().strip() == "200"
    assert "J Dilla" in answer.inner_text()  # the styles, read by the page
    assert foreign == [] and violations == []
    page.close()


def test_redoc_renders_under_its_csp(browser, server: Server) -> None:
    foreign: list[str] = []
    violations: list[str] = []
    page = _open(browser, server, "/redoc", foreign, violations)
    page.wait_for_selector("[id='operation/submit_drums']")
    page.fill("input.search-input", "drums")  # its search index (a blob: worker where it can)
    page.wait_for_selector("[data-role='search:results'] [data-item-id='tag/drums/operation/submit_drums']")
    # ReDoc's sidebar always shows Redocly's logo from its CDN: blocked (img-src 'self'), nothing else is
    assert all("cdn.redoc.ly" in violation for violation in violations), violations
    assert all("cdn.redoc.ly" in url for url in foreign), foreign
    page.close()
