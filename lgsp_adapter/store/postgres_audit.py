"""The audit log on PostgreSQL, for deployments whose replicas share one database.

The same tables as on SQLite (``sqlite_audit``), append-only by trigger, including TRUNCATE.
Replicas append concurrently, so each append takes a transaction-scoped advisory lock before
reading the log's size: leaf indexes stay gapless, which a sequence (with its gaps on rollback)
could not give. As on SQLite, an entry's row carries its leaf; the tree's other hashes are
stored when a checkpoint is signed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from lgsp_adapter.audit.checkpoint import Checkpoint
from lgsp_adapter.audit.entry import FIELDS, AuditEntry, format_time
from lgsp_adapter.audit.merkle import Node
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.audit.store import (
    ArchiveRecord,
    StoredCheckpoint,
    StoredEntry,
    checkpoint_of,
    entry_row,
    stored_time,
    where,
)
from lgsp_adapter.audit.tree import extend
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.store.closing import ClosedOnExit
from lgsp_adapter.store.postgres_schema import lock_key, migrate
from lgsp_adapter.store.postgres_witness import SCHEMA as WITNESS_SCHEMA
from lgsp_adapter.store.postgres_witness import PostgresWitnessing

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

MIGRATIONS = [
    """
    CREATE TABLE audit_entries (
        idx BIGINT PRIMARY KEY,
        leaf BYTEA NOT NULL,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        packet_id TEXT,
        sender TEXT,
        recipient TEXT,
        kind TEXT,
        document_id TEXT,
        payload_sha256 TEXT,
        outcome TEXT,
        detail TEXT,
        actor TEXT
    );
    CREATE INDEX audit_entries_packet ON audit_entries (packet_id, idx);
    CREATE INDEX audit_entries_at ON audit_entries (at);
    CREATE INDEX audit_entries_document ON audit_entries (document_id, idx);
    CREATE INDEX audit_entries_sender ON audit_entries (sender, idx);
    CREATE INDEX audit_entries_recipient ON audit_entries (recipient, idx);
    CREATE TABLE audit_tree (
        level SMALLINT NOT NULL,
        idx BIGINT NOT NULL,
        hash BYTEA NOT NULL,
        PRIMARY KEY (level, idx)
    );
    CREATE TABLE audit_checkpoints (
        size BIGINT PRIMARY KEY,
        root BYTEA NOT NULL,
        at TEXT NOT NULL,
        note TEXT NOT NULL
    );
    CREATE TABLE audit_archives (
        start BIGINT NOT NULL,
        "end" BIGINT PRIMARY KEY,
        file TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
    CREATE FUNCTION audit_archived_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.idx >= (SELECT coalesce(max("end"), 0) FROM audit_archives) THEN
                RAISE EXCEPTION 'only archived audit entries may be removed';
            END IF;
            RETURN OLD;
        END $$;
    CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
        FOR EACH ROW EXECUTE FUNCTION audit_append_only();
    CREATE TRIGGER audit_entries_archived_only BEFORE DELETE ON audit_entries
        FOR EACH ROW EXECUTE FUNCTION audit_archived_only();
    CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    """
    + "".join(
        f"""
    CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION audit_append_only();
    CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    """
        for table in ("audit_tree", "audit_checkpoints", "audit_archives")
    ),
    # Witnesses: their cosignatures of this log, and this daemon's view of the logs it witnesses.
    WITNESS_SCHEMA,
]

_COLUMNS = ", ".join(FIELDS)
_PLACEHOLDERS = ", ".join(f"${n}" for n in range(1, len(FIELDS) + 3))
_INSERT_ENTRY = f"INSERT INTO audit_entries (idx, leaf, {_COLUMNS}) VALUES ({_PLACEHOLDERS})"
_SIZE = (
    'SELECT coalesce(max(idx) + 1, (SELECT coalesce(max("end"), 0) FROM audit_archives))'
    " FROM audit_entries"
)
_SELECT_ENTRY = f"SELECT idx, {_COLUMNS} FROM audit_entries"
_BATCH = 5000


class PostgresAuditLog(ClosedOnExit, PostgresWitnessing):
    """The ``AuditStore`` on PostgreSQL; ``async with await PostgresAuditLog.open(dsn)``."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self._pool = pool
        self.schema = schema  # where the tables are: advisory lock keys are made from it
        # Serialises appends, and every write of the exchange store (``postgres``).
        self.append_lock = lock_key(schema, "append")

    @classmethod
    async def open(cls, dsn: str, *, pool_size: int = 4, migrate: bool = True) -> PostgresAuditLog:
        """Connect and bring the schema up to date (or, ``migrate`` false, refuse it behind)."""
        try:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size)
        except (OSError, asyncpg.PostgresError) as exc:
            raise FatalError(
                ErrorCode.STORE_UNAVAILABLE, f"cannot connect to PostgreSQL: {exc}"
            ) from exc
        try:
            schema = str(await pool.fetchval("SELECT current_schema()"))
        except BaseException:
            await pool.close()
            raise
        log = cls(pool, schema)
        try:
            await log._migrate(migrate)
        except BaseException:
            await pool.close()
            raise
        return log

    async def _migrate(self, apply: bool = True) -> None:
        await migrate(self._pool, "audit", MIGRATIONS, self.schema, apply=apply)

    @property
    def pool(self) -> asyncpg.Pool:
        """The connections, for tables whose changes append to this log in one transaction."""
        return self._pool

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    async def append(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries with their leaves, in one transaction."""
        if not entries:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            await self.append_in_transaction(conn, entries)

    async def append_in_transaction(self, conn: Conn, entries: Sequence[AuditEntry]) -> None:
        """Append inside the caller's transaction on ``conn``."""
        await conn.execute("SELECT pg_advisory_xact_lock($1)", self.append_lock)
        size = await conn.fetchval(_SIZE)
        await conn.executemany(
            _INSERT_ENTRY,
            [(size + n, *entry_row(entry)) for n, entry in enumerate(entries)],
        )

    async def tree_size(self) -> int:
        """How many entries the log has had (its leaves), archived ones included."""
        async with self._pool.acquire() as conn:
            return int(await conn.fetchval(_SIZE))

    async def nodes(self, keys: Sequence[Node]) -> dict[Node, bytes]:
        """The stored subtree hashes among ``keys``."""
        async with self._pool.acquire() as conn:
            return await _nodes(conn, keys)

    async def node_range(self, level: int, start: int, end: int) -> dict[int, bytes]:
        """The stored subtree hashes of ``level`` with index in [start, end), by index."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT idx, hash FROM audit_tree WHERE level = $1 AND idx >= $2 AND idx < $3",
                level,
                start,
                end,
            )
        return {int(row[0]): bytes(row[1]) for row in rows}

    async def stored_entries(self, start: int = 0) -> AsyncIterator[StoredEntry]:
        """Every entry from ``start`` on, in index order, with its stored leaf."""
        position = start
        while True:
            async with self._pool.acquire() as conn:
                rows = await conn.fetch(
                    f"SELECT idx, {_COLUMNS}, leaf FROM audit_entries"
                    " WHERE idx >= $1 ORDER BY idx LIMIT $2",
                    position,
                    _BATCH,
                )
            for row in rows:
                yield StoredEntry(
                    index=row[0],
                    fields=dict(zip(FIELDS, list(row)[1:-1], strict=True)),
                    leaf=bytes(row[-1]),
                )
            if len(rows) < _BATCH:
                return
            position = rows[-1][0] + 1

    async def entries(self, start: int, end: int) -> list[AuditEntry]:
        """Entries with index in [start, end)."""
        return await self._select(" WHERE idx >= $1 AND idx < $2 ORDER BY idx", start, end)

    async def query(self, query: AuditQuery) -> list[AuditEntry]:
        """One page of entries matching ``query``, in index order."""
        parameters: list[Any] = []

        def bind(value: Any) -> str:
            parameters.append(value)
            return f"${len(parameters)}"

        clause = where(query, bind)
        order = "DESC" if query.newest_first else ""
        return await self._select(
            f"{clause} ORDER BY idx {order} LIMIT ${len(parameters) + 1}",
            *parameters,
            query.limit,
        )

    async def history(self, packet_id: UUID) -> list[AuditEntry]:
        """A packet's entries, in the order they were appended."""
        return await self._select(" WHERE packet_id = $1 ORDER BY idx", str(packet_id))

    async def _select(self, tail: str, *parameters: Any) -> list[AuditEntry]:
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(_SELECT_ENTRY + tail, *parameters)
        return [
            AuditEntry.from_fields(dict(zip(FIELDS, list(row)[1:], strict=True)), row[0])
            for row in rows
        ]

    async def checkpoint(
        self, key: LogKey, *, min_size: int = 1, cosigner: LogKey | None = None
    ) -> StoredCheckpoint | None:
        """Sign and keep a checkpoint of the tree as it is now (see ``AuditStore``)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self.append_lock)
            size = int(await conn.fetchval(_SIZE))
            if size < min_size:
                return None
            latest = await conn.fetchrow(
                "SELECT size, root, at, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
            )
            if latest is not None and latest[0] == size:
                return checkpoint_of(latest)

            root = await _build_tree(conn, size)
            signed = Checkpoint(origin=key.name, size=size, root=root, at=datetime.now(UTC))
            note = signed.sign(key)
            if cosigner is not None:
                note = cosigner.cosign(note)
            await conn.execute(
                "INSERT INTO audit_checkpoints (size, root, at, note) VALUES ($1, $2, $3, $4)",
                size,
                root,
                format_time(signed.at),
                note,
            )
        return StoredCheckpoint(size=size, root=root, at=signed.at, note=note)

    async def checkpoints(self) -> list[StoredCheckpoint]:
        """Every checkpoint, smallest first."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT size, root, at, note FROM audit_checkpoints ORDER BY size"
            )
        return [checkpoint_of(row) for row in rows]

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The largest checkpoint, or None before the first."""
        row = await self._pool.fetchrow(
            "SELECT size, root, at, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
        )
        return None if row is None else checkpoint_of(row)

    async def archives(self) -> list[ArchiveRecord]:
        """Archives made so far, oldest first."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                'SELECT start, "end", file, sha256, at FROM audit_archives ORDER BY "end"'
            )
        return [
            ArchiveRecord(
                start=row[0],
                end=row[1],
                file=row[2],
                sha256=row[3],
                at=stored_time(row[4]),
            )
            for row in rows
        ]

    async def remove_archived(self, record: ArchiveRecord) -> None:
        """Record the archive and delete its entries, in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                'INSERT INTO audit_archives (start, "end", file, sha256, at)'
                " VALUES ($1, $2, $3, $4, $5)",
                record.start,
                record.end,
                record.file,
                record.sha256,
                format_time(record.at),
            )
            await conn.execute("DELETE FROM audit_entries WHERE idx < $1", record.end)


async def _build_tree(conn: Conn, size: int) -> bytes:
    """Store the tree's hashes up to ``size`` leaves (inside a transaction holding the lock)."""
    built = int(
        await conn.fetchval("SELECT coalesce(max(idx) + 1, 0) FROM audit_tree WHERE level = 0")
    )
    rows = await conn.fetch(
        "SELECT idx, leaf FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        built,
        size,
    )
    if built + len(rows) != size:
        raise LookupError(f"entries {built} to {size - 1} are not all in the store")

    async def load(keys: Sequence[Node]) -> dict[Node, bytes]:
        return await _nodes(conn, keys)

    nodes, root = await extend(built, load, [(int(r[0]), bytes(r[1])) for r in rows])
    await conn.executemany("INSERT INTO audit_tree (level, idx, hash) VALUES ($1, $2, $3)", nodes)
    return root


async def _nodes(conn: Conn, keys: Sequence[Node]) -> dict[Node, bytes]:
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT t.level, t.idx, t.hash FROM audit_tree t"
        " JOIN unnest($1::smallint[], $2::bigint[]) AS k(level, idx)"
        " ON t.level = k.level AND t.idx = k.idx",
        [level for level, _ in keys],
        [index for _, index in keys],
    )
    return {(row[0], row[1]): bytes(row[2]) for row in rows}
