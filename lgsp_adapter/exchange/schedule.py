"""When to try again, per key, something done now and then or something that failed: the axis
poller's agency synchronisation (hourly, sooner after a failure, but not at every round) and
the packets it holds while the registry here is mended (not fetched and refused every ten
seconds, each refusal an audit entry).

Kept in memory: a restart tries everything once at once, which is what an operator who
restarted after mending something expects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

FIRST_WAIT_S = 60.0


class Schedule:
    """Per key: next due ``every_s`` after a success; after failures, at waits doubling from
    ``first_wait_s`` up to ``every_s``. A key never seen is due."""

    def __init__(
        self,
        every_s: float,
        *,
        first_wait_s: float = FIRST_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_s = every_s
        self._first_wait_s = min(first_wait_s, every_s)
        self._clock = clock
        self._next: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    def due(self, key: str) -> bool:
        """Whether ``key``'s time has come."""
        return self._clock() >= self._next.get(key, float("-inf"))

    def done(self, key: str) -> None:
        """It succeeded: next due after ``every_s``."""
        self._failures.pop(key, None)
        self._next[key] = self._clock() + self.every_s

    def failed(self, key: str) -> float:
        """It failed again: how long until it is next due."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        wait_s = min(self.every_s, self._first_wait_s * 2.0 ** min(failures, 32))
        self._next[key] = self._clock() + wait_s
        return wait_s

    def forget(self, key: str) -> None:
        """Nothing more to schedule for ``key``: it is due whenever asked again."""
        self._failures.pop(key, None)
        self._next.pop(key, None)

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget every key but these (those not seen any more)."""
        kept = set(keys)
        for key in [k for k in self._next if k not in kept]:
            self.forget(key)
