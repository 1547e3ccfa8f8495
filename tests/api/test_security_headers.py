"""Security headers: every response is ``nosniff`` and ``no-referrer``; the Studio page, its assets, ``/docs`` (with
its assets) and ``/redoc`` also send a strict Content-Security-Policy and ``X-Frame-Options: DENY``, and their HTML
holds nothing such a policy would block (inline scripts, event-handler or ``style`` attributes). Whether the pages
really run under it is for the browser tests (tests/e2e/test_studio_browser.py, test_docs_browser.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from _api_helpers import assert_problem, make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app
from cadenza.api.routes.studio import STUDIO_DIR, WAVESURFER_STYLE_HASH


@pytest.fixture(scope="module")
def keyed_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("headers"), auth_enabled=True, admin_key="headers-admin")
    with TestClient(create_app(settings, start_workers=False), raise_server_exceptions=False) as client:
        yield client


def directives(policy: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as ``{directive: [sources]}``."""
    parsed = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


PAGES = [
    "/",
    "/studio/studio.js",
    "/studio/studio.css",
    "/studio/vendor/wavesurfer.esm.js",
    "/docs",
    "/docs/assets/swagger-init.js",
    "/docs/assets/swagger-ui-bundle.js",
    "/redoc",
]


@pytest.mark.parametrize("path", PAGES)
def test_pages_and_their_assets_send_a_strict_policy(keyed_client: TestClient, path: str) -> None:
    response = keyed_client.get(path)  # no key: all public
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    policy = directives(response.headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]  # no inline script, no eval, no other origin
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert not any(source.startswith(("http:", "https:", "*")) for sources in policy.values() for source in sources)


def test_the_studio_allows_no_inline_style_but_wavesurfers(keyed_client: TestClient) -> None:
    policy = directives(keyed_client.get("/").headers["Content-Security-Policy"])
    assert policy["style-src"] == ["'self'", f"'{WAVESURFER_STYLE_HASH}'"]
    assert set(policy["media-src"]) == {"'self'", "blob:"}  # waveforms play blob: URLs
    assert set(policy["connect-src"]) == {"'self'", "blob:"}  # wavesurfer fetches them


@pytest.mark.parametrize(
    ("path", "status"),
    [("/health", 200), ("/v1/jobs", 401), ("/docs/assets/nothing-here.js", 404), ("/openapi.json", 200)],
)
def test_every_response_is_nosniff_and_no_referrer(keyed_client: TestClient, path: str, status: int) -> None:
    response = keyed_client.get(path)
    assert response.status_code == status
    if status >= 400:
        assert_problem(response, status)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


class _Markup(HTMLParser):
    """What a strict policy would block in a page: inline scripts, ``on*`` and ``style`` attributes, ``<style>``."""

    def __init__(self) -> None:
        super().__init__()
        self.blocked: list[str] = []
        self.data_blocks: list[str] = []
        self._in_data_block = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        self.blocked += [f"<{tag} {name}>" for name in names if name.startswith("on") or name == "style"]
        if tag == "script" and "src" not in names:
            if names.get("type") == "application/json":  # data, never run
                self._in_data_block = True
            else:
                self.blocked.append("<script> without src")
        if tag == "style":
            self.blocked.append("<style>")

    def handle_data(self, data: str) -> None:
        if self._in_data_block:
            self.data_blocks.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_data_block = False


@pytest.mark.parametrize("path", ["/", "/docs"])
def test_the_pages_have_nothing_inline(keyed_client: TestClient, path: str) -> None:
    markup = _Markup()
    markup.feed(keyed_client.get(path).text)
    assert markup.blocked == []


def test_swagger_ui_starts_from_a_file_with_its_settings_as_data(keyed_client: TestClient) -> None:
    markup = _Markup()
    markup.feed(keyed_client.get("/docs").text)
    (block,) = markup.data_blocks
    config = json.loads(block)
    assert config["url"] == "/openapi.json" and config["dom_id"] == "#swagger-ui"
    assert config["validatorUrl"] is None
    script = keyed_client.get("/docs/assets/swagger-init.js")
    assert script.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "swagger-ui-config" in script.text and "SwaggerUIBundle(" in script.text


def test_the_wavesurfer_hash_is_that_of_the_vendored_style() -> None:
    """The hash in the Studio's policy is the SHA-256 of the ``<style>`` text wavesurfer.js writes into a waveform's
    shadow root (a template literal in the vendored bundle) at the height studio.js asks for."""
    bundle = (STUDIO_DIR / "vendor" / "wavesurfer.esm.js").read_text()
    template = re.search(r"<style\$\{[^}]*\}[^}]*\}>(.*?)</style>", bundle, re.S)
    assert template is not None, "wavesurfer.js no longer writes a <style> element: drop the hash from the policy"
    height = re.search(r"WaveSurfer\.create\(\{[^}]*?height: (\d+)", (STUDIO_DIR / "studio.js").read_text())
    assert height is not None
    css = template.group(1).replace("${this.getHeight(this.options.height,this.options.splitChannels)}", height[1])
    assert "${" not in css, "the style has a new interpolation: compute its text for studio.js's options"
    text = css.encode().decode("unicode_escape")  # the template's \n escapes
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    assert f"sha256-{digest}" == WAVESURFER_STYLE_HASH
