"""Security headers on HTML and JSON answers, and CORS on ``/api`` from the allowed origins."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest

from server.security_headers import DOCS_CSP, PAGE_CSP, SWAGGER_CDN
from tests.support.inprocess import StudioApi

MakeApi = Callable[..., AbstractAsyncContextManager[StudioApi]]

PARTNER = "https://partner.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization,content-type",
}


def assert_common(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


async def test_json_answers_carry_the_headers_and_are_never_cached(api: StudioApi) -> None:
    ana = await api.account("Ana")
    ok = await api.call("GET", "/api/me", ana)
    refused = await api.call("GET", "/api/me")  # 401, from the error handler
    missing = await api.call("GET", "/api/sessions/no-such-session", ana)
    malformed = await api.call("POST", "/api/sessions", ana, content=b"{not json")
    assert [r.status_code for r in (ok, refused, missing, malformed)] == [200, 401, 404, 400]
    for response in (ok, refused, missing, malformed):
        assert_common(response)
        assert response.headers["cache-control"] == "no-store"
        assert "content-security-policy" not in response.headers  # JSON, not a page
    probe = await api.call("GET", "/healthz")
    assert_common(probe)
    assert "cache-control" not in probe.headers  # only /api answers are marked no-store


async def test_pages_keep_their_policy_and_the_docs_get_one_for_swagger(api: StudioApi) -> None:
    for path in ("/", "/s/some-share-token", "/prompts"):
        page = await api.call("GET", path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert_common(page)
        assert page.headers["content-security-policy"] == PAGE_CSP
        assert "connect-src 'self'" in PAGE_CSP and "script-src 'self'" in PAGE_CSP
        assert page.headers["cache-control"] == "no-cache"  # the page's own, not replaced
    docs = await api.call("GET", "/docs")
    assert docs.status_code == 200
    assert_common(docs)
    assert docs.headers["content-security-policy"] == DOCS_CSP
    # The Swagger UI bundle the docs page loads is admitted by its policy.
    assert f"{SWAGGER_CDN}/npm/swagger-ui-dist" in docs.text and SWAGGER_CDN in DOCS_CSP
    asset = await api.call("GET", "/static/does-not-exist.js")
    assert asset.status_code == 404
    assert_common(asset)


async def test_by_default_no_cors_headers_are_given_to_any_origin(api: StudioApi) -> None:
    ana = await api.account("Ana")
    preflight = await api.call("OPTIONS", "/api/sessions", headers={"Origin": PARTNER, **PREFLIGHT})
    assert "access-control-allow-origin" not in preflight.headers
    read = await api.call("GET", "/api/me", ana, headers={"Origin": PARTNER})
    assert read.status_code == 200
    assert "access-control-allow-origin" not in read.headers


async def test_listed_origins_get_cors_with_credentials_and_others_nothing(
    make_api: MakeApi,
) -> None:
    async with make_api(allowed_origins=(PARTNER, "http://localhost:5173")) as api:
        ana = await api.account("Ana")
        preflight = await api.call(
            "OPTIONS", "/api/sessions", headers={"Origin": PARTNER, **PREFLIGHT}
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == PARTNER
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        allowed_headers = preflight.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed_headers and "content-type" in allowed_headers
        assert_common(preflight)  # the preflight answer is a response like any other

        read = await api.call("GET", "/api/me", ana, headers={"Origin": PARTNER})
        assert read.status_code == 200
        assert read.headers["access-control-allow-origin"] == PARTNER
        assert read.headers["access-control-allow-credentials"] == "true"
        assert "origin" in read.headers["vary"].lower()

        for stranger in ("https://evil.example", "https://partner.example:8443", "null"):
            refused = await api.call(
                "OPTIONS", "/api/sessions", headers={"Origin": stranger, **PREFLIGHT}
            )
            assert refused.status_code == 400
            assert "access-control-allow-origin" not in refused.headers
            read = await api.call("GET", "/api/me", ana, headers={"Origin": stranger})
            assert "access-control-allow-origin" not in read.headers

        # Only /api takes part in CORS: the probes and pages are not offered to other origins.
        probe = await api.call("GET", "/healthz", headers={"Origin": PARTNER})
        assert "access-control-allow-origin" not in probe.headers


async def test_any_origin_gets_cors_but_never_with_credentials(make_api: MakeApi) -> None:
    async with make_api(allowed_origins=("*",)) as api:
        ana = await api.account("Ana")
        preflight = await api.call(
            "OPTIONS", "/api/sessions", headers={"Origin": PARTNER, **PREFLIGHT}
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in preflight.headers
        read = await api.call("GET", "/api/me", ana, headers={"Origin": "https://any.example"})
        assert read.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in read.headers


@pytest.mark.parametrize("path", ["/api", "/api/", "/api/me"])
async def test_every_api_path_is_no_store_even_unknown_ones(api: StudioApi, path: str) -> None:
    response = await api.call("GET", path)
    assert response.status_code in {401, 404}
    assert response.headers["cache-control"] == "no-store"
    assert_common(response)
