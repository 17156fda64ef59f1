"""Group commit: the embedded store's concurrent write transactions share one COMMIT.

SQLite has one writer, and each COMMIT waits for the disk (``synchronous=FULL``). A
transaction's statements, though, take microseconds: the pages are in memory until the
COMMIT. So they run here, on the event loop, one transaction at a time, each inside a
savepoint of one shared transaction; only what waits on the disk or on another process goes
to a thread: the COMMIT, and a BEGIN that finds the file locked. Writers that come while a
COMMIT is on its way to the disk wait for it and then share the next one: under load, one
flush and one thread hop serve many transactions, where a thread hop a statement (aiosqlite)
cost more CPU than the statements. A writer hears of success only after the flush that holds
its changes, so every promise made on it (a 202, an acknowledgement to the broker) still
stands; one that fails rolls back to its savepoint and leaves the others be.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TypeVar

T = TypeVar("T")

# How long a BEGIN waits for another process (the CLI) to finish its write, as busy_timeout.
LOCKED_WAIT_MS = 5000


class _Batch:
    """The transactions that will commit together, and the news of how it went."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.committed: asyncio.Future[None] = loop.create_future()
        # Its writers take the outcome; one whose transaction failed alone is not among them.
        self.committed.add_done_callback(lambda done: done.cancelled() or done.exception())
        # Set when SQLite rolled the whole transaction back under one writer (an I/O error,
        # a full disk): the others' changes went with it.
        self.lost: BaseException | None = None


class GroupCommit:
    """The store's write connection, shared by its writers; ``async with transaction()``."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.execute("PRAGMA busy_timeout = 0")  # never wait on the event loop
        self._lock = asyncio.Lock()  # one transaction's statements at a time, or a COMMIT
        self._batch: _Batch | None = None
        self._committing: set[asyncio.Task[None]] = set()
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-commit")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[sqlite3.Connection]:
        """A write transaction on the connection it yields: when this returns, all of it is
        on disk; when it raises, none of it is (unless the writer was cancelled while the
        COMMIT that holds it was under way: that is waited for, then the cancellation passed
        on, as before a statement that ran unseen left the connection inside a transaction)."""
        async with self._lock:
            batch = self._batch or await self._begin()
            self._db.execute("SAVEPOINT writer")
            try:
                yield self._db
            except BaseException as exc:
                self._undo(batch, exc)
                raise
            self._db.execute("RELEASE writer")
        await to_the_end(batch.committed)

    async def close(self) -> None:
        """Wait for the COMMITs under way, then stop the thread."""
        while self._committing:
            await asyncio.gather(*self._committing, return_exceptions=True)
        self._disk.shutdown(wait=True)

    async def _begin(self) -> _Batch:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            # Another process writes: wait for it off the loop, as long as a busy timeout.
            try:
                await to_the_end(self._in_thread(self._begin_when_free))
            except asyncio.CancelledError:
                if self._db.in_transaction:  # it began after all: nobody will use it
                    self._db.execute("ROLLBACK")
                raise
        batch = self._batch = _Batch(asyncio.get_running_loop())
        task = asyncio.create_task(self._commit(batch))
        self._committing.add(task)
        task.add_done_callback(self._committing.discard)
        return batch

    def _begin_when_free(self) -> None:
        self._db.execute(f"PRAGMA busy_timeout = {LOCKED_WAIT_MS}")
        try:
            self._db.execute("BEGIN IMMEDIATE")
        finally:
            self._db.execute("PRAGMA busy_timeout = 0")

    def _undo(self, batch: _Batch, exc: BaseException) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK TO writer")
            self._db.execute("RELEASE writer")
            return
        batch.lost = exc
        if self._batch is batch:
            self._batch = None  # the next writer begins afresh

    async def _commit(self, batch: _Batch) -> None:
        # Queued on the lock behind the writers waiting when the batch began: they join it.
        async with self._lock:
            if self._batch is batch:
                self._batch = None
            if batch.lost is not None:
                batch.committed.set_exception(
                    sqlite3.OperationalError(f"rolled back with the transaction: {batch.lost}")
                )
                return
            try:
                await to_the_end(self._in_thread(self._finish))
            except BaseException as exc:
                batch.committed.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                batch.committed.set_result(None)

    def _finish(self) -> None:
        try:
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _in_thread(self, call: Callable[[], None]) -> asyncio.Future[None]:
        return asyncio.get_running_loop().run_in_executor(self._disk, call)


async def to_the_end(work: Awaitable[T]) -> T:
    """Wait for ``work`` even if cancelled meanwhile, then pass the cancellation on (before
    any error of the work's: the caller was cancelled). Work on the disk happens whether or
    not its caller still waits, and the caller must not act as if it had not."""
    running = asyncio.ensure_future(work)
    cancelled = False
    while not running.done():
        try:
            await asyncio.wait([running])  # cancelling the wait leaves the work be
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError from (None if running.cancelled() else running.exception())
    return running.result()
