"""The embedded store: one SQLite file, in WAL mode, each change one durable transaction.

``synchronous=FULL`` makes every commit survive a power cut, which is the promise behind a 202:
an accepted packet is on disk before the sender hears so. One connection writes, in
transactions that concurrent writers share the COMMITs of (``group_commit``); another reads.
The audit log (``sqlite_audit``) shares the connections, and appends inside the same
transactions as the changes it records.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self
from uuid import UUID

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.audit.entry import FIELDS
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.store.base import (
    FACT_COLUMNS,
    CommitObserver,
    DeadLetter,
    DeliveryRecord,
    DeliveryState,
    InboxItem,
    OutboxItem,
    PacketFacts,
    PacketIdTaken,
    StoredPacket,
    dead_letter_of,
    delivery_of,
    facts_of,
    inbox_item_of,
    packet_of,
    schema_behind,
    tell_observers,
)
from lgsp_adapter.store.group_commit import LOCKED_WAIT_MS, GroupCommit, to_the_end
from lgsp_adapter.store.sqlite_agency_list import SCHEMA as AGENCY_LIST_SCHEMA
from lgsp_adapter.store.sqlite_agency_list import SqliteAgencyList
from lgsp_adapter.store.sqlite_audit import SCHEMA, SqliteAuditLog
from lgsp_adapter.store.sqlite_registry import REMOVED_SCHEMA, SqliteRegistry
from lgsp_adapter.store.sqlite_registry import SCHEMA as REGISTRY_SCHEMA

# Each entry moves the schema one version on; never edit one that has shipped. An entry is SQL,
# or SQL and the name of a method that moves data in the same transaction.
MIGRATIONS: list[str | tuple[str, str]] = [
    """
    CREATE TABLE packets (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipients TEXT NOT NULL,          -- JSON list of agency codes
        document_id TEXT,
        content_type TEXT NOT NULL,
        payload BLOB NOT NULL,
        sha256 TEXT NOT NULL,
        client TEXT,
        received_at TEXT NOT NULL
    );
    CREATE TABLE deliveries (
        packet_id TEXT NOT NULL REFERENCES packets(id),
        recipient TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        detail TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (packet_id, recipient)
    );
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        event TEXT NOT NULL,
        packet_id TEXT,
        sender TEXT,
        recipient TEXT,
        kind TEXT,
        document_id TEXT,
        payload_sha256 TEXT,
        outcome TEXT,
        detail TEXT
    );
    CREATE INDEX audit_log_packet ON audit_log (packet_id, seq);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # The embedded bus: deliveries waiting for the consumer, each due at a time (now, or later
    # for a durable retry) and leased while one is working on it.
    """
    CREATE TABLE queue (
        packet_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        due_at REAL NOT NULL,
        leased_until REAL,
        PRIMARY KEY (packet_id, recipient),
        FOREIGN KEY (packet_id, recipient) REFERENCES deliveries (packet_id, recipient)
    );
    CREATE INDEX queue_due ON queue (due_at);
    CREATE INDEX deliveries_state ON deliveries (state);
    """,
    # The audit log becomes a verifiable transparency log (docs/audit.md): entries by leaf index
    # and the tree's hashes; the entries of the plain log move over, in order.
    (SCHEMA, "_move_audit_log"),
    # The list of agencies the exchange knows (national list, settings): who can be sent to.
    AGENCY_LIST_SCHEMA,
    # The live registry of the endpoints this daemon serves, and the tokens of their systems.
    REGISTRY_SCHEMA,
    # Removed codes, so that a removal outlives the settings file and a revision its record.
    REMOVED_SCHEMA,
]


