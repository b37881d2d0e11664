"""``server.logs``: every credential a log line may carry is masked, and nothing else is touched."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest

from server.logs import LOG_FORMAT, MASK, RedactingFormatter, configure_logging, mask, redact
from server.security import new_api_key, new_login_token, new_share_token

TOKEN = new_login_token()
API_KEY = new_api_key()
SHARE = new_share_token()


@pytest.mark.parametrize(
    ("line", "secret", "kept"),
    [
        # uvicorn's access log and websocket lines, as y-websocket's `params` produce them.
        (
            f'127.0.0.1:5 - "GET /ws/{SHARE}?token={TOKEN}&protocol=json HTTP/1.1" 101',
            TOKEN,
            f"/ws/{SHARE[:4]}{MASK}?token=pst_{MASK}&protocol=json HTTP/1.1",
        ),
        (
            f'127.0.0.1:5 - "WebSocket /ws/{SHARE}?token={TOKEN}" [accepted]',
            SHARE,
            f'"WebSocket /ws/{SHARE[:4]}{MASK}?token=pst_{MASK}" [accepted]',
        ),
        (f"GET /ws/{SHARE} HTTP/1.1", SHARE, f"GET /ws/{SHARE[:4]}{MASK} HTTP/1.1"),
        (f"ws://127.0.0.1:8000/ws/{SHARE}/", SHARE, f"ws://127.0.0.1:8000/ws/{SHARE[:4]}{MASK}/"),
        (f"GET /api/x?access_token={TOKEN} ", TOKEN, f"?access_token=pst_{MASK} "),
        (f"GET /api/x?a=1&api_key={API_KEY}", API_KEY, f"?a=1&api_key=psk_{MASK}"),
        (f"GET /api/x?KEY={API_KEY}#frag", API_KEY, f"?KEY=psk_{MASK}#frag"),
        ("GET /login?password=hunter2&next=/", "hunter2", f"?password={MASK}&next=/"),
        (f"Authorization: Bearer {TOKEN}", TOKEN, f"Authorization: Bearer pst_{MASK}"),
        (f"authorization=bearer {TOKEN}", TOKEN, f"authorization=bearer pst_{MASK}"),
        (f"headers: [(b'authorization', b'Bearer {TOKEN}')]", TOKEN, f"b'Bearer pst_{MASK}'"),
        ("Authorization: Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy", f"Basic dXNl{MASK}"),
        (f"X-API-Key: {API_KEY}", API_KEY, f"X-API-Key: psk_{MASK}"),
        (f"{{'x-api-key': '{API_KEY}'}}", API_KEY, f"'x-api-key': 'psk_{MASK}'"),
        (f'{{"share_token": "{SHARE}", "id": "s1"}}', SHARE, f'"share_token": "{SHARE[:4]}{MASK}"'),
        (f"{{'token': '{TOKEN}'}}", TOKEN, f"'token': 'pst_{MASK}'"),
        (f"ValueError: bad token {TOKEN}", TOKEN, f"bad token pst_{MASK}"),
        (f"key {API_KEY}.", API_KEY, f"key psk_{MASK}."),
        ("redis://:s3cret@cache:6379/0", "s3cret", f"redis://:{MASK}@cache:6379/0"),
        ("postgresql+asyncpg://ps:pw@db/app", ":pw@", f"postgresql+asyncpg://ps:{MASK}@db/app"),
    ],
)
def test_credentials_are_masked(line: str, secret: str, kept: str) -> None:
    redacted = redact(line)
    assert secret not in redacted
    assert kept in redacted
    assert redact(redacted) == redacted  # idempotent: a line redacted twice reads the same


@pytest.mark.parametrize(
    "line",
    [
        "",
        "unloaded document 0b4c8f (rev 12)",
        '127.0.0.1:5 - "GET /api/sessions/abc/history?limit=50&before=9 HTTP/1.1" 200',
        "login token expired",
        "Bearer token missing",
        "prompt-studio node n1 ready (database: sqlite+aiosqlite:///./prompt-studio.db)",
        "Uvicorn running on http://127.0.0.1:8000 (Press CTRL+C to quit)",
        "the monkey=banana parameter",
        "closing slow client 5be4: send queue full",
    ],
)
def test_lines_without_credentials_are_left_alone(line: str) -> None:
    assert redact(line) == line


def test_mask_keeps_a_prefix_of_long_values_only() -> None:
    assert mask(TOKEN) == "pst_" + MASK
    assert mask("short-secret") == MASK
    assert mask("x" * 15) == MASK
    assert mask("y" * 16) == "yyyy" + MASK
    assert mask(mask(TOKEN)) == mask(TOKEN)


def test_the_formatter_redacts_arguments_tracebacks_and_stacks() -> None:
    formatter = RedactingFormatter(LOG_FORMAT)
    try:
        raise RuntimeError(f"could not use {TOKEN}")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", f"/ws/{SHARE}?token={TOKEN}", "1.1", 101),
        exc_info,
        sinfo=f"Stack (most recent call last):\n  url=/ws/{SHARE}?token={TOKEN}",
    )
    line = formatter.format(record)
    assert TOKEN not in line and SHARE not in line
    assert f'"GET /ws/{SHARE[:4]}{MASK}?token=pst_{MASK} HTTP/1.1" 101' in line
    assert f"RuntimeError: could not use pst_{MASK}" in line
    assert "Stack (most recent call last)" in line


@pytest.fixture
def restored_root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_installs_one_redacting_handler(
    restored_root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    foreign = logging.NullHandler()
    restored_root.addHandler(foreign)
    configure_logging("DEBUG")
    configure_logging("INFO")  # again: replaces its own handler, keeps the foreign one
    ours = [h for h in restored_root.handlers if isinstance(h.formatter, RedactingFormatter)]
    assert len(ours) == 1 and foreign in restored_root.handlers
    assert restored_root.level == logging.INFO

    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)  # the handler writes to the stderr of the moment
    logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" [accepted]', "c", f"/ws/{SHARE}")
    logging.getLogger("server.test").debug("below the level: %s", TOKEN)
    output = stderr.getvalue()
    assert f'INFO uvicorn.error: c - "WebSocket /ws/{SHARE[:4]}{MASK}" [accepted]' in output
    assert SHARE not in output and TOKEN not in output and "below the level" not in output
