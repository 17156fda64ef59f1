"""What the SQLite store's parts (the agency list, the registry) share: its connections.

The parts write inside the store's own transaction, on its one writer connection, so that a
change and its audit entries commit together and group-commit with everything else.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from lgsp_adapter.store.sqlite_audit import SqliteAuditLog


class SqlitePart:
    """A part of ``SqliteStore`` on the store's connections and its audit log."""

    def __init__(
        self,
        *,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        transaction: Callable[[], AbstractAsyncContextManager[None]],
        audit: SqliteAuditLog,
    ) -> None:
        self._db = writer
        self._read = reader
        self._transaction = transaction
        self._audit = audit
