"""Where the daemon keeps what it must not lose: packets, their deliveries, the audit log.

``Store`` is the interface (``base``) over the records of ``records``; ``rows`` maps database
rows to them. ``sqlite.SqliteStore`` is the embedded default (one file), and
``postgres.PostgresStore``, for scale-out, implements the same interface and passes the same
contract tests. ``migrate`` and ``backup`` are the operator's commands over a store. May import
``registry``, ``audit``, ``packets`` and ``errors``.
"""

from lgsp_adapter.store.base import Store
from lgsp_adapter.store.records import (
    DeadLetter,
    DeliveryRecord,
    DeliveryState,
    PacketFacts,
    StoredPacket,
    entry_for,
)

__all__ = [
    "DeadLetter",
    "DeliveryRecord",
    "DeliveryState",
    "PacketFacts",
    "Store",
    "StoredPacket",
    "entry_for",
]
