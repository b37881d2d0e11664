"""Co-editing in real browsers: two pages at once, VIEWERs, a JSON client, Arabic text."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.pages import Profiles, SessionPage
from tests.support.accounts import Account
from tests.support.api import create_session, grant, has_content, session_content
from tests.support.json_client import JsonClient
from tests.support.server_process import ROOT, ServerProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

SCREENSHOTS = ROOT / "docs" / "screenshots"


async def test_two_pages_edit_at_once_and_converge_with_each_others_cursors(
    profiles: Profiles, server: ServerProcess, team: list[Account], tmp_path: Path
) -> None:
    alice, bob, _ = team
    session = await create_session(
        server, alice, "You are a helpful support agent.\n", name="Support bot"
    )
    await grant(server, alice, session["id"], bob)
    a = await profiles.open_session(server, alice, session["share_token"])
    b = await profiles.open_session(server, bob, session["share_token"])
    await a.wait_text("You are a helpful support agent.\n")
    await b.wait_text("You are a helpful support agent.\n")
    # Both type at the same time, at the end of the same document.
    await asyncio.gather(
        a.type_at_end("Answer in the customer's language."),
        b.type_at_end("Never share internal links. "),
    )
    await eventually(lambda: _same_text(a, b), timeout=15)
    text = await a.text()
    assert text.startswith("You are a helpful support agent.\n")
    assert "Answer in the customer's language." in text
    assert "Never share internal links. " in text
    assert len(text) == len(
        "You are a helpful support agent.\nAnswer in the customer's language."
        "Never share internal links. "
    )
    await eventually(lambda: has_content(server, alice, session["id"], text), timeout=15)
    # Each sees the other's caret, labelled with the other's name.
    await a.wait_remote_caret("Bob")
    await b.wait_remote_caret("Alice")
    for page in (a, b):
        online = page.page.locator("#member-list .member[data-online='true']")
        await expect(online).to_have_count(2, timeout=15_000)
    await expect(a.page.locator(".member[data-role='EDITOR']")).to_contain_text("Bob")
    # Bob selects the first line: Alice sees the selection in Bob's colour.
    await b.page.keyboard.press("Control+Home")
    await b.page.keyboard.press("Shift+End")
    await expect(a.page.locator(".cm-ySelection").first).to_be_visible(timeout=15_000)
    await expect(a.page.locator("#history-list .edit").first).to_be_visible(timeout=15_000)
    # The README's screenshot is refreshed on request only: a test run leaves the tree alone.
    shots = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    await a.page.set_viewport_size({"width": 1280, "height": 800})
    await a.wait_remote_caret("Bob")
    await a.page.screenshot(path=str(shots / "session-two-members.png"))
    assert (shots / "session-two-members.png").stat().st_size > 0
    assert a.errors == [] and b.errors == []


async def _same_text(a: SessionPage, b: SessionPage) -> bool:
    return await a.text() == await b.text()


async def test_a_viewer_page_cannot_change_the_text_and_says_why(
    profiles: Profiles, server: ServerProcess, team: list[Account]
) -> None:
    alice, _, carol = team
    session = await create_session(server, alice, "Fixed text", name="Read only")
    c = await profiles.open_session(server, carol, session["share_token"])
    await expect(c.role).to_have_text("VIEWER")
    await expect(c.banner).to_be_visible()
    await expect(c.banner).to_contain_text("VIEWER")
    await expect(c.content).to_have_attribute("contenteditable", "false")
    await c.content.click()
    await c.page.keyboard.type("vandalism")
    await c.page.keyboard.press("Backspace")
    assert await c.text() == "Fixed text"
    # The owner's edit still reaches the viewer, and the viewer's keys changed nothing.
    a = await profiles.open_session(server, alice, session["share_token"])
    await a.type_at_end("!")
    await c.wait_text("Fixed text!")
    await eventually(lambda: has_content(server, alice, session["id"], "Fixed text!"))


async def test_a_viewer_made_editor_can_type_at_once(
    profiles: Profiles, server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "", name="Promotion")
    b = await profiles.open_session(server, bob, session["share_token"])
    await expect(b.role).to_have_text("VIEWER")
    await grant(server, alice, session["id"], bob, "EDITOR")
    await expect(b.role).to_have_text("EDITOR", timeout=15_000)
    await expect(b.banner).to_be_hidden()
    await b.type_at_end("now I can")
    await eventually(lambda: has_content(server, alice, session["id"], "now I can"))


async def test_a_browser_and_a_json_client_co_edit(
    profiles: Profiles, server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "Hello", name="Mixed clients")
    await grant(server, alice, session["id"], bob)
    page = await profiles.open_session(server, alice, session["share_token"])
    async with JsonClient(server.ws_base, session["share_token"], bob.token) as json_client:
        reply = await json_client.insert(0, ">> ")
        assert reply["type"] == "ack", reply
        await page.wait_text(">> Hello")
        await page.type_at_end(" from the browser")
        await json_client.wait_text(">> Hello from the browser", timeout=15)
        reply = await json_client.insert(json_client.utf16_length(), " and JSON 😀")
        assert reply["type"] == "ack", reply
        await page.wait_text(">> Hello from the browser and JSON 😀")
        # The JSON client's name appears in the browser's member list.
        await expect(page.page.locator("#member-list")).to_contain_text("Bob")
    assert await session_content(server, alice, session["id"]) == await page.text()


async def test_arabic_typed_in_one_page_arrives_intact_and_runs_right_to_left(
    profiles: Profiles, server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "Greeting:\n", name="عربي")
    await grant(server, alice, session["id"], bob)
    arabic = "مرحبا بكم في استوديو التعليمات، كيف يمكنني مساعدتك؟"
    a = await profiles.open_session(server, alice, session["share_token"])
    b = await profiles.open_session(server, bob, session["share_token"])
    await a.wait_text("Greeting:\n")
    await a.type_at_end(arabic)
    await b.wait_text(f"Greeting:\n{arabic}")
    await eventually(lambda: has_content(server, alice, session["id"], f"Greeting:\n{arabic}"))
    # Direction per line: the Latin line runs left to right, the Arabic one right to left.
    directions = await b.page.eval_on_selector_all(
        ".cm-line", "lines => lines.map(l => getComputedStyle(l).direction)"
    )
    assert directions == ["ltr", "rtl"]
    await expect(b.page.locator("#session-title")).to_have_text("عربي")
    assert a.errors == [] and b.errors == []
