"""The axis systems of the registry on SQLite: who may call the national-axis facade, for which
agencies, with which (sealed) secret. Changed in the registry's transaction style: one edit
read and written in one transaction with its audit entries and a bump of the revision."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from lgsp_adapter.registry.records import AxisEditor, AxisSystemRecord
from lgsp_adapter.store.sqlite_part import SqlitePart

SCHEMA = """
    CREATE TABLE registry_axis_systems (
        system_id TEXT PRIMARY KEY,
        agencies TEXT NOT NULL,            -- JSON list of the codes it may speak for
        sealed_secret TEXT NOT NULL,       -- the HMAC secret, sealed by the secret box
        label TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT NOT NULL
    );
"""
# Set by the first daemon to start: its key file's seal of a known text (see ``key_check``).
KEY_CHECK_SCHEMA = "ALTER TABLE registry_state ADD COLUMN sealed_key_check TEXT;"
AXIS_COLUMNS = "system_id, agencies, sealed_secret, label, created_at, updated_at, updated_by"


class SqliteAxisSystems(SqlitePart):
    """The axis systems' half of the ``RegistryStore``."""

    async def axis_systems(self) -> list[AxisSystemRecord]:
        """Every axis system, by system id."""
        rows = self._read.execute(
            f"SELECT {AXIS_COLUMNS} FROM registry_axis_systems ORDER BY system_id"
        ).fetchall()
        return [axis_system_record(row) for row in rows]

    async def change_axis_system(
        self, system_id: str, edit: AxisEditor, *, actor: str
    ) -> AxisSystemRecord | None:
        """Read, edit and write one system's record in one transaction."""
        async with self._transaction():
            current = self._axis_system(system_id)
            outcome = edit(current)
            if outcome is None:
                return current
            if outcome.system is None:
                self._db.execute(
                    "DELETE FROM registry_axis_systems WHERE system_id = ?", (system_id,)
                )
            else:
                now = datetime.now(UTC).isoformat()
                new = outcome.system
                self._db.execute(
                    f"INSERT INTO registry_axis_systems ({AXIS_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (system_id) DO UPDATE SET"
                    " agencies = excluded.agencies, sealed_secret = excluded.sealed_secret,"
                    " label = excluded.label, updated_at = excluded.updated_at,"
                    " updated_by = excluded.updated_by",
                    (
                        system_id,
                        json.dumps(list(new.agencies)),
                        new.sealed_secret,
                        new.label,
                        now,
                        now,
                        actor,
                    ),
                )
            self._db.execute("UPDATE registry_state SET revision = revision + 1")
            self._audit.append_in_transaction(outcome.entries)
            return self._axis_system(system_id)

    async def key_check(self, sealed: str) -> str:
        """The check value of the key sealing the secrets: ``sealed`` when none was kept."""
        async with self._transaction():
            self._db.execute(
                "UPDATE registry_state SET sealed_key_check = ? WHERE sealed_key_check IS NULL",
                (sealed,),
            )
            row = self._db.execute("SELECT sealed_key_check FROM registry_state").fetchone()
        return str(row[0])

    def _axis_system(self, system_id: str) -> AxisSystemRecord | None:
        row = self._db.execute(
            f"SELECT {AXIS_COLUMNS} FROM registry_axis_systems WHERE system_id = ?", (system_id,)
        ).fetchone()
        return None if row is None else axis_system_record(row)


def axis_system_record(row: Sequence[Any]) -> AxisSystemRecord:
    """A record from its row, in ``AXIS_COLUMNS`` order (either backend)."""
    return AxisSystemRecord(
        system_id=row[0],
        agencies=tuple(json.loads(row[1])),
        sealed_secret=row[2],
        label=row[3],
        created_at=_time(row[4]),
        updated_at=_time(row[5]),
        updated_by=row[6],
    )


def _time(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
