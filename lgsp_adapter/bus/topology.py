"""The exchange's shape on RabbitMQ, as data: names, arguments, bindings.

One topic exchange carries every packet; each agency has a quorum queue bound to the routing
keys ``<kind>.<agency code>`` of packets addressed to it; each agency has one retry queue per
delay of the durable retry schedule (messages wait there for their TTL, then dead-letter back to
the agency queue) and a dead-letter queue for packets given up on. Declared idempotently at
start-up; documented for other vendors in ``docs/bus.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Redeliveries of one message before the broker parks it in the dead letters: a packet that
# crashes its consumer every time must not block the queue forever.
DELIVERY_LIMIT = 20
# How long a delivery for an agency not served here at that moment (removed from the registry
# while it was on its way) waits in a retry queue of its own before it is looked at again.
NOT_SERVED_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class Topology:
    """Names and arguments derived from the exchange name, so test runs never collide."""

    exchange: str

    @property
    def dead_exchange(self) -> str:
        """Where the broker itself dead-letters (delivery limit exceeded)."""
        return f"{self.exchange}.dead"

    @property
    def arrivals_exchange(self) -> str:
        """Where other buses' shovels publish what crosses a bridge to this one: bound to by
        every queue the main exchange's bindings feed, with the strays as its alternate."""
        return f"{self.exchange}.arrivals"

    @property
    def strays(self) -> str:
        """The fanout exchange of what arrived for a code no queue here takes: kept (in
        ``strays_queue``) and answered with a refused receipt, where a shovel's publish would
        drop it."""
        return f"{self.exchange}.strays"

    @property
    def strays_queue(self) -> str:
        """The queue of the strays, read by the daemons that hold bridges."""
        return f"{self.exchange}.strays.queue"

    def arrivals_arguments(self) -> dict[str, Any]:
        """The arrivals exchange's: its strays as alternate exchange."""
        return {"alternate-exchange": self.strays}

    def routing_key(self, kind: str, recipient: str) -> str:
        """``edoc.000.00.12.H56``: the kind first, then the recipient's code (four words)."""
        return f"{kind}.{recipient}"

    def binding(self, recipient: str) -> str:
        """Every kind addressed to ``recipient``."""
        return f"*.{recipient}"

    def agency_queue(self, recipient: str) -> str:
        """The queue of packets for one agency."""
        return f"{self.exchange}.agency.{recipient}"

    def retry_queue(self, recipient: str, delay_s: float) -> str:
        """Where a packet for ``recipient`` waits ``delay_s`` before its next attempt."""
        return f"{self.exchange}.retry.{recipient}.{round(delay_s * 1000)}ms"

    def dead_queue(self, recipient: str) -> str:
        """Packets for ``recipient`` given up on, for an operator."""
        return f"{self.exchange}.dead.{recipient}"

    def agency_arguments(self) -> dict[str, Any]:
        """Quorum (replicated, durable), with a delivery limit and broker dead-lettering."""
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": self.dead_exchange,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def retry_arguments(self, recipient: str, delay_s: float) -> dict[str, Any]:
        """Wait ``delay_s``, then go back to the agency queue through the default exchange."""
        return {
            "x-queue-type": "quorum",
            "x-message-ttl": round(delay_s * 1000),
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.agency_queue(recipient),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def dead_arguments(self) -> dict[str, Any]:
        """Kept until an operator replays or drops them."""
        return {"x-queue-type": "quorum"}


@dataclass(frozen=True, slots=True)
class Permissions:
    """A daemon's broker permissions (``rabbitmqctl set_permissions`` regular expressions)."""

    configure: str
    write: str
    read: str


def permissions(topology: Topology, codes: str) -> Permissions:
    """The least a daemon needs: declare the exchanges and its agencies' queues, publish to
    the exchange and (for retry and dead-letter copies) the default exchange, bind and consume
    its own queues (the strays, where it holds bridges). ``codes`` is a regular expression of
    the agency codes it serves, e.g. ``000\\.21\\.\\d\\d\\.H56`` for every commune of one
    district, so that agencies an integrator registers later are covered without touching the
    broker."""
    exchange = re.escape(topology.exchange)
    own = rf"{exchange}\.(agency|dead|retry)\.({codes})(\..*)?"
    exchanges = rf"{exchange}|{exchange}\.(dead|arrivals|strays|strays\.queue)"
    return Permissions(
        configure=f"^({exchanges}|{own})$",
        write=f"^({exchanges}|amq\\.default|{own})$",
        read=f"^({exchanges}|{own})$",
    )
