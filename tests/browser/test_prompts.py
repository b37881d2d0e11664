"""Prompts in the browser: publish a live session as a version, versions, labels and diffs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from tests.browser.pages import WAIT_MS, SessionPage, signed_in_context
from tests.support.accounts import Account
from tests.support.api import call, create_session, grant
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def _prompt_with_versions(
    server: ServerProcess, owner: Account, name: str, *texts: str
) -> dict[str, Any]:
    first, *rest = texts
    response = await call(
        server,
        owner,
        "POST",
        "/api/prompts",
        json={"name": name, "version": {"content": first, "message": "first"}},
    )
    assert response.status_code == 201, response.text
    prompt = dict(response.json())
    for number, text in enumerate(rest, start=2):
        saved = await call(
            server,
            owner,
            "POST",
            f"/api/prompts/{prompt['id']}/versions",
            json={"content": text, "message": f"change {number}"},
        )
        assert saved.status_code == 201, saved.text
    return prompt


async def test_publishing_a_session_makes_a_version_everyone_hears_about(
    browser: Browser, server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "Summarise {{ticket}}.", name="Triage")
    await grant(server, alice, session["id"], bob, "VIEWER")
    a_context = await signed_in_context(browser, server, alice)
    b_context = await signed_in_context(browser, server, bob)
    try:
        a = await SessionPage.open(a_context, server, session["share_token"])
        b = await SessionPage.open(b_context, server, session["share_token"])
        await a.type_at_end(" Be brief.")
        await b.wait_text("Summarise {{ticket}}. Be brief.")
        # A VIEWER cannot publish; the EDITOR+ panel is there for the owner.
        await expect(b.page.locator("#publish-panel")).to_be_hidden()
        panel = a.page.locator("#publish-panel")
        await expect(panel).to_be_visible(timeout=WAIT_MS)
        await a.page.select_option("#publish-prompt", "__new__")
        await a.page.fill("#publish-new-name", "Ticket triage")
        await a.page.fill("#publish-message", "brief answers")
        await a.page.click("#publish-button")
        await expect(a.page.locator("#session-notice")).to_contain_text("version 1 by you")
        await expect(b.page.locator("#session-notice")).to_contain_text(
            "version 1 by Alice", timeout=WAIT_MS
        )
        # Publishing again goes into the same prompt, now the session's own.
        await expect(a.page.locator("#publish-prompt")).to_contain_text("Ticket triage")
        await a.type_at_end(" Use bullet points.")
        await a.page.click("#publish-button")
        await expect(a.page.locator("#session-notice")).to_contain_text("version 2 by you")

        await a.page.get_by_role("link", name="see the versions").click()
        await expect(a.page).to_have_url(re.compile(r"/p/[^/]+$"))
        await expect(a.page.locator("#prompt-title")).to_have_text("Ticket triage")
        versions = a.page.locator("#prompt-versions .version")
        await expect(versions).to_have_count(2)
        await versions.filter(has_text="brief answers").get_by_role("button").click()
        await expect(a.page.locator("#version-text")).to_have_text(
            "Summarise {{ticket}}. Be brief."
        )
    finally:
        await a_context.close()
        await b_context.close()


async def test_labels_and_the_diff_between_two_versions(
    browser: Browser, server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    prompt = await _prompt_with_versions(
        server, alice, "Greeter", "Hello {{name}}.\nBe kind.", "Hello {{name}}!\nBe kind."
    )
    context = await signed_in_context(browser, server, alice)
    try:
        page = await context.new_page()
        await page.goto(f"{server.base_url}/p/{prompt['id']}")
        await expect(page.locator("#prompt-versions .version")).to_have_count(2)
        await page.fill("#label-name", "production")
        await page.select_option("#label-version", "2")
        await page.click("#set-label button")
        label = page.locator("#prompt-labels .label[data-label='production']")
        await expect(label).to_contain_text("v2")
        await expect(page.locator(".version[data-version='2']")).to_contain_text("production")

        await page.select_option("#diff-from", "1")
        await page.select_option("#diff-to", "2")
        await page.click("#diff-form button")
        await expect(page.locator("#diff-output .diff-del")).to_contain_text("-Hello {{name}}.")
        await expect(page.locator("#diff-output .diff-add")).to_contain_text("+Hello {{name}}!")

        # A bad label name is refused with the server's reason, and nothing changes.
        await page.fill("#label-name", "Not Valid!")
        await page.evaluate("document.querySelector('#label-name').removeAttribute('pattern')")
        await page.click("#set-label button")
        await expect(page.locator(".error").first).to_contain_text("invalid")
        labels = page.locator("#prompt-labels .label")
        # "latest" follows every save by itself: it is shown, and cannot be removed.
        await expect(labels).to_have_count(2)
        await expect(labels.filter(has_text="latest").get_by_role("button")).to_have_count(0)

        await label.get_by_role("button", name="Remove label production").click()
        await expect(labels).to_have_count(1)
        await expect(labels).to_contain_text("latest")
    finally:
        await context.close()


async def test_a_prompt_opens_in_a_live_session_with_its_latest_text(
    browser: Browser, server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    prompt = await _prompt_with_versions(server, alice, "Translator", "v1 text", "v2 text")
    context = await signed_in_context(browser, server, alice)
    try:
        page = await context.new_page()
        await page.goto(f"{server.base_url}/prompts")
        await page.get_by_role("link", name="Translator").click()
        await page.click("#open-live")
        await expect(page).to_have_url(re.compile(r"/s/[A-Za-z0-9_-]+$"))
        session_page = SessionPage(page)
        await session_page.wait_connected()
        await session_page.wait_text("v2 text")
        await expect(page.locator("#publish-prompt")).to_have_value(prompt["id"])
    finally:
        await context.close()


async def test_the_prompt_list_creates_a_prompt(
    browser: Browser, server: ServerProcess, team: list[Account]
) -> None:
    context = await signed_in_context(browser, server, team[1])
    try:
        page = await context.new_page()
        await page.goto(server.base_url)
        await page.click("#nav-prompts")
        await page.fill("#new-prompt-name", "Release notes")
        await page.fill("#new-prompt-content", "Write notes for {{version}}.")
        await page.click("#create-prompt button[type=submit]")
        await expect(page.locator("#prompt-title")).to_have_text("Release notes")
        await expect(page.locator("#prompt-versions .version")).to_have_count(1)
        await page.goto(f"{server.base_url}/p/no-such-prompt")
        await expect(page.locator(".error").first).to_contain_text("no-such-prompt")
    finally:
        await context.close()
