"""Group commit: concurrent writers share COMMITs, and each still gets all or nothing."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from lgsp_adapter.store.group_commit import GroupCommit


@contextlib.asynccontextmanager
async def opened(path: Path) -> AsyncIterator[tuple[GroupCommit, sqlite3.Connection]]:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS t (k INTEGER PRIMARY KEY, v BLOB)")
    writer = GroupCommit(db)
    try:
        yield writer, db
    finally:
        await writer.close()
        db.close()


def kept(path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as other:
        return [row[0] for row in other.execute("SELECT k FROM t ORDER BY k")]


def writing_elsewhere(
    path: Path, for_s: float, then: Callable[[], object] = lambda: None
) -> sqlite3.Connection:
    """Another process's write transaction on the file, for ``for_s`` seconds (``then`` is
    called just before it commits)."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    def commit() -> None:
        then()
        other.execute("COMMIT")

    threading.Timer(for_s, commit).start()
    return other


@contextlib.asynccontextmanager
async def ticking() -> AsyncIterator[list[int]]:
    """How many times a 10 ms tick ran on the loop meanwhile."""
    ticks = [0]

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.01)
            ticks[0] += 1

    ticker = asyncio.create_task(tick())
    try:
        yield ticks
    finally:
        ticker.cancel()


async def insert(writer: GroupCommit, key: int, value: bytes = b"") -> None:
    async with writer.transaction() as db:
        db.execute("INSERT INTO t VALUES (?, ?)", (key, value))


@pytest.mark.asyncio
async def test_concurrent_writers_share_a_commit_and_all_are_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    async with opened(path) as (writer, db):
        commits: list[str] = []
        db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
        await asyncio.gather(*(insert(writer, key) for key in range(50)))
        db.set_trace_callback(None)
        # Read by another connection: what each writer was told is on disk, is.
        assert kept(path) == list(range(50))
        assert 1 <= len(commits) <= 2  # one flush for the lot, not fifty


@pytest.mark.asyncio
async def test_a_failing_writer_rolls_back_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    async with opened(path) as (writer, _):
        await insert(writer, 1)
        outcomes = await asyncio.gather(
            insert(writer, 2), insert(writer, 1), insert(writer, 3), return_exceptions=True
        )
        assert outcomes[0] is None
        assert outcomes[2] is None
        assert isinstance(outcomes[1], sqlite3.IntegrityError)
        assert kept(path) == [1, 2, 3]


@pytest.mark.asyncio
async def test_a_transaction_sqlite_rolls_back_whole_fails_every_writer_in_it(
    tmp_path: Path,
) -> None:
    # A full disk rolls back the whole transaction, not just the statement: the others in
    # the batch lost their changes too and must not hear they are kept.
    path = tmp_path / "s.sqlite3"
    async with opened(path) as (writer, db):
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages + 4}")
        outcomes = await asyncio.gather(
            insert(writer, 1), insert(writer, 2, b"x" * 100_000), return_exceptions=True
        )
        assert all(isinstance(outcome, sqlite3.OperationalError) for outcome in outcomes)
        assert "full" in str(outcomes[1])
        assert kept(path) == []
        db.execute("PRAGMA max_page_count = 1073741823")
        await insert(writer, 3)  # the next transaction begins afresh
        assert kept(path) == [3]


@pytest.mark.asyncio
async def test_a_locked_file_is_waited_for_off_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    async with opened(path) as (writer, _):
        seen: list[int] = []
        async with ticking() as ticks:
            # The CLI, say, writing; the ticks are counted when it lets go, before any COMMIT.
            other = writing_elsewhere(path, for_s=0.3, then=lambda: seen.append(ticks[0]))
            await insert(writer, 1)
        other.close()
        assert seen[0] > 0  # the loop went on while the other held the file
        assert kept(path) == [1]


@pytest.mark.asyncio
async def test_a_writer_cancelled_during_its_commit_learns_it_after_the_commit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    async with opened(path) as (writer, _):
        disk = threading.Event()
        writer._disk.submit(disk.wait)  # the disk is slow: the COMMIT waits behind this
        try:
            task = asyncio.create_task(insert(writer, 1))
            await asyncio.sleep(0.01)  # its statements ran; its commit is queued
            task.cancel()
            await asyncio.sleep(0.01)
            assert not task.done()  # cancelled, it still waits for the flush
        finally:
            disk.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert kept(path) == [1]


