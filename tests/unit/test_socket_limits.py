"""Cross-connection socket limits (issue 14): connections per session and per user, messages
per user over all of their connections, failed logins per address; and their settings."""

from __future__ import annotations

import json

import pytest

from crdt import PromptDocument
from server.hub.endpoint import FrameHandler
from server.hub.limits import MAX_FAILURE_DELAY_SECONDS, AuthFailures, SocketGuard
from server.hub.room import Room
from server.settings import Settings, SettingsError
from tests.support.transports import RecordingTransport, recording_json_connection


class NoWriter:
    """Pings never reach the history writer."""

    def submit(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("no edits expected")

    def log_update(self, *args: object) -> None:
        raise AssertionError("no edits expected")


def guard(*, per_session: int = 3, per_user: int = 2, burst: int = 4) -> SocketGuard:
    return SocketGuard(
        connections_per_session=per_session,
        connections_per_user=per_user,
        user_rate_per_second=1.0,
        user_rate_burst=burst,
        auth_failures=AuthFailures(3, 60.0, 100),
    )


def test_a_session_refuses_the_join_at_its_limit_not_before() -> None:
    limits = guard(per_session=3)
    assert limits.join_refusal("ana", 2) is None
    refusal = limits.join_refusal("ana", 3)
    assert refusal is not None and "3 connections" in refusal


def test_a_user_refuses_the_join_at_their_limit_and_again_after_one_leaves() -> None:
    limits = guard(per_user=2)
    limits.enter("ana")
    assert limits.join_refusal("ana", 0) is None
    limits.enter("ana")
    refusal = limits.join_refusal("ana", 0)
    assert refusal is not None and "2 open connections" in refusal
    assert limits.join_refusal("ben", 0) is None  # another user is not affected
    limits.leave("ana")
    assert limits.join_refusal("ana", 0) is None
    limits.leave("ana")
    assert limits.connections_of("ana") == 0
    limits.leave("ana")  # an extra leave does not go negative
    assert limits.connections_of("ana") == 0


def test_a_users_connections_share_one_bucket_which_goes_with_the_last() -> None:
    limits = guard()
    first = limits.enter("ana")
    assert limits.enter("ana") is first
    assert limits.enter("ben") is not first
    limits.leave("ana")
    limits.leave("ana")
    assert limits.enter("ana") is not first  # a fresh bucket for a fresh user slot


def make_room() -> Room:
    return Room(
        session_id="s",
        tenant_id="t",
        name="n",
        description=None,
        document=PromptDocument.from_text("hello"),
        writer=NoWriter(),  # type: ignore[arg-type]
    )


def sent_codes(transport: object) -> list[str]:
    assert isinstance(transport, RecordingTransport)
    return [json.loads(m).get("code", "") for m in transport.written if isinstance(m, str)]


def test_messages_over_the_user_bucket_are_refused_whichever_connection_sends_them() -> None:
    limits = guard(burst=4)
    room = make_room()
    one, two = recording_json_connection("ana"), recording_json_connection("ana")
    handlers = []
    for conn in (one, two):
        conn.user_rate_limit = limits.enter("ana")
        room.add(conn)
        handlers.append(FrameHandler(room, conn, 1024))
    ping = json.dumps({"type": "ping"})
    for i in range(4):  # the burst, alternating connections: each connection's own bucket is 100
        handlers[i % 2](ping)
    assert "rate_limited" not in sent_codes(one.direct) + sent_codes(two.direct)
    handlers[0](ping)
    assert "rate_limited" in sent_codes(one.direct)
    # Ben's bucket is his own.
    ben = recording_json_connection("ben")
    ben.user_rate_limit = limits.enter("ben")
    room.add(ben)
    FrameHandler(room, ben, 1024)(ping)
    assert "rate_limited" not in sent_codes(ben.direct)


def test_failed_logins_refuse_an_address_at_the_limit_until_the_window_passes() -> None:
    failures = AuthFailures(limit=3, window=10.0, max_addresses=100)
    for t in (0.0, 1.0):
        failures.fail("10.0.0.1", now=t)
    assert failures.retry_after("10.0.0.1", now=2.0) is None  # limit - 1 failures: may try
    failures.fail("10.0.0.1", now=2.0)
    assert failures.retry_after("10.0.0.1", now=2.0) == pytest.approx(8.0)
    assert failures.retry_after("10.0.0.2", now=2.0) is None  # another address is not affected
    # The oldest failure leaves the window at t=10: then one more try is allowed.
    assert failures.retry_after("10.0.0.1", now=10.5) is None
    failures.fail("10.0.0.1", now=10.5)
    assert failures.retry_after("10.0.0.1", now=10.5) == pytest.approx(0.5)


def test_failed_logins_remember_a_bounded_number_of_addresses() -> None:
    failures = AuthFailures(limit=1, window=60.0, max_addresses=2)
    failures.fail("a", now=0.0)
    failures.fail("b", now=0.0)
    failures.fail("a", now=1.0)  # a is now the most recent
    failures.fail("c", now=1.0)
    assert len(failures) == 2
    assert failures.retry_after("b", now=1.0) is None  # forgotten: least recently failing
    assert failures.retry_after("a", now=1.0) is not None
    assert failures.retry_after("c", now=1.0) is not None


def test_many_failures_of_one_address_keep_only_what_the_limit_needs() -> None:
    failures = AuthFailures(limit=3, window=60.0, max_addresses=10)
    for i in range(1000):
        failures.fail("a", now=float(i) / 1000)
    assert len(failures._failures["a"]) == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PROMPT_STUDIO_MAX_CONNECTIONS_PER_SESSION", "0"),
        ("PROMPT_STUDIO_MAX_CONNECTIONS_PER_USER", "-1"),
        ("PROMPT_STUDIO_USER_RATE_LIMIT_PER_SECOND", "0.5"),
        ("PROMPT_STUDIO_USER_RATE_LIMIT_BURST", "zero"),
        ("PROMPT_STUDIO_AUTH_FAILURES_PER_ADDRESS", "0"),
        ("PROMPT_STUDIO_AUTH_FAILURE_WINDOW_SECONDS", "0.5"),
        ("PROMPT_STUDIO_AUTH_FAILURE_ADDRESSES", "0"),
        ("PROMPT_STUDIO_PREAUTH_MAX_FRAMES", "0"),
        ("PROMPT_STUDIO_PREAUTH_MAX_BYTES", "1023"),
    ],
)
def test_limit_settings_refuse_out_of_range_values(name: str, value: str) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({name: value})


