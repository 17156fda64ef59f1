"""When the store itself is away — PostgreSQL restarting or failing over, the SQLite file
locked by another process past its busy timeout, a disk that stopped answering — rather than
something wrong with what was asked of it.

Such a failure is nobody's fault and passes: a message from the bus waits for the store
instead of being handed back to the broker (whose delivery limit would dead-letter it after a
few seconds of outage), an outcome already known is written when the store is back, and a
client is told 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from lgsp_adapter.errors import ErrorCode, TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")

# What the store's drivers raise then (not aiohttp's client errors, which are not builtin
# ConnectionErrors: an agency system away is the delivery's business).
STORE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    ConnectionError,  # refused, reset: PostgreSQL away
    sqlite3.OperationalError,  # locked past the busy timeout, I/O error
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # a connection lost mid-query
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # its disk full, out of memory
)
# Off the request path (the bus's consumers), a timeout is the store's too: a connection
# attempt to a PostgreSQL that does not answer.
STORE_UNAVAILABLE_OR_SLOW: tuple[type[BaseException], ...] = (*STORE_UNAVAILABLE, TimeoutError)
FIRST_WAIT_S = 0.5
_SQLITE_FULL = 13  # SQLITE_FULL: "database or disk is full"


def unavailable_error(exc: BaseException) -> TransientError:
    """What a client is told when the store cannot take its request: a full disk said as
    such (it passes only when an operator frees space), anything else as a moment's outage."""
    full = isinstance(exc, asyncpg.exceptions.DiskFullError) or (
        isinstance(exc, sqlite3.OperationalError)
        and getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL
    )
    if full:
        return TransientError(
            ErrorCode.STORE_FULL,
            "the store's disk is full: nothing more can be kept until an operator frees "
            "space; try again later",
            details={"retry_after_s": 60},
        )
    return TransientError(
        ErrorCode.STORE_UNAVAILABLE,
        "the store is unavailable for a moment; try again",
        details={"retry_after_s": 5},
    )


LONGEST_WAIT_S = 10.0


class Backoff:
    """Waits that double from half a second to ten."""

    def __init__(self) -> None:
        self._next = FIRST_WAIT_S

    async def wait(self) -> None:
        """Sleep the next wait."""
        await asyncio.sleep(self._next)
        self._next = min(self._next * 2, LONGEST_WAIT_S)


async def until_stored(write: Callable[[], Awaitable[T]], what: str) -> T:
    """Run ``write`` until the store takes it: for an outcome that has happened (an agency
    system answered) and must be recorded, whatever the store's moods meanwhile."""
    backoff = Backoff()
    while True:
        try:
            return await write()
        except STORE_UNAVAILABLE_OR_SLOW as exc:
            log.warning("%s: the store is unavailable (%s); trying again", what, exc)
            await backoff.wait()
