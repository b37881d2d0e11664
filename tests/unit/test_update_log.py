"""When the history writer folds a document's update log (``storage.update_log``)."""

from __future__ import annotations

from storage.update_log import UpdateLogs


def logs(**options: float) -> UpdateLogs:
    settings = {"after_rows": 100, "after_seconds": 30.0, "min_bytes": 1000, **options}
    return UpdateLogs(
        after_rows=int(settings["after_rows"]),
        after_seconds=settings["after_seconds"],
        min_bytes=int(settings["min_bytes"]),
        max_retry_seconds=1.0,
    )


def test_a_log_is_due_once_as_large_as_its_snapshot_so_large_documents_fold_less_often() -> None:
    book = logs()
    book.logged("a", 999, now=0.0)
    assert book.next_due(1.0) is None  # below min_bytes
    book.logged("a", 1, now=1.0)
    assert book.next_due(1.0) == "a"
    book.folded("a", 2, 1000, snapshot_size=50_000, now=2.0)
    book.logged("a", 49_999, now=3.0)
    assert book.next_due(3.0) is None  # the snapshot is larger than the log
    book.logged("a", 1, now=3.0)
    assert book.next_due(3.0) == "a"


def test_many_rows_or_old_rows_are_due_and_requested_ones_go_first() -> None:
    book = logs(after_rows=3)
    for _ in range(3):
        book.logged("rows", 1, now=0.0)
    book.logged("old", 1, now=0.0)
    assert book.next_due(1.0) == "rows"
    book.logged("asked", 1, now=5.0)
    book.request("asked")
    assert book.next_due(6.0) == "asked"
    assert book.folded("asked", 1, 1, snapshot_size=10, now=6.0) is True
    assert book.counts("asked") == (0, 0)  # forgotten: the document is unloading
    book.folded("rows", 3, 3, snapshot_size=10, now=6.0)
    assert book.next_due(29.0) is None
    assert book.next_due(30.0) == "old"  # 30 s after its first row
    assert book.seconds_to_next(10.0) == 20.0


def test_rows_logged_while_a_fold_ran_stay_counted() -> None:
    book = logs()
    book.logged("a", 600, now=0.0)
    rows, size = book.counts("a")
    book.logged("a", 500, now=0.5)  # committed while the fold ran
    book.folded("a", rows, size, snapshot_size=100, now=1.0)
    assert book.counts("a") == (1, 500)


def test_a_failed_fold_waits_longer_each_time_and_is_given_up_on_shutdown() -> None:
    book = logs(after_rows=1)
    book.logged("a", 1, now=0.0)
    assert book.failed("a", now=0.0) == 0.05
    assert book.next_due(0.01) is None and book.next_due(0.05) == "a"
    assert book.failed("a", now=0.05) == 0.1
    assert [book.failed("a", now=1.0) for _ in range(5)][-1] == 1.0  # capped
    book.closing = True
    assert book.failed("a", now=2.0) == 0.0
    assert book.counts("a") == (0, 0) and book.next_due(10.0) is None


def test_on_shutdown_every_log_with_rows_is_due_and_empty_ones_are_not() -> None:
    book = logs()
    book.logged("a", 1, now=0.0)
    book.request("b")
    book.folded("b", 0, 0, snapshot_size=0, now=0.0)
    book.closing = True
    assert book.next_due(0.0) == "a"
    book.folded("a", 1, 1, snapshot_size=5, now=0.0)
    assert book.next_due(0.0) is None


def test_a_failed_fold_of_a_large_log_is_retried_after_its_back_off_not_its_age() -> None:
    # The writer sleeps for seconds_to_next(); a log due by size whose fold failed must wake it
    # when the back-off ends, not when the log becomes old (after_seconds later).
    book = logs()
    book.logged("big", 1000, now=0.0)
    assert book.next_due(0.0) == "big"
    delay = book.failed("big", now=0.0)
    assert book.next_due(0.0) is None
    assert book.seconds_to_next(0.0) == delay
    assert book.next_due(delay) == "big"


def test_a_requested_fold_that_failed_is_retried_after_its_back_off() -> None:
    book = logs()
    book.logged("small", 1, now=0.0)
    book.request("small")
    book.failed("small", now=0.0)
    book.request("small")  # unloading asks again
    assert book.seconds_to_next(0.0) == 0.05
    assert book.seconds_to_next(10.0) == 0.0