def test_limit_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "PROMPT_STUDIO_MAX_CONNECTIONS_PER_SESSION": "7",
            "PROMPT_STUDIO_MAX_CONNECTIONS_PER_USER": "1",
            "PROMPT_STUDIO_USER_RATE_LIMIT_PER_SECOND": "5",
            "PROMPT_STUDIO_USER_RATE_LIMIT_BURST": "9",
            "PROMPT_STUDIO_AUTH_FAILURES_PER_ADDRESS": "2",
            "PROMPT_STUDIO_AUTH_FAILURE_WINDOW_SECONDS": "30",
            "PROMPT_STUDIO_AUTH_FAILURE_ADDRESSES": "50",
            "PROMPT_STUDIO_PREAUTH_MAX_FRAMES": "4",
            "PROMPT_STUDIO_PREAUTH_MAX_BYTES": "1024",
        }
    )
    assert (settings.preauth_max_frames, settings.preauth_max_bytes) == (4, 1024)
    limits = SocketGuard.from_settings(settings)
    assert (limits.connections_per_session, limits.connections_per_user) == (7, 1)
    assert (settings.user_rate_limit_per_second, settings.user_rate_limit_burst) == (5.0, 9)
    failures = limits.auth_failures
    assert (failures.limit, failures.window, failures.max_addresses) == (2, 30.0, 50)


def test_each_failure_after_the_first_slows_the_next_answer_down_up_to_a_cap() -> None:
    failures = AuthFailures(limit=100, window=60.0, max_addresses=10, delay_step=0.5)
    assert failures.delay("a", now=0.0) == 0.0
    failures.fail("a", now=0.0)
    assert failures.delay("a", now=0.0) == 0.0  # one failure: a typo is not punished
    failures.fail("a", now=1.0)
    failures.fail("a", now=2.0)
    assert failures.delay("a", now=2.0) == pytest.approx(1.0)
    for t in range(3, 20):
        failures.fail("a", now=float(t))
    assert failures.delay("a", now=20.0) == MAX_FAILURE_DELAY_SECONDS
    assert failures.delay("b", now=20.0) == 0.0
    assert failures.delay("a", now=200.0) == 0.0  # the window passed


def test_the_failure_delay_setting_refuses_negative_values() -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({"PROMPT_STUDIO_AUTH_FAILURE_DELAY_SECONDS": "-1"})
    settings = Settings.from_env({"PROMPT_STUDIO_AUTH_FAILURE_DELAY_SECONDS": "0"})
    assert SocketGuard.from_settings(settings).auth_failures.delay_step == 0.0
