"""Property-based run over ``/openapi.json`` with Schemathesis, in-process, with real credentials.

Every operation gets a bounded number of generated requests (Hypothesis, derandomized: the same
examples every run), made with the credential its security scheme names — a fresh login token
or tenant API key per example, since some operations spend theirs (logout, key rotation), and
the operator key. Each answer must not be a server error, must have a status the operation
documents, and must conform to the schema declared for that status.

Hypothesis drives synchronous test functions, so each operation's run goes in a worker thread
that hands every request to the app's own event loop (the app, its database pool and its hub
live there).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from server.app import create_app
from server.settings import Settings
from tests.support.inprocess import StudioApi, TenantKey
from tests.support.openapi_ops import CALLERS
from tests.support.resources import fresh_key

settings.register_profile(
    "prompt-studio-api",
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PROFILE = settings.get_profile("prompt-studio-api")
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
REQUEST_TIMEOUT = 30.0
#: Operations left out, and why.
EXCLUDED = {
    # Follows a compose job until it ends; with ids that exist it long-polls by design.
    "GET /api/compose/{run_id}/events": "server-sent events until the job ends",
}


def _schema() -> Any:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:", operator_key="k" * 32))
    return schemathesis.openapi.from_dict(app.openapi())


SCHEMA = _schema()
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}


@pytest.fixture(scope="module")
async def tenant(api: StudioApi) -> TenantKey:
    """The tenant every generated request acts in."""
    return await api.tenant("property-run")


def _caller(operation: Any) -> str:
    names = [name for item in operation.definition.raw.get("security", []) for name in item]
    return CALLERS[names[0]]


async def _headers(api: StudioApi, caller: str, tenant: TenantKey) -> dict[str, str]:
    if caller == "user":
        return (await api.account("Prop", tenant_id=tenant.tenant_id)).headers
    if caller == "tenant":
        return (await fresh_key(api, tenant.tenant_id)).headers
    return api.operator_headers


async def _send(api: StudioApi, case: Any, caller: str, tenant: TenantKey) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=str(api.client.base_url))
    kwargs.pop("cookies", None)  # the generated (random) login cookie
    if isinstance(kwargs.get("data"), bytes | str):
        kwargs["content"] = kwargs.pop("data")  # raw bodies (e.g. a JSON null) go as content
    kwargs["headers"] = {**kwargs["headers"], **await _headers(api, caller, tenant)}
    async with asyncio.timeout(REQUEST_TIMEOUT):
        return await api.client.request(**kwargs)


@pytest.mark.parametrize("api", ["sqlite"], indirect=True)
@pytest.mark.parametrize("label", [label for label in OPERATIONS if label not in EXCLUDED])
async def test_generated_requests_get_documented_answers(
    api: StudioApi, tenant: TenantKey, label: str
) -> None:
    """No 5xx, every status documented, every answer in the schema declared for its status."""
    operation = OPERATIONS[label]
    caller = _caller(operation)
    loop = asyncio.get_running_loop()

    @PROFILE
    @given(case=operation.as_strategy())
    def examples(case: Any) -> None:
        response = asyncio.run_coroutine_threadsafe(_send(api, case, caller, tenant), loop)
        case.validate_response(response.result(REQUEST_TIMEOUT + 5), checks=CHECKS)

    await asyncio.to_thread(examples)
