"""One replica's own PostgreSQL session: the advisory locks that make it the holder of a role
(relay, checkpoints, embedded bus) or of a delivery, and the outbox notifications.

Session locks are what make a dead replica's roles and deliveries free at once: the server
releases them when the session ends. That holds only if a dead session is noticed, so the
session is kept honest: the server probes the replica's connection every few seconds
(keepalives, so a vanished host frees its locks in about 20 s, not PostgreSQL's default two
hours), the session never times out for being idle, every statement has a timeout (a silently
dropped connection is given up, not waited on for fifteen minutes), and a role is confirmed
with a round trip every few seconds. A session given up takes its roles with it; they are taken
again, if free, on the next ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from lgsp_adapter.store.postgres_schema import lock_key

log = logging.getLogger(__name__)

OUTBOX_CHANNEL = "lgsp_outbox"
_STATEMENT_TIMEOUT_S = 10.0
_CONFIRM_EVERY_S = 2.0
_LOCK_WAIT_S = 0.1  # how often a delivery another replica is handling is looked at again
# The server notices a replica that vanished (no FIN: a host down, a cable cut) after about
# idle + interval × count seconds, and frees its locks.
_SERVER_SETTINGS = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}
# What a dead or hung session raises: it is given up, with everything it held.
SESSION_LOST = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


class ReplicaSession:
    """The session of one replica; ``close`` frees everything it holds."""

    def __init__(self, dsn: str, schema: str) -> None:
        self._dsn = dsn
        self._schema = schema
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one statement at a time on the one connection
        self._roles: set[str] = set()
        self._confirmed_at = 0.0
        self._generation = 0  # which session: a lock taken on one is gone with it
        self._listeners: list[Callable[[], None]] = []
        self._releasing: set[asyncio.Future[Any]] = set()
        self._closed = False

    async def close(self) -> None:
        """End the session: the server frees its locks and roles."""
        self._closed = True
        async with self._lock:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None

    async def _run(self, statement: str, *args: Any) -> Any:
        async with self._lock:
            if self._closed:
                raise ConnectionError("the store is closed")
            if self._conn is None or self._conn.is_closed():
                await self._connect()
            assert self._conn is not None  # noqa: S101  # just connected
            try:
                return await self._conn.fetchval(statement, *args, timeout=_STATEMENT_TIMEOUT_S)
            except SESSION_LOST:
                self._give_up()
                raise

    async def _connect(self) -> None:
        if self._conn is not None:
            log.warning("the replica's PostgreSQL session was lost; its roles are given up")
        self._give_up()
        conn = await asyncpg.connect(
            self._dsn, timeout=_STATEMENT_TIMEOUT_S, server_settings=_SERVER_SETTINGS
        )
        try:
            if conn.get_server_version() >= (14, 0):
                # A site's idle_session_timeout would end the session while a delivery is in
                # hand, freeing its lock for another replica to post it too.
                await conn.execute("SET idle_session_timeout = 0")
            for listener in self._listeners:
                await conn.add_listener(OUTBOX_CHANNEL, _callback(listener))
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        self._generation += 1
        self._confirmed_at = time.monotonic()

    def _give_up(self) -> None:
        if self._conn is not None and not self._conn.is_closed():
            self._conn.terminate()
        self._conn = None
        self._roles.clear()

    async def listen(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` on each outbox notification, from now on."""
        self._listeners.append(listener)
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                await self._conn.add_listener(OUTBOX_CHANNEL, _callback(listener))
                return
        await self._run("SELECT 1")

    async def take_role(self, role: str) -> bool:
        """Whether this replica holds ``role``, taking it if it is free."""
        if role in self._roles:
            if time.monotonic() - self._confirmed_at < _CONFIRM_EVERY_S:
                return True
            try:
                await self._run("SELECT 1")  # alive, so still holding it
            except SESSION_LOST:
                return False
            if role in self._roles:
                self._confirmed_at = time.monotonic()
                return True
        key = lock_key(self._schema, f"role:{role}")
        try:
            taken = bool(await self._run("SELECT pg_try_advisory_lock($1)", key))
        except SESSION_LOST:
            return False
        if taken:
            self._roles.add(role)
        return taken

    async def release_role(self, role: str) -> None:
        """Let another replica take ``role`` (this one cannot do its work now)."""
        if role not in self._roles:
            return
        self._roles.discard(role)
        key = lock_key(self._schema, f"role:{role}")
        with contextlib.suppress(*SESSION_LOST):  # else gone with the session
            await self._run("SELECT pg_advisory_unlock($1)", key)
        log.info("gave up the %s role for another replica to take", role)

    @asynccontextmanager
    async def exclusive(self, name: str) -> AsyncIterator[None]:
        """Hold ``name`` against every other replica, waiting while another holds it."""
        key = lock_key(self._schema, name)
        while True:
            attempt = asyncio.ensure_future(self._run("SELECT pg_try_advisory_lock($1)", key))
            try:
                taken = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # The server may take the lock all the same: give it back once it answers,
                # or nobody could ever take it again.
                attempt.add_done_callback(lambda done: self._unlock_if_taken(done, key))
                raise
            if taken:
                break
            # Polled: the holder is another process, whose release no event here can signal.
            await asyncio.sleep(_LOCK_WAIT_S)
        generation = self._generation
        try:
            yield
        finally:
            if generation == self._generation:  # else the lock went with its session
                with contextlib.suppress(*SESSION_LOST):  # else gone with the session
                    await asyncio.shield(self._run("SELECT pg_advisory_unlock($1)", key))

    def _unlock_if_taken(self, attempt: asyncio.Future[Any], key: int) -> None:
        if attempt.cancelled() or attempt.exception() is not None or not attempt.result():
            return
        releasing = asyncio.ensure_future(self._run("SELECT pg_advisory_unlock($1)", key))
        self._releasing.add(releasing)
        releasing.add_done_callback(self._releasing.discard)
        releasing.add_done_callback(lambda done: done.cancelled() or done.exception())


def _callback(listener: Callable[[], None]) -> Callable[..., None]:
    return lambda *_: listener()
