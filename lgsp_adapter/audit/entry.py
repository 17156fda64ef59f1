"""The audit log's entries: every step of every packet and every administrative act.

Each entry says when, what happened, to which packet, between whom, of what kind, about which
document, the digest of the payload (never the payload: the log holds metadata, not documents),
the outcome and who acted. An entry's *canonical encoding* (``canonical_entry``) is the leaf of
the log's Merkle tree; it is documented in ``docs/audit.md`` so that anyone can recompute a leaf
from an exported entry without our code.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENCODING_VERSION = 1

# The fields of an entry, in the order exports and tables show them.
FIELDS = (
    "at",
    "event",
    "packet_id",
    "sender",
    "recipient",
    "kind",
    "document_id",
    "payload_sha256",
    "outcome",
    "detail",
    "actor",
)


class AuditEvent(StrEnum):
    """What happened."""

    RECEIVED = "received"  # accepted at ingest, durable
    REJECTED = "rejected"  # refused at ingest (no packet id: nothing was accepted)
    PUBLISHED = "published"  # handed to the bus, confirmed
    FORWARDED = "forwarded"  # handed to the bus towards another bus (a bridge), confirmed
    ARRIVED = "arrived"  # came from another bus across a bridge
    RETURNED = "returned"  # the bus could not route it
    DELIVERED = "delivered"  # the recipient's system answered 2xx
    RETRIED = "retried"  # an attempt failed for a passing reason; another will follow
    REFUSED = "refused"  # the recipient's system refused it for good (4xx)
    DEAD_LETTERED = "dead_lettered"  # no more attempts: parked for an operator
    RECEIPT = "receipt"  # the sender learned the outcome
    HELD = "held"  # kept in the pull inbox of an agency whose system fetches its packets
    SIGNATURE = "signature"  # its signatures checked before delivery; the outcome is the verdict
    CONFIG_CHANGED = "config_changed"  # the daemon started with settings unlike the last ones
    ADMIN = "admin"  # an administrative act (outcome names it: archived, checkpoint, ...)


def format_time(moment: datetime) -> str:
    """The one way an entry's time is written: UTC, microseconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    # NUL and lone surrogates cannot be stored (PostgreSQL) or encoded (UTF-8); an entry's text
    # comes partly from error messages, so it is made storable rather than refused.
    return _UNSTORABLE.sub("\ufffd", text)


class AuditEntry(BaseModel):
    """One line of the audit log."""

    model_config = ConfigDict(frozen=True)

    index: int | None = Field(None, description="Position in the log (the tree's leaf index).")
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    event: AuditEvent
    packet_id: UUID | None = None
    sender: str | None = None
    recipient: str | None = None
    kind: str | None = None
    document_id: str | None = None
    payload_sha256: str | None = None
    outcome: str | None = Field(None, description="A stable code: ok, an error code, a status.")
    detail: str | None = Field(None, description="For people: what went wrong, in a line.")
    actor: str | None = Field(None, description="Who acted: a client, an operator, the daemon.")

    @field_validator("at")
    @classmethod
    def _utc_microseconds(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("an audit time must carry its time zone")
        return value.astimezone(UTC)

    @field_validator(
        "sender", "recipient", "kind", "document_id", "outcome", "detail", "actor", mode="after"
    )
    @classmethod
    def _storable(cls, value: str | None) -> str | None:
        return None if value is None else storable(value)

    def fields(self) -> dict[str, str | None]:
        """The entry as text fields, exactly as stored and encoded."""
        return {
            "at": format_time(self.at),
            "event": self.event.value,
            "packet_id": str(self.packet_id) if self.packet_id else None,
            "sender": self.sender,
            "recipient": self.recipient,
            "kind": self.kind,
            "document_id": self.document_id,
            "payload_sha256": self.payload_sha256,
            "outcome": self.outcome,
            "detail": self.detail,
            "actor": self.actor,
        }

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any], index: int | None = None) -> AuditEntry:
        """The entry back from its stored fields."""
        return cls.model_validate({"index": index, **{name: fields.get(name) for name in FIELDS}})

    def canonical(self) -> bytes:
        """The bytes the log's tree hashes as this entry's leaf."""
        return canonical_entry(self.fields())

    def line(self) -> str:
        """One line for a terminal, ids first."""
        parts = [
            self.at.isoformat(timespec="milliseconds"),
            str(self.packet_id or "-"),
            f"{self.event:<13}",
            f"{self.sender or '-'} -> {self.recipient or '-'}",
            self.kind or "-",
        ]
        if self.outcome:
            parts.append(self.outcome)
        if self.detail:
            parts.append(self.detail)
        if self.actor:
            parts.append(f"by {self.actor}")
        return "  ".join(parts)


def canonical_entry(fields: Mapping[str, str | None]) -> bytes:
    """An entry's canonical encoding: RFC 8785 JSON of its non-null text fields plus ``v``.

    Keys sorted, no whitespace, UTF-8, only JSON's mandatory escapes: for objects of strings and
    one small integer this is what ``json.dumps`` writes with these options, and what any JCS
    implementation writes too. Reading stored fields directly (not through the model) keeps
    ``verify`` fast over millions of entries."""
    document: dict[str, str | int] = {"v": ENCODING_VERSION}
    for name in FIELDS:
        value = fields.get(name)
        if value is not None:
            document[name] = value
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode(
        "utf-8"
    )


def log_event(logger: logging.Logger, entry: AuditEntry, level: int = logging.INFO) -> None:
    """Log a packet event: its line for people, and the entry itself for the JSON form of the
    daemon's log (``daemon.logs.JsonLines`` takes its fields from it), so that one event is
    written once and read the same in both."""
    logger.log(level, entry.line(), extra={"audit_entry": entry})