# Found by review: each of these failed before its fix.


@pytest.mark.asyncio
async def test_a_committer_cancelled_while_queued_still_commits_for_its_writers(
    tmp_path: Path,
) -> None:
    # asyncio.run cancels every task when the daemon stops: the writers waiting on a
    # cancelled committer waited for ever, and so did every writer after them.
    path = tmp_path / "s.sqlite3"
    async with opened(path) as (writer, db):
        gate = asyncio.Event()

        async def suspending() -> None:
            async with writer.transaction() as connection:
                connection.execute("INSERT INTO t VALUES (1, '')")
                await gate.wait()  # a body that truly waits, holding the lock

        first = asyncio.create_task(suspending())
        await asyncio.sleep(0.01)
        (committer,) = writer._committing
        committer.cancel()
        gate.set()
        async with asyncio.timeout(5):
            await first
            await insert(writer, 2)
        assert kept(path) == [1, 2]
        assert not db.in_transaction


@pytest.mark.asyncio
async def test_a_committer_cancelled_during_its_commit_tells_its_writers_the_truth(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    async with opened(path) as (writer, _):
        writer._disk.submit(time.sleep, 0.3)  # a slow disk: the COMMIT waits in the thread
        task = asyncio.create_task(insert(writer, 1))
        await asyncio.sleep(0.05)
        (committer,) = writer._committing
        committer.cancel()
        await task  # never cancelled itself, and its change is on disk: no CancelledError
        assert kept(path) == [1]


@pytest.mark.asyncio
async def test_closing_while_a_writer_waits_for_another_process_leaves_nothing_stuck(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    async with opened(path) as (writer, db):
        other = writing_elsewhere(path, for_s=0.5)
        waiting = asyncio.create_task(insert(writer, 1))
        await asyncio.sleep(0.05)  # in the thread, waiting for the lock
        async with ticking() as ticks:
            await writer.close()
        await waiting  # had its turn: began when the other let go, and committed
        with pytest.raises(sqlite3.OperationalError, match="closing"):
            await insert(writer, 2)
        other.close()
        assert ticks[0] > 0  # the loop went on while close waited
        assert kept(path) == [1]
        assert not db.in_transaction


@pytest.mark.asyncio
async def test_a_writer_whose_savepoint_cannot_be_released_keeps_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    async with opened(path) as (writer, _):
        await insert(writer, 1)
        await insert(writer, 2)
        cursors = []

        async def leaves_a_statement_running() -> None:
            async with writer.transaction() as connection:
                connection.execute("INSERT INTO t VALUES (10, '')")
                cursors.append(connection.execute("UPDATE t SET v = 'x' RETURNING k"))
                cursors[0].fetchone()  # one row of three: the statement is still running

        with pytest.raises(sqlite3.OperationalError):
            await leaves_a_statement_running()
        cursors.clear()
        await insert(writer, 20)
        assert kept(path) == [1, 2, 20]


@pytest.mark.asyncio
async def test_a_transaction_inside_another_is_refused_not_a_silent_hang(
    tmp_path: Path,
) -> None:
    async with opened(tmp_path / "s.sqlite3") as (writer, _):
        with pytest.raises(RuntimeError, match="inside another"):
            async with writer.transaction():
                await insert(writer, 1)


def test_a_daemon_stopping_mid_write_still_exits() -> None:
    # asyncio.run cancels every task at its end, helpers too: a committer that waited for the
    # lock through a helper task lost it there, and the writers waiting on it never finished.
    script = textwrap.dedent(
        """
        import asyncio, sqlite3, sys, tempfile
        from pathlib import Path
        from lgsp_adapter.store.group_commit import GroupCommit

        async def main(path):
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("CREATE TABLE t (k INTEGER PRIMARY KEY)")
            writer = GroupCommit(db)

            async def write(key, then):
                async with writer.transaction() as connection:
                    connection.execute("INSERT INTO t VALUES (?)", (key,))
                    await then

            asyncio.create_task(write(1, asyncio.sleep(0)))
            asyncio.create_task(write(2, asyncio.sleep(10)))  # holds the lock
            await asyncio.sleep(0.1)

        with tempfile.TemporaryDirectory() as folder:
            asyncio.run(main(Path(folder) / "s.sqlite3"))
        print("exited")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "exited", done.stderr
