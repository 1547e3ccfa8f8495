"""``/docs`` and ``/redoc`` work without internet: their HTML names only same-origin URLs, every one
of which answers 200 without an API key (regression: FastAPI's default pages load from a CDN)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from _api_helpers import make_settings
from fastapi.testclient import TestClient

from cadenza.api.app import create_app

URL_ATTRIBUTE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']|spec-url=["']([^"']+)["']""")


@pytest.fixture(scope="module")
def keyed_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("docs"), auth_enabled=True, admin_key="docs-admin")
    with TestClient(create_app(settings, start_workers=False)) as client:
        yield client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_same_origin_assets(keyed_client: TestClient, page: str) -> None:
    response = keyed_client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    urls = [next(filter(None, groups)) for groups in URL_ATTRIBUTE.findall(response.text)]
    assert len(urls) >= 2, response.text  # a script and the OpenAPI document at least
    assert not re.search(r"https?://", response.text), "the page names an absolute URL"
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = keyed_client.get(url)  # no API key: the docs and their assets are public
        assert asset.status_code == 200, (url, asset.status_code)
        assert len(asset.content) > 100, url


def test_swagger_ui_does_not_call_the_online_validator(keyed_client: TestClient) -> None:
    assert '"validatorUrl": null' in keyed_client.get("/docs").text


def test_assets_need_no_key_but_other_paths_still_do(keyed_client: TestClient, tmp_path: Path) -> None:
    assert keyed_client.get("/docs/assets/swagger-ui.css").status_code == 200
    assert keyed_client.get("/v1/jobs").status_code == 401
    assert keyed_client.get("/docs/assets/../../v1/jobs").status_code in (401, 404)
