"""What passes between a bus and the pipeline: the bus carries, the pipeline decides.

Publishing, the relay hands a bus ``Outgoing`` deliveries and gets back a ``Published``: what
the bus took (recorded as published) and what it would not carry, for the pipeline to settle.
Consuming, the embedded bus asks a ``Handler`` for each delivery's ``Settlement`` and records it
as its acknowledgement; the RabbitMQ bus hands an ``ArrivalHandler`` each ``Arrival`` and
``Receipt`` and acknowledges or rejects by the ``Verdict`` it returns, offering the pipeline the
``Carrier`` operations that only a broker has (parking copies, sending receipts). Nothing here
imports the pipeline; the pipeline imports this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol
from uuid import UUID

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.store import DeliveryState, StoredPacket

Outgoing = tuple[StoredPacket, str, AuditEntry]
"""A delivery to publish: the packet, its recipient, the entry that records it."""


@dataclass(frozen=True, slots=True)
class Refused:
    """A delivery the bus would not carry (no queue takes it, or AMQP cannot frame it)."""

    outgoing: Outgoing
    outcome: str  # the stable code, e.g. ``bus.unroutable``
    why: str


@dataclass(frozen=True, slots=True)
class Published:
    """What became of a batch: the rest was taken and recorded as published. ``failure`` is
    the bus going away (or a broker's nack) part way: what it stopped stays in the outbox."""

    refused: list[Refused] = field(default_factory=list)
    failure: BaseException | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    """The outcome of handling one delivery, for the bus to act on and record."""

    state: DeliveryState
    entries: list[AuditEntry] = field(default_factory=list)
    detail: str | None = None
    attempted: bool = False
    retry_in_s: float | None = None


# A delivery to settle: the packet as the bus has it (its bytes read once, not again by the
# handler: a consumer holds as many as its prefetch, and each may be megabytes) and to whom.
Handler = Callable[[StoredPacket, str], Awaitable[Settlement]]


@dataclass(frozen=True, slots=True)
class Arrival:
    """A packet as a broker delivered it: one copy towards one recipient."""

    packet: StoredPacket
    recipient: str
    attempt: int  # the delivery attempt this copy is for (retry copies carry it)
    publisher: str | None  # the account the broker vouches published it
    queue_code: str  # the agency whose queue it came from
    hops: tuple[str, ...] = ()  # the shovels it crossed from other buses, first first


@dataclass(frozen=True, slots=True)
class Receipt:
    """A transport receipt: how a delivery ended, from the recipient's daemon to the sender's."""

    packet_id: UUID
    sender: str
    recipient: str
    state: DeliveryState
    attempts: int
    detail: str | None


@dataclass(frozen=True, slots=True)
class Stray:
    """A message another bus's shovel brought for a code no queue on this bus takes."""

    packet_id: UUID  # the packet (or, for a receipt, the packet it is about)
    kind: str  # the packet's kind, or ``receipt``
    sender: str
    recipient: str
    sha256: str | None
    publisher: str | None  # the account the broker vouches published it
    hops: tuple[str, ...] = ()


class Verdict(Enum):
    """What the bus does with a message once the pipeline has taken it."""

    ACK = "ack"  # its effect and audit entries are durable
    REJECT = "reject"  # not to be believed: to the broker's dead letters, never redelivered


class ArrivalHandler(Protocol):
    """The pipeline, as a broker's consumer sees it."""

    async def take(self, arrival: Arrival) -> Verdict:
        """Settle one delivery: everything but the acknowledgement."""
        ...

    async def take_receipt(self, receipt: Receipt, publisher: str | None) -> Verdict:
        """Record what a recipient's daemon says became of a packet sent from here."""
        ...

    async def take_stray(self, stray: Stray) -> Verdict:
        """Record what came across a bridge for a code nothing here takes, and answer it."""
        ...


class Carrier(Protocol):
    """What a broker offers the pipeline beyond publishing: copies parked in its queues."""

    @property
    def user(self) -> str:
        """The broker account this daemon publishes as."""
        ...

    async def park_retry(
        self, packet: StoredPacket, recipient: str, delay_s: float, attempt: int
    ) -> None:
        """A copy waits ``delay_s`` in the agency's retry queue, then comes back for
        ``attempt``; raises ``FatalError`` when that queue is not there and may not be made."""
        ...

    async def park_dead(self, packet: StoredPacket, recipient: str, reason: str) -> None:
        """A copy goes to the agency's dead-letter queue, for an operator."""
        ...

    async def send_receipt(self, receipt: Receipt) -> None:
        """Tell the sender's daemon how a delivery ended."""
        ...
