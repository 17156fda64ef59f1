"""The audit log's entries: every step of every packet, appended, never changed.

Each entry says when, what happened, to which packet, between whom, of what kind, about which
document, the digest of the payload (never the payload: the log holds metadata, not documents)
and the outcome. The store keeps them append-only; a later step makes the log tamper-evident.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class AuditEvent(StrEnum):
    """What happened to a packet."""

    RECEIVED = "received"  # accepted at ingest, durable
    REJECTED = "rejected"  # refused at ingest (no packet id: nothing was accepted)
    PUBLISHED = "published"  # handed to the bus, confirmed
    RETURNED = "returned"  # the bus could not route it
    DELIVERED = "delivered"  # the recipient's system answered 2xx
    RETRIED = "retried"  # an attempt failed for a passing reason; another will follow
    REFUSED = "refused"  # the recipient's system refused it for good (4xx)
    DEAD_LETTERED = "dead_lettered"  # no more attempts: parked for an operator
    RECEIPT = "receipt"  # the sender learned the outcome


class AuditEntry(BaseModel):
    """One line of the audit log."""

    model_config = ConfigDict(frozen=True)

    seq: int | None = Field(None, description="Position in the log, given by the store.")
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
        return "  ".join(parts)
