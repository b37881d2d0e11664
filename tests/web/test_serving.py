"""A real server serves the committed bundle at ``/`` and ``/s/{share_token}``, and shadows nothing."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from migrations.runner import upgrade
from server.web import STATIC_DIR
from tests.support.server_process import running_server

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a real server process (on a fresh SQLite database)."""
    directory = Path(tmp_path_factory.mktemp("web"))
    url = f"sqlite+aiosqlite:///{directory / 'server.db'}"
    upgrade(url, "head")
    async with (
        running_server(url, directory) as server,
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):
        yield client


@pytest.mark.parametrize(
    "path",
    ["/", "/s/abcDEF123_-", "/s/%D9%85%D8%B1%D8%AD%D8%A8%D8%A7", "/prompts", "/p/0123abcd"],
)
async def test_the_single_page_answers_at_the_root_and_at_session_links(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.content == (STATIC_DIR / "index.html").read_bytes()
    assert response.headers["cache-control"] == "no-cache"
    # The share token is in the URL: it must not leak through the Referer header.
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert (await http.head(path)).status_code == 200


async def test_index_names_each_bundle_file_by_its_content_hash(http: httpx.AsyncClient) -> None:
    page = (STATIC_DIR / "index.html").read_text()
    referenced = re.findall(r'(?:src|href)="(/static/([\w.]+)\?v=([0-9a-f]{12}))"', page)
    assert {name for _, name, _ in referenced} == {"app.js", "app.css"}
    for url, name, digest in referenced:
        body = (STATIC_DIR / name).read_bytes()
        assert hashlib.sha256(body).hexdigest()[:12] == digest, f"{name} changed without index.html"
        response = await http.get(url)
        assert response.status_code == 200
        assert response.content == body
        assert "immutable" in response.headers["cache-control"]
    assert (
        (await http.get("/static/app.js"))
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )


@pytest.mark.parametrize(
    "path",
    [
        "/static/missing.js",
        "/static/../web.py",
        "/static/%2e%2e/web.py",
        "/s/",
        "/s/token/extra",
        "/index.html",
        "/sessions",
        "/p/",
        "/p/id/versions",
        "/prompts/x",
    ],
)
async def test_nothing_else_is_served(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 404, path
    assert b"def web_routes" not in response.content


async def test_the_api_probes_and_docs_are_not_shadowed(http: httpx.AsyncClient) -> None:
    unknown = await http.get("/api/no-such-endpoint")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/json")
    assert (await http.get("/api/me")).status_code == 401
    assert (await http.get("/healthz")).status_code == 200
    spec = await http.get("/openapi.json")
    assert spec.status_code == 200
    assert "/api/sessions" in spec.json()["paths"]
    docs = await http.get("/docs")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_the_page_routes_only_answer_reads(http: httpx.AsyncClient, method: str) -> None:
    for path in ("/", "/s/abc", "/prompts", "/p/abc"):
        assert (await http.request(method, path)).status_code == 405
