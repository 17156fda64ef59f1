"""What the two store backends share beyond the interface: how their rows read into records,
how a schema that is behind is refused, and how commit observers are told.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.store.base import CommitObserver
from lgsp_adapter.store.records import (
    DeadLetter,
    DeliveryRecord,
    InboxItem,
    PacketFacts,
    SentItem,
    StoredPacket,
)

log = logging.getLogger(__name__)


def schema_behind(part: str, version: int, wanted: int) -> FatalError:
    """Why a store told not to migrate (``[store] migrate_on_start = false``) will not open."""
    return FatalError(
        ErrorCode.STORE_UNAVAILABLE,
        f"the {part} schema is at version {version} and this adapter's at {wanted}: run "
        "`lgsp-adapter migrate` ([store] migrate_on_start is false)",
    )


def tell_observers(
    observers: Sequence[CommitObserver], committed: Sequence[AuditEntry], took: float
) -> None:
    """Tell each observer of a commit. Committed is committed: a failing observer (a metric)
    is logged, never turned into an error (intake would answer 500 for a packet it kept)."""
    for observer in observers:
        try:
            observer(committed, took)
        except Exception:
            log.exception("a commit observer failed")


# Rows as both stores select them. The models read either store's column types: text ids and
# ISO times on SQLite, native UUIDs and timestamps on PostgreSQL.
DELIVERY_COLUMNS = (
    "packet_id",
    "recipient",
    "state",
    "attempts",
    "earlier_attempts",
    "replays",
    "detail",
    "updated_at",
)
# As a select list; the ``attempts`` column counts since the last replay, and the attempts
# before it are kept beside (a replay starts a fresh budget, not a fresh history).
DELIVERY_SQL = ", ".join(DELIVERY_COLUMNS)
# The listings' rows carry the models' fields in their order (a dead letter's ``here`` is
# worked out after reading, not stored).
_DEAD_LETTER_FIELDS = tuple(name for name in DeadLetter.model_fields if name != "here")
_INBOX_FIELDS = tuple(InboxItem.model_fields)
_SENT_FIELDS = tuple(SentItem.model_fields)


FACT_COLUMNS = (
    "id",
    "kind",
    "sender",
    "recipients",
    "document_id",
    "content_type",
    "sha256",
    "client",
    "received_at",
)
"""A packet's columns but its payload, in the order ``facts_of`` and ``packet_of`` read."""


def facts_of(row: Iterable[Any]) -> PacketFacts:
    """A packet's facts from a row of ``FACT_COLUMNS``."""
    return PacketFacts.model_validate(dict(zip(FACT_COLUMNS, row, strict=True)))


def packet_of(row: Iterable[Any]) -> StoredPacket:
    """A packet from a row of ``FACT_COLUMNS`` and then its payload."""
    *facts, payload = row
    fields = dict(zip(FACT_COLUMNS, facts, strict=True))
    return StoredPacket.model_validate({**fields, "payload": bytes(payload)})


def delivery_of(row: Iterable[Any]) -> DeliveryRecord:
    """A delivery from a row of ``DELIVERY_COLUMNS``."""
    found = dict(zip(DELIVERY_COLUMNS, row, strict=True))
    since, earlier = found.pop("attempts"), found.pop("earlier_attempts")
    return DeliveryRecord.model_validate(
        {**found, "attempts": since + earlier, "since_replay": since}
    )


def dead_letter_of(row: Iterable[Any]) -> DeadLetter:
    """A dead letter from its listing's row (cursor first, then the packet's and the
    delivery's columns)."""
    return DeadLetter.model_validate(dict(zip(_DEAD_LETTER_FIELDS, row, strict=True)))


def inbox_item_of(row: Iterable[Any]) -> InboxItem:
    """An inbox item from its listing's row (cursor first)."""
    return InboxItem.model_validate(dict(zip(_INBOX_FIELDS, row, strict=True)))


def sent_item_of(row: Iterable[Any]) -> SentItem:
    """A sent delivery from its listing's row, in ``SentItem``'s field order."""
    return SentItem.model_validate(dict(zip(_SENT_FIELDS, row, strict=True)))
