"""``GET /metrics`` in-process: HTTP requests by route template, live values, and its switches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from prometheus_client.parser import text_string_to_metric_families

from server.hub.registry import Hub
from server.metrics import AppMetrics
from tests.support.inprocess import StudioApi
from tests.support.server_process import free_port

MakeApi = Callable[..., AbstractAsyncContextManager[StudioApi]]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(api: StudioApi) -> tuple[str, Samples]:
    response = await api.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return response.text, samples


def _requests(samples: Samples, route: str, method: str, status: str) -> float:
    labels = (("method", method), ("route", route), ("status", status))
    return samples.get(("prompt_studio_http_requests_total", labels), 0.0)


async def test_requests_are_counted_by_route_template_never_by_raw_path(make_api: MakeApi) -> None:
    async with make_api() as api:
        ana = await api.account()
        created = await api.call("POST", "/api/prompts", ana, json={"name": "P"})
        assert created.status_code == 201, created.text
        prompt_id = created.json()["id"]
        assert (await api.call("GET", f"/api/prompts/{prompt_id}", ana)).status_code == 200
        unknown = "0" * 8 + "-0000-0000-0000-" + "0" * 12
        assert (await api.call("GET", f"/api/prompts/{unknown}", ana)).status_code == 404
        secret = "pst_" + "s3cr3t" * 6
        stray = await api.client.get(f"/no/such/{secret}?token={secret}")
        assert stray.status_code == 404
        text, samples = await _scrape(api)
    assert _requests(samples, "/api/prompts", "POST", "201") == 1
    assert _requests(samples, "/api/prompts/{prompt_id}", "GET", "200") == 1
    assert _requests(samples, "/api/prompts/{prompt_id}", "GET", "404") == 1
    assert _requests(samples, "unmatched", "GET", "404") == 1
    for leaked in (prompt_id, unknown, secret, ana.token, "/no/such"):
        assert leaked not in text


async def test_odd_methods_share_one_label(make_api: MakeApi) -> None:
    async with make_api() as api:
        response = await api.client.request("BREW", "/healthz")
        assert response.status_code == 405
        _, samples = await _scrape(api)
    assert _requests(samples, "/healthz", "other", "405") == 1
    assert not any("BREW" in str(key) for key in samples)


async def test_live_values_follow_the_hub_and_the_history_writer(make_api: MakeApi) -> None:
    async with make_api() as api:
        _, before = await _scrape(api)
        hub: Hub = api.services.hub
        hub.traffic.inbound["json", "op"] += 3
        hub.writer.backlog.add(7, 700)
        _, during = await _scrape(api)
        hub.writer.backlog.remove(7, 700)
        _, after = await _scrape(api)
    inbound = ("prompt_studio_messages_in_total", (("protocol", "json"), ("type", "op")))
    assert before.get(inbound, 0.0) == 0 and during[inbound] == 3
    assert during[("prompt_studio_history_backlog_edits", ())] == 7
    assert during[("prompt_studio_history_backlog_bytes", ())] == 700
    assert after[("prompt_studio_history_backlog_edits", ())] == 0
    assert during[("prompt_studio_rooms_loaded", ())] == 0
    assert ("prompt_studio_db_pool_in_use", ()) in during
    assert during[("prompt_studio_broker_published_total", ())] == 0


async def test_each_app_has_its_own_registry(make_api: MakeApi) -> None:
    async with make_api() as first, make_api() as second:
        await first.client.get("/healthz")
        await first.client.get("/healthz")
        await second.client.get("/healthz")
        _, one = await _scrape(first)
        _, two = await _scrape(second)
    assert _requests(one, "/healthz", "GET", "200") == 2
    assert _requests(two, "/healthz", "GET", "200") == 1


def test_nothing_live_is_collected_before_the_app_starts() -> None:
    text = AppMetrics().render().decode()
    assert "prompt_studio_http_requests" in text
    assert "prompt_studio_connections" not in text


async def test_the_endpoint_can_be_turned_off(make_api: MakeApi) -> None:
    async with make_api(metrics_enabled=False) as api:
        assert (await api.client.get("/metrics")).status_code == 404


async def _raw_get(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_metrics_on_their_own_port_and_not_on_the_main_one(make_api: MakeApi) -> None:
    port = free_port()
    async with make_api(metrics_port=port) as api:
        assert (await api.client.get("/metrics")).status_code == 404
        await api.client.get("/healthz")
        answer = await _raw_get(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b'prompt_studio_http_requests_total{method="GET",route="/healthz"' in body
        assert (await _raw_get(port, b"GET /other HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
        assert (await _raw_get(port, b"POST /metrics HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 404")
        # A head over the bound, or garbage with no end, gets nothing and is closed.
        assert await _raw_get(port, b"GET /metrics?" + b"a" * 10_000 + b"\r\n\r\n") == b""


async def test_the_app_echoes_a_request_id_on_every_response(make_api: MakeApi) -> None:
    async with make_api() as api:
        kept = await api.client.get("/api/prompts", headers={"X-Request-ID": "trace-7"})
        assert kept.status_code == 401  # even an error response carries it
        assert kept.headers["x-request-id"] == "trace-7"
        odd = "bad id\u00e9".encode()
        fresh = await api.client.get("/healthz", headers={"X-Request-ID": odd})
        assert len(fresh.headers["x-request-id"]) == 32


def _head_of(size: int) -> bytes:
    """A ``GET /metrics`` request head of exactly ``size`` bytes (padded in a header)."""
    start, end = b"GET /metrics HTTP/1.1\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"p" * (size - len(start) - len(end)) + end


async def test_the_metrics_port_bounds_the_request_head(make_api: MakeApi) -> None:
    port = free_port()
    async with make_api(metrics_port=port, metrics_max_head_bytes=256) as api:
        assert api.settings.metrics_max_head_bytes == 256
        assert (await _raw_get(port, _head_of(256))).startswith(b"HTTP/1.1 200")
        assert await _raw_get(port, _head_of(257)) == b""


async def test_the_metrics_port_drops_a_head_that_never_ends(make_api: MakeApi) -> None:
    port = free_port()
    async with make_api(metrics_port=port, head_timeout_seconds=0.2):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /metrics HTTP/1.1\r\n")  # and nothing more
            await writer.drain()
            async with asyncio.timeout(10):
                assert await reader.read() == b""
        finally:
            writer.close()
