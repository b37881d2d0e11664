"""Pages that lose the server (a real restart) or the network: they say so, keep their edits,
reconnect and duplicate nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.conftest import BROWSER_ENV
from tests.browser.pages import Profiles, SessionPage
from tests.support.accounts import Account, create_accounts
from tests.support.api import create_session, grant, has_content
from tests.support.server_process import ServerProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_a_page_survives_a_server_restart_without_duplicating_text(
    profiles: Profiles, browser_database_url: str, tmp_path: Path
) -> None:
    server = ServerProcess(browser_database_url, env=BROWSER_ENV, log_path=tmp_path / "server.log")
    await server.start()
    try:
        (alice,) = await create_accounts(browser_database_url, ["Alice"])
        session = await create_session(server, alice, "Line one\n", name="Restart")
        context = await profiles.sign_in(server, alice)
        page = await SessionPage.open(context, server, session["share_token"])
        await page.type_at_end("typed before\n")
        await eventually(
            lambda: has_content(server, alice, session["id"], "Line one\ntyped before\n")
        )

        await server.stop()
        await expect(page.status).to_have_attribute("data-state", "reconnecting", timeout=15_000)
        # Typed while the server is down: kept in the page, sent once it is back.
        await page.page.keyboard.type("typed offline")
        await expect(page.status).to_contain_text("edits kept")

        await server.start()
        await page.wait_connected()
        expected = "Line one\ntyped before\ntyped offline"
        await page.wait_text(expected)
        await eventually(lambda: has_content(server, alice, session["id"], expected), timeout=15)

        # A second page opened after the restart sees the same text once.
        other = await SessionPage.open(context, server, session["share_token"])
        await other.wait_text(expected)
    finally:
        await server.stop()


async def test_an_offline_page_says_so_keeps_its_edits_and_sends_them_when_back(
    profiles: Profiles, server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "", name="Train ride")
    await grant(server, alice, session["id"], bob)
    a = await profiles.open_session(server, alice, session["share_token"])
    b = await profiles.open_session(server, bob, session["share_token"])
    await a.page.context.set_offline(True)
    await expect(a.status).to_have_attribute("data-state", "offline")
    await a.type_at_end("written offline")
    assert await a.text() == "written offline"
    await a.page.context.set_offline(False)
    await a.wait_connected()
    await b.wait_text("written offline")
    await eventually(lambda: has_content(server, alice, session["id"], "written offline"))