class SqliteStore:
    """The ``Store`` on one SQLite file; use ``async with SqliteStore.open(path) as store``.

    Statements run on the event loop: a read or an insert takes microseconds, far less than the
    hop to a thread and back that aiosqlite made of each. Writes go through ``GroupCommit``,
    whose COMMIT, the one step that waits on the disk, runs in a thread."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        reader: sqlite3.Connection,
        owner: IO[bytes] | None = None,
    ) -> None:
        self._db = connection  # writes, in the transactions of self._writer only
        # Reads on their own connection see only committed data (WAL), and need no lock.
        self._read = reader
        self._writer = GroupCommit(connection)
        self._owner = owner  # the open lock file while this process owns the store
        # Entries appended in the open transaction, told to observers once it commits.
        self._appended: list[AuditEntry] = []
        self._observers: list[CommitObserver] = []
        self.audit = SqliteAuditLog(
            writer=connection,
            reader=reader,
            transaction=self._write,
            appended=lambda entries: self._appended.extend(entries),
        )
        self.agency_list = SqliteAgencyList(
            writer=connection, reader=reader, transaction=self._write, audit=self.audit
        )
        self.registry = SqliteRegistry(
            writer=connection, reader=reader, transaction=self._write, audit=self.audit
        )

    @classmethod
    async def open(cls, path: Path, *, owner: bool = False, migrate: bool = True) -> SqliteStore:
        """Open (creating it and its folder if needed) and bring the schema up to date, or
        with ``migrate`` false refuse a schema that is not.

        ``owner``: this process runs the exchange on the store (the daemon), and no other may
        at the same time: two would both deliver what the queue holds."""
        if not migrate and not await asyncio.to_thread(path.exists):
            # Told to leave the schema to `migrate`, it makes no store either (a mistyped
            # path would otherwise become an empty one).
            raise schema_behind("store", 0, len(MIGRATIONS))
        lock_file = None
        connections: list[sqlite3.Connection] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if owner:
                lock_file = _take_ownership(path)
            for _ in range(2):  # the writer, then the reader
                connections.append(_connect(path))
            store = cls(connections[0], connections[1], lock_file)
            # Migrating may wait for another process's write, and writes a whole schema: in
            # a thread, waited for even if cancelled (closing a connection in use crashes).
            await to_the_end(asyncio.to_thread(store._prepare, migrate))
        except BaseException as exc:
            for connection in connections:
                connection.close()
            if lock_file is not None:
                lock_file.close()  # or another process could never own the store
            if isinstance(exc, OSError | sqlite3.Error):
                raise FatalError(
                    ErrorCode.STORE_UNAVAILABLE, f"cannot open the store {path}: {exc}"
                ) from exc
            raise
        return store

    def _prepare(self, migrate: bool) -> None:
        self._read.execute(f"PRAGMA busy_timeout = {LOCKED_WAIT_MS}")
        self._db.execute(f"PRAGMA busy_timeout = {LOCKED_WAIT_MS}")
        try:
            self._migrate(migrate)
        finally:
            self._db.execute("PRAGMA busy_timeout = 0")  # GroupCommit waits off the loop

    def _migrate(self, migrate: bool) -> None:
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            self._db.execute(f"PRAGMA {pragma}")
        row = self._db.execute("PRAGMA user_version").fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise FatalError(
                ErrorCode.STORE_UNAVAILABLE,
                f"the store's schema (version {version}) is newer than this adapter knows",
            )
        if version < len(MIGRATIONS) and not migrate:
            raise schema_behind("store", version, len(MIGRATIONS))
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            if isinstance(step, str):
                self._db.executescript(f"BEGIN; {step}; PRAGMA user_version = {number}; COMMIT;")
                continue
            script, mover = step
            self._db.executescript(f"BEGIN IMMEDIATE; {script};")
            try:
                getattr(self, mover)()
                self._db.execute(f"PRAGMA user_version = {number}")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _move_audit_log(self) -> None:
        rows = self._db.execute(
            "SELECT at, event, packet_id, sender, recipient, kind, document_id, payload_sha256,"
            " outcome, detail FROM audit_log ORDER BY seq"
        ).fetchall()
        names = FIELDS[:-1]  # the plain log had no actor
        entries = [AuditEntry.from_fields(dict(zip(names, row, strict=True))) for row in rows]
        self.audit.append_in_transaction(entries)
        self._db.execute("DROP TABLE audit_log")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections once the COMMITs under way are on disk."""
        await self._writer.close()
        self._read.close()
        self._db.close()
        if self._owner is not None:
            self._owner.close()  # releases the lock

    def observe(self, observer: CommitObserver) -> None:
        """Call ``observer`` after each commit that appended to the audit log, with the
        entries and the seconds the write took (the metrics count packet events so, and so
        cannot disagree with the log)."""
        self._observers.append(observer)

    # -- one process owns the store: nothing to coordinate with

    @asynccontextmanager
    async def exclusive(self, packet_id: UUID, recipient: str) -> AsyncIterator[None]:
        """Nothing to hold: no other process runs the exchange on this file."""
        yield

    async def claim_for(self, identity: str) -> None:
        """Nothing to claim: the file is this process's (``owner``)."""

    async def take_role(self, role: str) -> bool:
        """Every role is this process's."""
        return True

    async def release_role(self, role: str) -> None:
        """Nobody else could take it."""

    async def on_outbox(self, listener: Callable[[], None]) -> None:
        """Nobody else fills this outbox (the intake wakes the relay itself)."""

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[None]:
        """One write transaction: all of it on disk, or none of it, even when the writer is
        cancelled (a consumer whose broker connection dropped); see ``GroupCommit``."""
        began = time.perf_counter()
        appended: list[AuditEntry] = []

        def committed() -> None:  # told even if the writer was cancelled meanwhile
            if appended:
                tell_observers(self._observers, appended, time.perf_counter() - began)

        async with self._writer.transaction(on_commit=committed):
            self._appended = appended
            yield

    async def accept(self, packet: StoredPacket, entries: list[AuditEntry]) -> None:
        """Keep a new packet, one ``accepted`` delivery per recipient, and the entries."""
        now = _now()
        statements = [
            (f"INSERT INTO packets {_PACKET_COLUMNS}", _packet_row(packet)),
            *(
                (
                    "INSERT INTO deliveries (packet_id, recipient, state, updated_at)"
                    " VALUES (?, ?, ?, ?)",
                    (str(packet.id), recipient, DeliveryState.ACCEPTED.value, now),
                )
                for recipient in packet.recipients
            ),
        ]
        async with self._write():
            for sql, parameters in statements:
                self._db.execute(sql, parameters)
            self._append(entries)

    async def packet(self, packet_id: UUID) -> StoredPacket | None:
        """The packet, or None."""
        rows = _fetch(self._read, f"SELECT {_FACTS}, payload {_BY_ID}", (str(packet_id),))
        return packet_of(rows[0]) if rows else None

    async def facts(self, packet_id: UUID) -> PacketFacts | None:
        """The packet without its bytes, or None."""
        rows = _fetch(self._read, f"SELECT {_FACTS} {_BY_ID}", (str(packet_id),))
        return facts_of(rows[0]) if rows else None

    async def deliveries(self, packet_id: UUID) -> list[DeliveryRecord]:
        """The packet's deliveries, in recipient order."""
        rows = _fetch(
            self._read,
            "SELECT packet_id, recipient, state, attempts, detail, updated_at FROM deliveries"
            " WHERE packet_id = ? ORDER BY recipient",
            (str(packet_id),),
        )
        return [delivery_of(row) for row in rows]

    async def update_delivery(
        self,
        packet_id: UUID,
        recipient: str,
        state: DeliveryState,
        *,
        entries: list[AuditEntry],
        detail: str | None = None,
        attempted: bool = False,
    ) -> DeliveryRecord:
        """Move a delivery to ``state`` with its entries; ``KeyError`` if there is none."""
        async with self._write():
            record = self._set_state(packet_id, recipient, state, detail, attempted)
            self._append(entries)
        return record

    async def outbox(self, limit: int) -> list[OutboxItem]:
        """Deliveries accepted but not yet on the bus, oldest first."""
        rows = _fetch(
            self._read,
            # length() of a blob is in its record's header: the payload is not read.
            "SELECT d.packet_id, d.recipient, length(p.payload) FROM deliveries d"
            " JOIN packets p ON p.id = d.packet_id WHERE d.state = ?"
            " ORDER BY d.updated_at, d.rowid LIMIT ?",
            (DeliveryState.ACCEPTED.value, limit),
        )
        return [OutboxItem(UUID(row[0]), row[1], row[2]) for row in rows]

    async def delivery_counts(self) -> dict[DeliveryState, int]:
        """How many deliveries are in each state (for the metrics)."""
        rows = self._read.execute(
            "SELECT state, COUNT(*) FROM deliveries GROUP BY state"
        ).fetchall()
        return {DeliveryState(row[0]): int(row[1]) for row in rows}

    async def outbox_size(self) -> tuple[int, int]:
        """How many packets wait for the bus, and their bytes (each packet once, however many
        of its deliveries wait)."""
        rows = _fetch(
            self._read,
            "SELECT COUNT(*), COALESCE(SUM(length(payload)), 0) FROM packets WHERE id IN"
            " (SELECT packet_id FROM deliveries WHERE state = ?)",
            (DeliveryState.ACCEPTED.value,),
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    async def enqueue(self, packet_id: UUID, recipient: str, entries: list[AuditEntry]) -> None:
        """The embedded bus's publish: queue the delivery and mark it published, together."""
        await self.enqueue_many([(packet_id, recipient, entries)])

    async def enqueue_many(self, items: list[tuple[UUID, str, list[AuditEntry]]]) -> None:
        """Publish several deliveries in one transaction: one disk flush for the lot."""
        async with self._write():
            for packet_id, recipient, entries in items:
                self._db.execute(
                    "INSERT OR IGNORE INTO queue (packet_id, recipient, due_at) VALUES (?, ?, ?)",
                    (str(packet_id), recipient, time.time()),
                )
                self._set_state(packet_id, recipient, DeliveryState.PUBLISHED, None, False)
                self._append(entries)

    async def mark_published(self, items: list[tuple[UUID, str, list[AuditEntry]]]) -> None:
        """Deliveries the bus confirmed, recorded in one transaction."""
        async with self._write():
            for packet_id, recipient, entries in items:
                # Only from accepted: a receipt may already have said how it ended.
                self._db.execute(
                    "UPDATE deliveries SET state = ?, updated_at = ?"
                    " WHERE packet_id = ? AND recipient = ? AND state = ?",
                    (
                        DeliveryState.PUBLISHED.value,
                        _now(),
                        str(packet_id),
                        recipient,
                        DeliveryState.ACCEPTED.value,
                    ),
                )
                self._append(entries)

    async def receive(
        self, packet: StoredPacket, recipient: str, entries: list[AuditEntry]
    ) -> bool:
        """Keep a packet that came over the bus for ``recipient``, once, with ``entries``:
        False if it was already here (a redelivery: nothing is written), True if new;
        ``PacketIdTaken`` if another packet has its id."""
        async with self._write():
            self._db.execute(
                f"INSERT OR IGNORE INTO packets {_PACKET_COLUMNS}", _packet_row(packet)
            )
            kept = self._db.execute(
                "SELECT sha256 FROM packets WHERE id = ?", (str(packet.id),)
            ).fetchone()
            if kept[0] != packet.sha256:
                raise PacketIdTaken(packet.id)
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO deliveries (packet_id, recipient, state, updated_at)"
                " VALUES (?, ?, ?, ?)",
                (str(packet.id), recipient, DeliveryState.PUBLISHED.value, _now()),
            )
            new = cursor.rowcount == 1
            if new:
                self._append(entries)
        return new

    async def lease(
        self, recipients: list[str], *, limit: int, lease_s: float
    ) -> list[tuple[UUID, str]]:
        """Take up to ``limit`` due deliveries to ``recipients`` for ``lease_s`` seconds; one
        not settled by then (its worker died) is due again."""
        now = time.time()
        async with self._write():
            rows = self._db.execute(
                "UPDATE queue SET leased_until = ? WHERE rowid IN (SELECT rowid FROM queue"
                " WHERE recipient IN (SELECT value FROM json_each(?)) AND due_at <= ?"
                " AND (leased_until IS NULL OR leased_until < ?) ORDER BY due_at LIMIT ?)"
                " RETURNING packet_id, recipient",
                (now + lease_s, json.dumps(recipients), now, now, limit),
            ).fetchall()
        return [(UUID(row[0]), row[1]) for row in rows]

    async def release(self, packet_id: UUID, recipient: str, retry_in_s: float) -> None:
        """Give a leased delivery back, due again in ``retry_in_s`` (its handling failed)."""
        async with self._write():
            self._db.execute(
                "UPDATE queue SET leased_until = NULL, due_at = ?"
                " WHERE packet_id = ? AND recipient = ?",
                (time.time() + retry_in_s, str(packet_id), recipient),
            )

    async def release_leases(self) -> int:
        """Make every leased delivery due now: at start, no worker can still hold one."""
        async with self._write():
            cursor = self._db.execute(
                "UPDATE queue SET leased_until = NULL WHERE leased_until IS NOT NULL"
            )
        return cursor.rowcount

    async def next_due_in(self, recipients: list[str]) -> float | None:
        """Seconds until the next delivery to ``recipients`` falls due (0 if one is due)."""
        row = self._read.execute(
            "SELECT min(max(due_at, coalesce(leased_until, 0))) FROM queue"
            " WHERE recipient IN (SELECT value FROM json_each(?))",
            (json.dumps(recipients),),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return max(0.0, float(row[0]) - time.time())

    async def settle(
        self,
        packet_id: UUID,
        recipient: str,
        state: DeliveryState,
        *,
        entries: list[AuditEntry],
        detail: str | None = None,
        attempted: bool = False,
        retry_in_s: float | None = None,
    ) -> DeliveryRecord:
        """The embedded bus's acknowledgement: record the outcome and its entries, and take the
        delivery off the queue, or put it back due in ``retry_in_s`` seconds."""
        async with self._write():
            record = self._set_state(packet_id, recipient, state, detail, attempted)
            if retry_in_s is None:
                self._db.execute(
                    "DELETE FROM queue WHERE packet_id = ? AND recipient = ?",
                    (str(packet_id), recipient),
                )
            else:
                self._db.execute(
                    "UPDATE queue SET due_at = ?, leased_until = NULL"
                    " WHERE packet_id = ? AND recipient = ?",
                    (time.time() + retry_in_s, str(packet_id), recipient),
                )
            self._append(entries)
        return record

    def _append(self, entries: list[AuditEntry]) -> None:
        """Append audit entries inside the current write transaction."""
        self.audit.append_in_transaction(entries)

    def _set_state(
        self,
        packet_id: UUID,
        recipient: str,
        state: DeliveryState,
        detail: str | None,
        attempted: bool,
    ) -> DeliveryRecord:
        found = _fetch(
            self._db,
            "SELECT packet_id, recipient, state, attempts, detail, updated_at FROM deliveries"
            " WHERE packet_id = ? AND recipient = ?",
            (str(packet_id), recipient),
        )
        if not found:
            raise KeyError(f"no delivery of {packet_id} to {recipient}")
        current = found[0]
        if not DeliveryState(current[2]).may_become(state):
            return delivery_of(current)
        updated = _fetch(
            self._db,
            "UPDATE deliveries SET state = ?, detail = ?, updated_at = ?,"
            " attempts = attempts + ? WHERE packet_id = ? AND recipient = ?"
            " RETURNING packet_id, recipient, state, attempts, detail, updated_at",
            (state.value, detail, _now(), int(attempted), str(packet_id), recipient),
        )
        if not updated:
            raise KeyError(f"no delivery of {packet_id} to {recipient}")
        return delivery_of(updated[0])

    async def inbox(
        self, recipients: list[str], *, kind: str | None, after: int, limit: int
    ) -> list[InboxItem]:
        """Packets held for ``recipients``' pull inboxes, oldest first, after ``after``."""
        rows = self._read.execute(
            "SELECT d.rowid, p.id, d.recipient, p.sender, p.kind, p.document_id,"
            " p.content_type, length(p.payload), p.received_at"
            " FROM deliveries d JOIN packets p ON p.id = d.packet_id"
            " WHERE d.state = ? AND d.recipient IN (SELECT value FROM json_each(?))"
            " AND (? IS NULL OR p.kind = ?) AND d.rowid > ? ORDER BY d.rowid LIMIT ?",
            (DeliveryState.HELD.value, json.dumps(recipients), kind, kind, after, limit),
        ).fetchall()
        return [inbox_item_of(row) for row in rows]

    async def dead_letters(
        self,
        *,
        recipient: str | None,
        sender: str | None,
        kind: str | None,
        after: int,
        limit: int,
    ) -> list[DeadLetter]:
        """Dead-lettered deliveries, oldest first, after the cursor ``after``."""
        rows = self._read.execute(
            f"SELECT {_DEAD_LETTER_COLUMNS} FROM deliveries d JOIN packets p ON p.id = d.packet_id"
            " WHERE d.state = ? AND (? IS NULL OR d.recipient = ?) AND (? IS NULL OR p.sender = ?)"
            " AND (? IS NULL OR p.kind = ?) AND d.rowid > ? ORDER BY d.rowid LIMIT ?",
            (
                DeliveryState.DEAD_LETTERED.value,
                recipient,
                recipient,
                sender,
                sender,
                kind,
                kind,
                after,
                limit,
            ),
        ).fetchall()
        return [dead_letter_of(row) for row in rows]

    async def dead_letter(self, packet_id: UUID, recipient: str) -> DeadLetter | None:
        """One delivery, if it is dead-lettered."""
        row = self._read.execute(
            f"SELECT {_DEAD_LETTER_COLUMNS} FROM deliveries d JOIN packets p ON p.id = d.packet_id"
            " WHERE d.state = ? AND d.packet_id = ? AND d.recipient = ?",
            (DeliveryState.DEAD_LETTERED.value, str(packet_id), recipient),
        ).fetchone()
        return None if row is None else dead_letter_of(row)

    async def leave_dead_letters(
        self,
        packet_id: UUID,
        recipient: str,
        state: DeliveryState,
        entries: list[AuditEntry],
    ) -> DeliveryRecord | None:
        """An operator's decision on a dead letter: back to the outbox (``accepted``, its
        attempts counted from nought) or ``dropped``; None if it is not dead-lettered (any
        more: two operators cannot both act on it)."""
        async with self._write():
            row = self._db.execute(
                "UPDATE deliveries SET state = ?, updated_at = ?,"
                " attempts = CASE WHEN ? THEN 0 ELSE attempts END,"
                " detail = CASE WHEN ? THEN NULL ELSE detail END"
                " WHERE packet_id = ? AND recipient = ? AND state = ?"
                " RETURNING packet_id, recipient, state, attempts, detail, updated_at",
                (
                    state.value,
                    _now(),
                    state is DeliveryState.ACCEPTED,
                    state is DeliveryState.ACCEPTED,
                    str(packet_id),
                    recipient,
                    DeliveryState.DEAD_LETTERED.value,
                ),
            ).fetchone()
            if row is None:
                return None
            self._append(entries)
        return delivery_of(row)

    async def held(self) -> list[tuple[UUID, str]]:
        """Every delivery waiting in a pull inbox, oldest first."""
        rows = self._read.execute(
            "SELECT packet_id, recipient FROM deliveries WHERE state = ? ORDER BY rowid",
            (DeliveryState.HELD.value,),
        ).fetchall()
        return [(UUID(row[0]), row[1]) for row in rows]

    async def acknowledge(
        self,
        packet_id: UUID,
        recipient: str,
        state: DeliveryState,
        *,
        entries: list[AuditEntry],
        detail: str | None,
    ) -> DeliveryRecord | None:
        """End a held delivery as ``state``, with its entries; None if it was not held (an
        acknowledgement raced another, or came twice): then nothing is written."""
        async with self._write():
            row = self._db.execute(
                "UPDATE deliveries SET state = ?, detail = ?, updated_at = ?,"
                " attempts = attempts + 1 WHERE packet_id = ? AND recipient = ? AND state = ?"
                " RETURNING packet_id, recipient, state, attempts, detail, updated_at",
                (state.value, detail, _now(), str(packet_id), recipient, DeliveryState.HELD.value),
            ).fetchone()
            if row is None:
                return None
            self._append(entries)
        return delivery_of(row)

    async def append(self, entries: list[AuditEntry]) -> None:
        """Entries about no stored packet (a rejection at ingest, an administrative act)."""
        await self.audit.append(entries)

    async def history(self, packet_id: UUID) -> list[AuditEntry]:
        """A packet's audit entries, in the order they were appended."""
        return await self.audit.history(packet_id)


def _fetch(db: sqlite3.Connection, sql: str, parameters: Sequence[Any]) -> list[Any]:
    return db.execute(sql, parameters).fetchall()


def _connect(path: Path) -> sqlite3.Connection:
    # Used on the event loop and, for a COMMIT, by GroupCommit's thread: one at a time.
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def _take_ownership(path: Path) -> IO[bytes]:
    lock_file = open(path.with_name(path.name + ".lock"), "a+b")  # noqa: SIM115  # held open
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        lock_file.close()
        raise FatalError(
            ErrorCode.STORE_UNAVAILABLE,
            f"another lgsp-adapter process is running on the store {path}",
        ) from exc
    return lock_file


_PACKET_COLUMNS = (
    "(id, kind, sender, recipients, document_id, content_type, payload, sha256, client,"
    " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


_FACTS = ", ".join(FACT_COLUMNS)
_BY_ID = "FROM packets WHERE id = ?"


def _packet_row(packet: StoredPacket) -> tuple[Any, ...]:
    return (
        str(packet.id),
        packet.kind,
        packet.sender,
        json.dumps(packet.recipients),
        packet.document_id,
        packet.content_type,
        packet.payload,
        packet.sha256,
        packet.client,
        packet.received_at.isoformat(),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


_DEAD_LETTER_COLUMNS = (
    "d.rowid, p.id, d.recipient, p.sender, p.kind, p.document_id, d.attempts, d.detail,"
    " p.received_at, d.updated_at"
)
