"""The registry of endpoints on SQLite: records as JSON (secrets included: the daemon presents
them to endpoints), tokens as digests, and a revision other processes poll."""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import DeliveryMode, Endpoint, ServedAgency, with_secrets
from lgsp_adapter.registry.records import Editor, EndpointRecord, Source, TokenRecord
from lgsp_adapter.store.sqlite_axis_systems import SqliteAxisSystems

SCHEMA = """
    CREATE TABLE registry_endpoints (
        code TEXT PRIMARY KEY,
        record TEXT NOT NULL,              -- the ServedAgency as JSON
        revision INTEGER NOT NULL,
        source TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT NOT NULL
    );
    CREATE TABLE registry_tokens (
        id TEXT PRIMARY KEY,
        digest TEXT NOT NULL UNIQUE,       -- SHA-256 of the token; the token is never kept
        agency TEXT NOT NULL,
        label TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at TEXT
    );
    CREATE INDEX registry_tokens_agency ON registry_tokens (agency, created_at);
    CREATE TABLE registry_state (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        revision INTEGER NOT NULL
    );
    INSERT INTO registry_state VALUES (1, 0);
"""
# Removed codes: their last revision (a code registered again continues from it) and whether
# an integrator removed it (then the settings file does not bring it back at the next start).
REMOVED_SCHEMA = """
    CREATE TABLE registry_removed (
        code TEXT PRIMARY KEY,
        revision INTEGER NOT NULL,
        source TEXT NOT NULL,
        removed_at TEXT NOT NULL,
        removed_by TEXT NOT NULL
    );
"""
log = logging.getLogger(__name__)
_ENDPOINT = "SELECT record, revision, source, created_at, updated_at, updated_by, code"
_SELECT_ISSUED = "SELECT id, digest, agency, label, created_at, created_by, revoked_at"


class SqliteRegistry(SqliteAxisSystems):
    """The ``RegistryStore`` on the store's connections (its axis systems in their own module)."""

    async def revision(self) -> int:
        """The registry's revision."""
        row = self._read.execute("SELECT revision FROM registry_state").fetchone()
        return int(row[0]) if row else 0

    async def endpoints(self) -> list[EndpointRecord]:
        """Every record, by code."""
        rows = self._read.execute(f"{_ENDPOINT} FROM registry_endpoints ORDER BY code").fetchall()
        return [endpoint_record(row) for row in rows]

    async def endpoint(self, code: str) -> EndpointRecord | None:
        """One record."""
        return self._endpoint(self._read, code)

    @staticmethod
    def _endpoint(db: sqlite3.Connection, code: str) -> EndpointRecord | None:
        row = db.execute(f"{_ENDPOINT} FROM registry_endpoints WHERE code = ?", (code,)).fetchone()
        return None if row is None else endpoint_record(row)

    async def tokens(self, agency: str | None = None) -> list[TokenRecord]:
        """Tokens, revoked ones too."""
        where, parameters = ("WHERE agency = ?", (agency,)) if agency else ("", ())
        cursor = self._read.execute(
            f"{_SELECT_ISSUED} FROM registry_tokens {where} ORDER BY agency, created_at, id",
            parameters,
        )
        return [token_record(row) for row in cursor.fetchall()]

    async def removed(self) -> dict[str, Source]:
        """Codes removed and not registered again, with who removed them."""
        rows = self._read.execute("SELECT code, source FROM registry_removed").fetchall()
        return {row[0]: Source(row[1]) for row in rows}

    async def change(self, code: str, edit: Editor, *, actor: str) -> EndpointRecord | None:
        """Read, edit and write ``code``'s record in one transaction."""
        async with self._transaction():
            current = self._endpoint(self._db, code)
            outcome = edit(current)
            if outcome is None:
                return current
            now = _now()
            if outcome.agency is None:
                self._db.execute("DELETE FROM registry_endpoints WHERE code = ?", (code,))
                self._db.execute(
                    "UPDATE registry_tokens SET revoked_at = ? WHERE agency = ?"
                    " AND revoked_at IS NULL",
                    (now, code),
                )
                self._db.execute(
                    "INSERT INTO registry_removed (code, revision, source, removed_at, removed_by)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (code) DO UPDATE SET"
                    " revision = excluded.revision, source = excluded.source,"
                    " removed_at = excluded.removed_at, removed_by = excluded.removed_by",
                    (code, current.revision if current else 0, outcome.source, now, actor),
                )
            else:
                # A code registered again continues its revisions: an If-Match read before
                # the removal cannot match the new record.
                self._db.execute(
                    "INSERT INTO registry_endpoints (code, record, revision, source, created_at,"
                    " updated_at, updated_by) VALUES (?, ?, COALESCE((SELECT revision + 1 FROM"
                    " registry_removed WHERE code = ?), 1), ?, ?, ?, ?)"
                    " ON CONFLICT (code) DO UPDATE SET record = excluded.record,"
                    " revision = revision + 1, source = excluded.source,"
                    " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    (code, stored_form(outcome.agency), code, outcome.source, now, now, actor),
                )
                self._db.execute("DELETE FROM registry_removed WHERE code = ?", (code,))
            for token in outcome.issue:
                cursor = self._db.execute(
                    "SELECT 1 FROM registry_tokens WHERE digest = ?", (token.digest,)
                )
                if cursor.fetchone() is not None:
                    raise token_reused()
            self._db.executemany(
                "INSERT INTO registry_tokens (id, digest, agency, label, created_at, created_by)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(t.id, t.digest, code, t.label, now, actor) for t in outcome.issue],
            )
            for token_id in outcome.revoke:
                cursor = self._db.execute(
                    "UPDATE registry_tokens SET revoked_at = ? WHERE id = ? AND agency = ?"
                    " AND revoked_at IS NULL",
                    (now, token_id, code),
                )
                if cursor.rowcount != 1:  # revoked meanwhile: one revocation, one entry
                    raise no_live_token(code, token_id)
            self._db.execute("UPDATE registry_state SET revision = revision + 1")
            self._audit.append_in_transaction(outcome.entries)
            return None if outcome.agency is None else self._endpoint(self._db, code)


