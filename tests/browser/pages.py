"""Driving the studio's pages in a browser: signing in, opening a session, reading the editor."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, BrowserContext, Page, expect
from sqlalchemy import update

from storage.engine import create_engine, create_session_factory
from storage.models import User
from tests.support.accounts import Account
from tests.support.server_process import ServerProcess

COLORS = ("#D9480F", "#1C7ED6", "#2B8A3E")
WAIT_MS = 15_000


async def set_colors(database_url: str, colors: dict[str, str]) -> None:
    """Give users their cursor colours (the account helper leaves everyone on the default)."""
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as db, db.begin():
            for user_id, color in colors.items():
                await db.execute(update(User).where(User.id == user_id).values(color=color))
    finally:
        await engine.dispose()


async def signed_in_context(
    browser: Browser, server: ServerProcess, account: Account, **options: Any
) -> BrowserContext:
    """A fresh browser profile holding ``account``'s login token in the documented cookie."""
    context = await browser.new_context(**options)
    await context.add_cookies(
        [{"name": "prompt_studio_token", "value": account.token, "url": server.base_url}]
    )
    return context


class SessionPage:
    """The page at ``/s/{share_token}``."""

    def __init__(self, page: Page) -> None:
        self.page = page
        #: What the page reported as broken: uncaught exceptions and console errors.
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(f"exception: {error}"))
        page.on(
            "console",
            lambda message: (
                self.errors.append(f"console: {message.text}") if message.type == "error" else None
            ),
        )
        self.content = page.locator(".cm-content")
        self.status = page.locator("#connection-status")
        self.banner = page.locator("#read-only-reason")
        self.role = page.locator("#my-role")

    @classmethod
    async def open(
        cls, context: BrowserContext, server: ServerProcess, share_token: str
    ) -> SessionPage:
        """Open the session and wait until the editor is connected and synced."""
        page = await context.new_page()
        session_page = cls(page)
        await page.goto(f"{server.base_url}/s/{share_token}")
        await session_page.wait_connected()
        await expect(session_page.role).not_to_be_empty(timeout=WAIT_MS)
        return session_page

    async def wait_connected(self) -> None:
        """Until the status says the editor is connected and in sync."""
        await expect(self.status).to_have_attribute("data-state", "connected", timeout=WAIT_MS)

    async def text(self) -> str:
        """The editor's document."""
        return str(await self.page.evaluate("window.promptStudio.view.state.doc.toString()"))

    async def wait_text(self, expected: str) -> None:
        """Until the editor's document is exactly ``expected``."""
        await self.page.wait_for_function(
            "expected => window.promptStudio && "
            "window.promptStudio.view.state.doc.toString() === expected",
            arg=expected,
            timeout=WAIT_MS,
        )

    async def type_at_end(self, text: str) -> None:
        """Click into the editor, move to the end of the document and type like a person."""
        await self.content.click()
        await self.page.keyboard.press("Control+End")
        await self.page.keyboard.type(text)

    async def wait_remote_caret(self, name: str) -> None:
        """Until another member's caret, labelled with their name, is drawn in the editor."""
        await expect(self.page.locator(".cm-ySelectionInfo", has_text=name)).to_be_visible(
            timeout=WAIT_MS
        )


class Profiles:
    """The signed-in browser profiles one test opens; :meth:`close` closes them all."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self._contexts: list[BrowserContext] = []

    async def sign_in(
        self, server: ServerProcess, account: Account, **options: Any
    ) -> BrowserContext:
        """A fresh profile of ``account`` (see :func:`signed_in_context`), closed with the rest."""
        context = await signed_in_context(self.browser, server, account, **options)
        self._contexts.append(context)
        return context

    async def open_session(
        self, server: ServerProcess, account: Account, share_token: str, **options: Any
    ) -> SessionPage:
        """``account`` in a fresh profile, on the session's page, connected and synced."""
        return await SessionPage.open(
            await self.sign_in(server, account, **options), server, share_token
        )

    async def close(self) -> None:
        """Close every profile opened so far."""
        while self._contexts:
            await self._contexts.pop().close()
