"""The embedded store's file: its schema, step by step, and how the file is opened and owned.

The schema's version is SQLite's ``user_version``; ``SqliteStore.open`` applies the steps a
file is behind, each in its own transaction.
"""

from __future__ import annotations

import fcntl
import sqlite3
from pathlib import Path
from typing import IO

from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.store.sqlite_agency_list import SCHEMA as AGENCY_LIST_SCHEMA
from lgsp_adapter.store.sqlite_agency_list import VERSION_SCHEMA as AGENCY_VERSION_SCHEMA
from lgsp_adapter.store.sqlite_audit import SCHEMA
from lgsp_adapter.store.sqlite_axis_systems import KEY_CHECK_SCHEMA
from lgsp_adapter.store.sqlite_axis_systems import SCHEMA as AXIS_SYSTEMS_SCHEMA
from lgsp_adapter.store.sqlite_registry import REMOVED_SCHEMA
from lgsp_adapter.store.sqlite_registry import SCHEMA as REGISTRY_SCHEMA
from lgsp_adapter.store.sqlite_witness import SCHEMA as WITNESS_SCHEMA

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
    # The agency systems that call the national-axis facade, with their sealed secrets.
    AXIS_SYSTEMS_SCHEMA,
    # A version per change to the agency list, for systems that synchronise it.
    AGENCY_VERSION_SCHEMA,
    # What an agency sent, newest first (the axis' getSentEdocList).
    "CREATE INDEX packets_sender ON packets (sender, received_at);",
    # Which key file seals the axis secrets, so that a replica with another one cannot start.
    KEY_CHECK_SCHEMA,
    # The patterns each route's queues were last bound to, so that one narrowed or removed
    # is unbound from what it no longer takes.
    "CREATE TABLE bus_bindings (queue_key TEXT PRIMARY KEY, patterns TEXT NOT NULL);",
    # Witnesses: their cosignatures of this log, and this daemon's view of the logs it witnesses.
    WITNESS_SCHEMA,
    # A replay starts a fresh retry budget and keeps the attempts made before it.
    "ALTER TABLE deliveries ADD COLUMN earlier_attempts INTEGER NOT NULL DEFAULT 0;"
    " ALTER TABLE deliveries ADD COLUMN replays INTEGER NOT NULL DEFAULT 0;",
]


def connect(path: Path) -> sqlite3.Connection:
    # Used on the event loop and, for a COMMIT, by GroupCommit's thread: one at a time.
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def take_ownership(path: Path) -> IO[bytes]:
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