def stored_form(agency: ServedAgency) -> str:
    """The record's JSON, as kept: compact, keys sorted, secrets in the clear."""
    return json.dumps(with_secrets(agency), sort_keys=True, ensure_ascii=False)


def no_live_token(code: str, token_id: str) -> PermanentError:
    """A token to revoke that is not (or no longer) live."""
    return PermanentError(ErrorCode.REGISTRY_NOT_FOUND, f"{code} has no live token {token_id!r}")


def token_reused() -> PermanentError:
    """A token already issued (to any agency, revoked or not) offered again."""
    return PermanentError(
        ErrorCode.REGISTRY_TOKEN_REUSED,
        "that token is already in use (tokens are never shared, nor given out twice)",
    )


def endpoint_record(row: Sequence[Any]) -> EndpointRecord:
    """A record from its row: record, revision, source, created, updated, by whom, code."""
    agency, stored, problem = _parsed(row[0], row[6])
    return EndpointRecord(
        agency=agency,
        revision=int(row[1]),
        source=Source(row[2]),
        created_at=_time(row[3]),
        updated_at=_time(row[4]),
        updated_by=row[5],
        stored=stored,
        problem=problem,
    )


@functools.lru_cache(maxsize=65_536)
def _parsed(text: str, code: str) -> tuple[ServedAgency, dict[str, Any], str | None]:
    """The stored record, validated once per stored text (records are immutable, and the
    daemon reloads the registry at every change). One that no longer validates (stored by an
    older version, whose rules were looser) is not fatal: it comes back as a disabled
    placeholder with the problem named, so the daemon starts and an integrator can fix or
    remove it. The problem never quotes the stored values (they may be secrets)."""
    stored: dict[str, Any] = json.loads(text)
    try:
        return ServedAgency.model_validate(stored), stored, None
    except ValidationError as exc:
        problems = exc.errors(include_input=False, include_url=False)
        problem = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in problems[:5]
        )
        log.error("the registry's record of %s no longer validates (%s); not served", code, problem)
        placeholder = ServedAgency(
            code=AgencyCode.parse(code),
            name=str(stored.get("name") or code)[:500] or code,
            endpoint=Endpoint(mode=DeliveryMode.PULL),
            enabled=False,
        )
        return placeholder, stored, problem


def token_record(row: Sequence[Any]) -> TokenRecord:
    """A token from its row."""
    return TokenRecord(
        id=row[0],
        digest=row[1],
        agency=row[2],
        label=row[3],
        created_at=_time(row[4]),
        created_by=row[5],
        revoked_at=None if row[6] is None else _time(row[6]),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _time(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
