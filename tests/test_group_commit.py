"""Group commit: concurrent writers share COMMITs, and each still gets all or nothing."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator
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
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")  # the CLI, say, writing
        threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        await insert(writer, 1)
        ticker.cancel()
        other.close()
        assert ticks > 0  # the loop went on meanwhile (a busy wait on it would freeze it)
        assert kept(path) == [1]


@pytest.mark.asyncio
async def test_a_writer_cancelled_during_its_commit_learns_it_after_the_commit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    async with opened(path) as (writer, _):
        task = asyncio.create_task(insert(writer, 1))
        await asyncio.sleep(0)  # the statements ran; the COMMIT is under way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert kept(path) == [1]  # cancelled, but told only once the flush was done
