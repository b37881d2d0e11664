"""Process-wide settings for a run: open-file limit and CPU affinity of the load generator."""

from __future__ import annotations

import logging
import os
import resource
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# Sockets are not the only descriptors: leave room for files, pipes and the event loop.
FD_HEADROOM = 256


@dataclass(frozen=True, slots=True)
class FdLimit:
    """The open-file limit after trying to raise it."""

    soft: int
    hard: int
    wanted: int

    @property
    def enough(self) -> bool:
        """Whether the soft limit covers what was wanted."""
        return self.soft >= self.wanted

    def as_dict(self) -> dict[str, int | bool]:
        """For the summary."""
        return {"soft": self.soft, "hard": self.hard, "wanted": self.wanted, "enough": self.enough}


def raise_fd_limit(connections: int) -> FdLimit:
    """Raise the soft ``RLIMIT_NOFILE`` towards ``connections + headroom`` (at most the hard limit).

    Server processes started afterwards inherit it (each end of a loopback socket is in a
    different process, so each needs one descriptor per connection).
    """
    wanted = connections + FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            logger.warning("could not raise the open-file limit to %d: %s", target, exc)
    limit = FdLimit(soft=soft, hard=hard, wanted=wanted)
    if not limit.enough:
        logger.warning(
            "open-file limit %d (hard %d) is below the %d this run needs; "
            "raise the hard limit (ulimit -Hn) or use --procs to split the clients",
            soft,
            hard,
            wanted,
        )
    return limit


def pin_loadgen(server_core: int | None) -> list[int] | None:
    """Keep the generator off the server's core; returns the cores it runs on (None: unchanged)."""
    if server_core is None:
        return None
    cores = sorted(os.sched_getaffinity(0) | set(range(os.cpu_count() or 1)))
    if server_core not in cores:
        raise ValueError(f"--pin-core {server_core}: this machine has cores {cores}")
    others = [c for c in cores if c != server_core]
    if not others:
        logger.warning("only one core: the generator shares it with the server")
        return cores
    os.sched_setaffinity(0, others)
    return others
