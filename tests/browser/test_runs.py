"""The run panel in a browser: variables, a streamed answer, stopping, rating, provider errors.

The server's models are the fake OpenAI-compatible endpoint on loopback (``fake_llm``), whose
answer is ``Fake answer to: <the rendered prompt>``, one stream chunk per word.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.browser.pages import WAIT_MS, SessionPage, signed_in_context
from tests.support.accounts import Account
from tests.support.api import call, create_session
from tests.support.fake_openai import FakeOpenAI
from tests.support.server_process import ServerProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def _open(
    browser: Browser, server: ServerProcess, account: Account, text: str
) -> tuple[SessionPage, dict[str, object]]:
    session = await create_session(server, account, text, name="Runs")
    context = await signed_in_context(browser, server, account)
    page = await SessionPage.open(context, server, str(session["share_token"]))
    await expect(page.page.locator("#run-panel")).to_be_visible(timeout=WAIT_MS)
    await page.page.uncheck("#run-cache")
    # The first model offered is the built-in offline one; these runs go to the fake endpoint.
    await page.page.select_option("#run-model", "fake-small")
    return page, session


async def test_a_run_fills_variables_streams_the_answer_and_is_rated(
    browser: Browser, server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    page, session = await _open(browser, server, alice, "Translate {{phrase}} for {{ who }}.")
    try:
        inputs = page.page.locator("#run-variables textarea")
        await expect(inputs).to_have_count(2)
        await page.page.fill("textarea[data-variable='phrase']", "صباح الخير")
        await page.page.fill("textarea[data-variable='who']", "Ana")
        await page.page.select_option("#run-model", "fake-large")
        await page.page.click("#run-button")
        output = page.page.locator("#run-output")
        await expect(output).to_have_text("Fake answer to: Translate صباح الخير for Ana.")
        await expect(page.page.locator("#run-meta")).to_contain_text("fake-large · completed")
        await page.page.get_by_role("button", name="4 of 5").click()
        await expect(page.page.locator("#run-rated")).to_have_text("Rated 4 of 5. Thank you.")

        async def rated() -> bool:
            runs = (await call(server, alice, "GET", "/api/runs?limit=1")).json()["items"]
            return bool(runs) and [r["rating"] for r in runs[0]["ratings"]] == [4]

        await eventually(rated)
        (run,) = (await call(server, alice, "GET", "/api/runs?limit=1")).json()["items"]
        assert run["session_id"] == session["id"]
        assert run["model"] == "fake-large"
        # A new placeholder typed into the text gets its own input.
        await page.type_at_end(" Tone: {{tone}}")
        await expect(inputs).to_have_count(3)
    finally:
        await page.page.context.close()


async def test_the_answer_streams_in_and_can_be_stopped(
    browser: Browser, server: ServerProcess, team: list[Account], fake_llm: FakeOpenAI
) -> None:
    page, _ = await _open(browser, server, team[0], "one two three four five six seven")
    try:
        # The endpoint sends three words, then holds the stream open until the client leaves.
        fake_llm.fail_next("stall", after_chunks=3)
        await page.page.click("#run-button")
        output = page.page.locator("#run-output")
        await expect(output).to_have_text("Fake answer to:", timeout=WAIT_MS)
        await expect(page.page.locator("#run-stop")).to_be_visible()
        await page.page.click("#run-stop")
        await expect(page.page.locator("#run-meta")).to_have_text("Stopped.")
        await expect(page.page.locator("#run-button")).to_be_enabled()
        await expect(page.page.locator("#run-rating")).to_be_hidden()
    finally:
        await page.page.context.close()


async def test_a_provider_failure_is_shown_not_rated(
    browser: Browser, server: ServerProcess, team: list[Account], fake_llm: FakeOpenAI
) -> None:
    page, _ = await _open(browser, server, team[0], "hello")
    try:
        fake_llm.fail_next("server_error")
        await page.page.click("#run-button")
        await expect(page.page.locator("#run-panel .error")).not_to_be_empty(timeout=WAIT_MS)
        await expect(page.page.locator("#run-rating")).to_be_hidden()
        # The next run works again.
        await page.page.click("#run-button")
        await expect(page.page.locator("#run-output")).to_have_text("Fake answer to: hello")
        await expect(page.page.locator("#run-panel .error")).to_be_empty()
    finally:
        await page.page.context.close()
