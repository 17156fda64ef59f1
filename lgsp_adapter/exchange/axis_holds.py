"""Packets an upstream axis lists that wait here for the registry to be mended.

A packet refused for how the registry here stands (its sender disabled, a recipient not
served) is not the sender's fault, so it is not answered ``fail`` at once: it stays on the
axis and is tried again at waits doubling from a minute to an hour. But not for ever: a code
that exists nowhere would wait on the axis, unanswered, while its sender never hears. After
``give_up_s`` it is answered ``fail`` after all. Its refusal is audited when it is first held
and when the reason changes, not at every try (each entry is kept for ever).

Kept in memory, per upstream: a restart tries each held packet once at once, audits it once
again, and counts its time from then.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lgsp_adapter.exchange.schedule import FIRST_WAIT_S, Schedule

LONGEST_WAIT_S = 3600.0
GIVE_UP_S = 86_400.0


@dataclass(slots=True)
class _Held:
    since: float
    reason: str


class Holds:
    """When each held packet is due again, since when it is held, and why."""

    def __init__(
        self,
        *,
        first_wait_s: float = FIRST_WAIT_S,
        give_up_s: float = GIVE_UP_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._schedule = Schedule(LONGEST_WAIT_S, first_wait_s=first_wait_s, clock=clock)
        self._held: dict[str, _Held] = {}
        self._give_up_s = give_up_s
        self._clock = clock

    def due(self, doc_id: str) -> bool:
        """Whether the packet is to be tried now (never held, or its wait is over)."""
        return self._schedule.due(doc_id)

    def news(self, doc_id: str, reason: str) -> bool:
        """Whether refusing the packet for ``reason`` is news (not held, or held for another
        reason): then it is audited, before ``hold`` records it."""
        held = self._held.get(doc_id)
        return held is None or held.reason != reason

    def hold(self, doc_id: str, reason: str) -> float:
        """Hold the packet for ``reason``; how long until it is tried again."""
        held = self._held.get(doc_id)
        if held is None:
            self._held[doc_id] = _Held(self._clock(), reason)
        else:
            held.reason = reason
        return self._schedule.failed(doc_id)

    def given_up(self, doc_id: str) -> float | None:
        """How long the packet has been held, once that is past ``give_up_s``; else None."""
        held = self._held.get(doc_id)
        waited = None if held is None else self._clock() - held.since
        return waited if waited is not None and waited >= self._give_up_s else None

    def release(self, doc_id: str) -> None:
        """The packet is answered: nothing more to hold."""
        self._held.pop(doc_id, None)
        self._schedule.forget(doc_id)

    def keep_only(self, doc_ids: Iterable[str]) -> None:
        """Forget the packets the axis no longer lists."""
        listed = set(doc_ids)
        for doc_id in [d for d in self._held if d not in listed]:
            self.release(doc_id)
        self._schedule.keep_only(listed)
