"""The studio's pages in a browser: sign in and out, the session list, history, narrow windows."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, expect

from tests.browser.pages import WAIT_MS, Profiles, SessionPage
from tests.support.accounts import Account, create_accounts
from tests.support.api import call, create_session, grant, has_content
from tests.support.server_process import ServerProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]


async def test_sign_in_create_a_session_and_sign_out(
    browser: Browser, server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    context = await browser.new_context()
    try:
        page = await context.new_page()
        await page.goto(server.base_url)
        await page.fill("#login-token", "not-a-real-token")
        await page.click("#sign-in button[type=submit]")
        await expect(page.locator("#sign-in .error")).to_contain_text("unknown or has expired")
        assert not [c for c in await context.cookies() if c["name"] == "prompt_studio_token"]

        await page.fill("#login-token", alice.token)
        await page.click("#sign-in button[type=submit]")
        await expect(page.locator(".me-name")).to_have_text("Alice")
        cookies = {c["name"]: c["value"] for c in await context.cookies()}
        assert cookies["prompt_studio_token"] == alice.token

        await page.fill("#new-session-name", "Onboarding mail")
        await page.click("#create-session button[type=submit]")
        await expect(page).to_have_url(re.compile(r"/s/[A-Za-z0-9_-]+$"))
        session_page = SessionPage(page)
        await session_page.wait_connected()
        await expect(session_page.role).to_have_text("OWNER")
        await expect(page.locator("#session-title")).to_have_text("Onboarding mail")
        await session_page.type_at_end("Hi {{name}}")

        # The list shows the new session and opens it again.
        await page.click(".brand")
        row = page.locator(".session", has_text="Onboarding mail")
        await expect(row).to_contain_text("1 member")
        await row.get_by_role("link", name="Open").click()
        await SessionPage(page).wait_text("Hi {{name}}")

        await page.click("#sign-out")
        await expect(page.locator("#login-token")).to_be_visible()
        assert not [c for c in await context.cookies() if c["name"] == "prompt_studio_token"]
        # Signing out ended the login session on the server: the token is dead everywhere.
        assert (await call(server, alice, "GET", "/api/me")).status_code == 401
        # Signed out, a session link asks for the token first.
        await page.goto(page.url)
        await expect(page.locator("#login-token")).to_be_visible()
    finally:
        await context.close()


async def test_an_expired_cookie_leads_back_to_sign_in(
    profiles: Profiles, server: ServerProcess, team: list[Account]
) -> None:
    stale = Account(team[0].tenant_id, team[0].user_id, team[0].email, "Alice", "expired-token")
    page = await (await profiles.sign_in(server, stale)).new_page()
    await page.goto(server.base_url)
    await expect(page.locator("#sign-in .error")).to_contain_text("expired")


@pytest.mark.parametrize(
    ("share_token", "reason"),
    [("no-such-link-123", "unknown or was replaced"), ("%E2%80%AE", "unknown or was replaced")],
)
async def test_an_unknown_share_link_says_so(
    profiles: Profiles, server: ServerProcess, team: list[Account], share_token: str, reason: str
) -> None:
    page = await (await profiles.sign_in(server, team[0])).new_page()
    await page.goto(f"{server.base_url}/s/{share_token}")
    closed = page.locator("#session-closed")
    await expect(closed).to_contain_text(reason, timeout=WAIT_MS)
    await expect(closed).to_have_attribute("data-code", "4404")


async def test_another_tenants_session_is_refused(
    profiles: Profiles, server: ServerProcess, team: list[Account]
) -> None:
    (mallory,) = await create_accounts(server.database_url, ["Mallory"])
    session = await create_session(server, team[0], "secret", name="Private")
    page = await (await profiles.sign_in(server, mallory)).new_page()
    await page.goto(f"{server.base_url}/s/{session['share_token']}")
    await expect(page.locator("#session-closed")).to_have_attribute(
        "data-code", "4403", timeout=WAIT_MS
    )
    assert "secret" not in await page.content()


async def test_history_shows_edits_and_restores_one_for_everyone(
    profiles: Profiles, server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "v1", name="History")
    await grant(server, alice, session["id"], bob)
    a = await profiles.open_session(server, alice, session["share_token"])
    b = await profiles.open_session(server, bob, session["share_token"])
    await a.type_at_end(" and v2")
    await b.wait_text("v1 and v2")
    await eventually(lambda: has_content(server, alice, session["id"], "v1 and v2"))
    edits = a.page.locator("#history-list .edit")
    await expect(edits.first).to_contain_text("Alice", timeout=WAIT_MS)
    # The oldest edit is the first keystroke: the text right after it is "v1 ".
    await edits.last.get_by_role("button").click()
    await expect(a.page.locator("#history-preview")).to_have_text("v1 ")
    await a.page.click("#restore-edit")
    await a.wait_text("v1 ")
    await b.wait_text("v1 ")
    await expect(b.page.locator("#history-list .edit").first).to_have_attribute(
        "data-origin", "restore", timeout=WAIT_MS
    )
    await eventually(lambda: has_content(server, alice, session["id"], "v1 "))


async def test_a_viewer_sees_history_but_cannot_restore(
    profiles: Profiles, server: ServerProcess, team: list[Account]
) -> None:
    alice, _, carol = team
    session = await create_session(server, alice, "", name="Viewer history")
    a = await profiles.open_session(server, alice, session["share_token"])
    await a.type_at_end("x")
    c = await profiles.open_session(server, carol, session["share_token"])
    await c.wait_text("x")
    edit = c.page.locator("#history-list .edit").first
    await expect(edit).to_contain_text("Alice", timeout=WAIT_MS)
    await edit.get_by_role("button").click()
    await expect(c.page.locator("#history-preview")).to_have_text("x")
    await expect(c.page.locator("#restore-edit")).to_have_count(0)


async def test_the_session_page_fits_a_narrow_window(
    profiles: Profiles, server: ServerProcess, team: list[Account]
) -> None:
    alice = team[0]
    long_line = "A very long instruction line that must wrap instead of scrolling sideways. " * 4
    session = await create_session(server, alice, long_line, name="Phone")
    narrow = {"width": 375, "height": 740}
    page = await profiles.open_session(server, alice, session["share_token"], viewport=narrow)
    await page.wait_text(long_line)
    width = await page.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375
    editor = await page.page.locator("#editor").bounding_box()
    members = await page.page.locator("#member-list").bounding_box()
    assert editor is not None and members is not None
    # The side panels stack below the editor rather than squeezing it.
    assert members["y"] > editor["y"] + editor["height"] - 1
    assert editor["width"] > 300
    await page.type_at_end(" ok")
    await page.wait_text(long_line + " ok")


async def test_a_removed_member_and_a_deactivated_session_are_told_why(
    profiles: Profiles, server: ServerProcess, team: list[Account]
) -> None:
    alice, bob, _ = team
    session = await create_session(server, alice, "text", name="Closing")
    await grant(server, alice, session["id"], bob)
    a = await profiles.open_session(server, alice, session["share_token"])
    b = await profiles.open_session(server, bob, session["share_token"])
    removed = await call(
        server, alice, "DELETE", f"/api/sessions/{session['id']}/members/{bob.user_id}"
    )
    assert removed.status_code in {200, 204}, removed.text
    closed = b.page.locator("#session-closed")
    await expect(closed).to_have_attribute("data-code", "4403")
    await expect(closed).to_contain_text("not a member")

    deactivated = await call(server, alice, "POST", f"/api/sessions/{session['id']}/deactivate")
    assert deactivated.status_code == 200, deactivated.text
    await expect(a.page.locator("#session-closed")).to_contain_text("deactivated")


async def test_profiles_close_every_context_they_opened(
    browser: Browser, server: ServerProcess, team: list[Account]
) -> None:
    before = len(browser.contexts)
    opened = Profiles(browser)
    first = await opened.sign_in(server, team[0])
    await opened.sign_in(server, team[1], viewport={"width": 375, "height": 740})
    assert len(browser.contexts) == before + 2
    assert [c["value"] for c in await first.cookies()] == [team[0].token]
    await opened.close()
    assert len(browser.contexts) == before
    await opened.close()  # closing twice is harmless
