"""When to fold a document's update log into its snapshot: the history writer's bookkeeping.

A document's persisted state is its snapshot (``collaboration_sessions.crdt_state``) plus the
``document_updates`` rows logged since. Folding rewrites the whole snapshot, O(document), so it
is done once the log has grown as large as the snapshot: the cost of a fold is then paid for by
as many bytes of change, and stays O(change) amortized however large a document grows (a fixed
row count would fold a large document ever more often per byte of change). Many small rows and
old rows are folded too, and every document on request (it is being unloaded) or on shutdown.
"""

from __future__ import annotations

from dataclasses import dataclass

INITIAL_RETRY_SECONDS = 0.05


@dataclass(slots=True)
class _Log:
    rows: int = 0
    size: int = 0
    since: float = 0.0
    snapshot_size: int = 0
    retry_at: float = 0.0
    retry_backoff: float = INITIAL_RETRY_SECONDS


class UpdateLogs:
    """What this node has logged per document since its last fold, and which fold is due."""

    def __init__(
        self,
        *,
        after_rows: int,
        after_seconds: float,
        min_bytes: int,
        max_retry_seconds: float,
    ) -> None:
        """Fold when a log has ``after_rows`` rows, is ``after_seconds`` old, or holds as many
        bytes as the snapshot (at least ``min_bytes``)."""
        self._after_rows = after_rows
        self._after_seconds = after_seconds
        self._min_bytes = min_bytes
        self._max_retry = max_retry_seconds
        self._logs: dict[str, _Log] = {}
        self._requested: set[str] = set()
        self.closing = False
        """Set on shutdown: every log with rows is due."""

    def logged(self, session_id: str, size: int, now: float) -> None:
        """A row of ``size`` bytes was committed to the document's log."""
        log = self._logs.get(session_id)
        if log is None:
            log = self._logs[session_id] = _Log()
        if not log.rows:
            log.since = now
        log.rows += 1
        log.size += size

    def request(self, session_id: str) -> None:
        """Fold this document's log at the next opportunity, whatever its size."""
        self._requested.add(session_id)
        self._logs.setdefault(session_id, _Log())

    def counts(self, session_id: str) -> tuple[int, int]:
        """(rows, bytes) logged for the document since its last fold."""
        log = self._logs.get(session_id)
        return (log.rows, log.size) if log else (0, 0)

    def next_due(self, now: float) -> str | None:
        """The document to fold next: requested ones first, then the oldest due log."""
        best: tuple[int, float, str] | None = None
        for session_id, log in self._logs.items():
            if log.retry_at > now:
                continue
            urgent = self._urgent(session_id, log)
            if not urgent and not (self._large(log) or (log.rows and now >= self._old_at(log))):
                continue
            key = (0 if urgent else 1, log.since, session_id)
            if best is None or key < best:
                best = key
        return None if best is None else best[2]

    def seconds_to_next(self, now: float) -> float | None:
        """How long until a log becomes due by age or a failed fold may be retried."""
        times = []
        for session_id, log in self._logs.items():
            if self._urgent(session_id, log) or self._large(log):
                # Due already: only a failed fold's back-off holds it.
                times.append(log.retry_at - now)
            elif log.rows:
                times.append(max(self._old_at(log), log.retry_at) - now)
        return max(0.0, min(times)) if times else None

    def _urgent(self, session_id: str, log: _Log) -> bool:
        return session_id in self._requested or (self.closing and log.rows > 0)

    def _large(self, log: _Log) -> bool:
        return log.rows >= self._after_rows or bool(
            log.rows and log.size >= max(self._min_bytes, log.snapshot_size)
        )

    def _old_at(self, log: _Log) -> float:
        return log.since + self._after_seconds

    def folded(self, session_id: str, rows: int, size: int, snapshot_size: int, now: float) -> bool:
        """The ``rows``/``size`` counted when the fold started are folded; rows committed
        meanwhile stay counted. True if the fold was requested (the document is unloading)."""
        log = self._logs.get(session_id)
        requested = session_id in self._requested
        self._requested.discard(session_id)
        if log is None:
            return requested
        log.rows = max(0, log.rows - rows)
        log.size = max(0, log.size - size)
        log.since = now
        log.snapshot_size = snapshot_size
        log.retry_at = 0.0
        log.retry_backoff = INITIAL_RETRY_SECONDS
        if (requested or self.closing) and not log.rows:
            del self._logs[session_id]  # the document is going: forget it
        return requested

    def failed(self, session_id: str, now: float) -> float:
        """A fold failed: retry it later (its rows stay in the log); returns the delay.

        On shutdown the document is given up instead: its rows stay for the next start.
        """
        self._requested.discard(session_id)
        log = self._logs.get(session_id)
        if log is None:
            return 0.0
        if self.closing:
            del self._logs[session_id]
            return 0.0
        delay = log.retry_backoff
        log.retry_at = now + delay
        log.retry_backoff = min(delay * 2, self._max_retry)
        return delay

    def forget(self, session_id: str) -> None:
        """The document no longer exists."""
        self._logs.pop(session_id, None)
        self._requested.discard(session_id)
