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
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)

# How long a BEGIN waits for another process (the CLI) to finish its write, as busy_timeout.
LOCKED_WAIT_MS = 5000


class _Batch:
    """The transactions that will commit together, and the news of how it went."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.committed: asyncio.Future[None] = loop.create_future()
        # Its writers take the outcome; one whose transaction failed alone is not among them.
        self.committed.add_done_callback(lambda done: done.cancelled() or done.exception())
        # Called once the COMMIT is on disk, for the writers whose changes it holds.
        self.on_commit: list[Callable[[], None]] = []
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
        self._writing: asyncio.Task[Any] | None = None  # whose statements run now
        self._committing: set[asyncio.Task[None]] = set()
        self._closing = False
        self._disk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-commit")

    @asynccontextmanager
    async def transaction(
        self, on_commit: Callable[[], None] | None = None
    ) -> AsyncIterator[sqlite3.Connection]:
        """A write transaction on the connection it yields: when this returns, all of it is
        on disk; when it raises, none of it is (unless the writer was cancelled while the
        COMMIT that holds it was under way: that is waited for, then the cancellation passed
        on). ``on_commit`` is called once its changes are on disk, even if the writer was
        cancelled meanwhile, and never if they are not."""
        if self._writing is not None and self._writing is asyncio.current_task():
            raise RuntimeError("a write transaction inside another would wait for itself")
        if self._closing:  # those already waiting still have their turn
            raise sqlite3.OperationalError("the store is closing")
        async with self._lock:
            batch = await self._join()
            self._writing = asyncio.current_task()
            try:
                self._db.execute("SAVEPOINT writer")
                try:
                    yield self._db
                    if not self._db.in_transaction:  # a body swallowed a rollback's error
                        raise sqlite3.OperationalError("the transaction was rolled back")
                    self._db.execute("RELEASE writer")
                except BaseException as exc:
                    self._undo(batch, exc)
                    raise
            finally:
                self._writing = None
            if on_commit is not None:
                batch.on_commit.append(on_commit)
        await to_the_end(batch.committed)

    async def close(self) -> None:
        """Refuse new transactions, and wait for those under way to be on disk."""
        self._closing = True
        async with self._lock:
            pass  # the writers queued before now have had their turn
        while self._committing:
            await asyncio.wait(set(self._committing))  # not cancelled if this wait is
        self._disk.shutdown(wait=False)  # idle: nothing holds the lock, nothing commits

    async def _join(self) -> _Batch:
        if self._batch is not None and self._db.in_transaction:
            return self._batch
        if self._batch is not None:  # rolled back under a writer that did not say so
            self._lost(self._batch, sqlite3.OperationalError("the transaction was rolled back"))
        if self._db.in_transaction:  # left by nobody we know of: start clean
            self._db.execute("ROLLBACK")
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # BUSY_RECOVERY too
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
            try:
                self._db.execute("ROLLBACK TO writer")
                self._db.execute("RELEASE writer")
                return
            except sqlite3.Error:
                self._db.execute("ROLLBACK")  # the others' changes cannot be told apart
        self._lost(batch, exc)

    def _lost(self, batch: _Batch, exc: BaseException) -> None:
        batch.lost = exc
        if self._batch is batch:
            self._batch = None  # the next writer begins afresh

    async def _commit(self, batch: _Batch) -> None:
        """COMMIT the batch once the writers queued when it began have joined it. Cancelled
        (the loop shutting down), it still finishes: its writers wait for its outcome and
        would otherwise wait for ever, and the connection must not stay in a transaction."""
        cancelled = False
        while True:  # in this task: asyncio.run cancels every task, a helper one too
            try:
                await self._lock.acquire()
                break
            except asyncio.CancelledError:
                cancelled = True
        try:
            if self._batch is batch:
                self._batch = None
            outcome: BaseException | None
            if batch.lost is not None:
                lost = f"rolled back with the transaction: {batch.lost}"
                outcome = sqlite3.OperationalError(lost)
            else:
                try:
                    committing = self._in_thread(self._finish)
                except RuntimeError as exc:  # the executor was shut down
                    outcome = exc
                else:
                    cancelled = await _wait_out(committing) or cancelled
                    outcome = committing.exception()
                if outcome is not None and self._db.in_transaction:
                    self._db.execute("ROLLBACK")  # the thread never ran it
        finally:
            self._lock.release()
        if outcome is None:
            for committed in batch.on_commit:
                try:
                    committed()
                except Exception:  # an observer's bug: the writers must still hear
                    log.exception("after a commit")
            batch.committed.set_result(None)
        else:
            batch.committed.set_exception(outcome)
        if cancelled:
            raise asyncio.CancelledError

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
    if await _wait_out(running):
        raise asyncio.CancelledError from (None if running.cancelled() else running.exception())
    return running.result()


async def _wait_out(running: asyncio.Future[Any]) -> bool:
    """Wait until ``running`` is done, whatever happens to this task meanwhile; whether it was
    cancelled (cancelling the wait leaves the work be)."""
    cancelled = False
    while not running.done():
        try:
            await asyncio.wait([running])
        except asyncio.CancelledError:
            cancelled = True
    return cancelled
