"""Prometheus metrics at ``/metrics`` (prometheus-client): what operators graph and alert on.

Packet counts come from the audit entries each write commits (every packet event is one), so
a metric cannot disagree with the log. Depths (deliveries by state, the outbox, RabbitMQ's
queues) and the bus connection are read when Prometheus scrapes. One registry per daemon,
not the library's global one: a process may run several daemons (the tests do). Like
/readyz, no token: it holds counts and agency codes, never a packet.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.packets.reader import KINDS
from lgsp_adapter.signatures import SignatureStatus
from lgsp_adapter.store import DeliveryState, Store

log = logging.getLogger(__name__)

QueueDepths = Callable[[], Awaitable[dict[tuple[str, str], int]]]
"""The bus's queues: (role, agency) -> messages waiting; role is agency or dead."""

# From a few milliseconds on one machine to an agency system down for an hour.
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_KINDS = frozenset({"edoc", "status", *KINDS})
_VERDICTS = frozenset(str(status) for status in SignatureStatus)
_TIMED_KEPT = 100_000  # deliveries remembered as timed (a late duplicate receipt is rare)
_DEPTHS_TIMEOUT_S = 3.0
_APPEND_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


class Metrics:
    """The daemon's series, and what fills them."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._bus_connected: Callable[[], bool] = lambda: False
        self._queue_depths: QueueDepths | None = None
        self._timed: OrderedDict[tuple[UUID, str], None] = OrderedDict()  # the latest ended
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "lgsp_packet_events",
            "Packet events as the audit log records them: received, rejected, published, "
            "forwarded, arrived, "
            "delivered, retried, refused, dead_lettered, receipt, held, signature, returned, "
            "admin.",
            ["event", "kind"],
            registry=r,
        )
        self.rejections = Counter(
            "lgsp_rejections", "Submissions refused at ingest, by error code.", ["code"], registry=r
        )
        self.signatures = Counter(
            "lgsp_signature_verdicts",
            "The verdicts on delivered packets' signatures (docs/signatures.md).",
            ["verdict"],
            registry=r,
        )
        self.latency = Histogram(
            "lgsp_delivery_latency_seconds",
            "From acceptance at this daemon to the recipient system's 2xx (or its "
            "acknowledgement of a pulled packet), as this daemon learns it.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.append = Histogram(
            "lgsp_audit_append_seconds",
            "A write that appends to the audit log, from its start to its commit.",
            buckets=_APPEND_BUCKETS,
            registry=r,
        )
        self.deliveries = Gauge(
            "lgsp_deliveries", "Deliveries in this daemon's store, by state.", ["state"], registry=r
        )
        self.outbox_packets = Gauge(
            "lgsp_outbox_packets", "Packets accepted and not yet on the bus.", registry=r
        )
        self.outbox_bytes = Gauge(
            "lgsp_outbox_bytes", "Their size: the outbox budget's use.", registry=r
        )
        self.queue_messages = Gauge(
            "lgsp_queue_messages",
            "Messages waiting in this daemon's RabbitMQ queues (agency or dead letters).",
            ["queue", "agency"],
            registry=r,
        )
        self.bus_up = Gauge("lgsp_bus_connected", "1 while the bus is connected.", registry=r)

    def watch_bus(self, connected: Callable[[], bool], depths: QueueDepths | None) -> None:
        """Read the bus's state, and its queue depths where it has queues (RabbitMQ), at each
        scrape."""
        self._bus_connected = connected
        self._queue_depths = depths

    def committed(self, entries: Sequence[AuditEntry], seconds: float) -> None:
        """A store commit: count its events, time the append."""
        self.append.observe(seconds)
        for entry in entries:
            # A forged message's type must not become a series of its own.
            kind = entry.kind if entry.kind in _KINDS else ("-" if entry.kind is None else "other")
            self.events.labels(entry.event.value, kind).inc()
            if entry.event is AuditEvent.REJECTED:
                self.rejections.labels(entry.outcome or "-").inc()
            elif entry.event is AuditEvent.SIGNATURE and entry.outcome in _VERDICTS:
                self.signatures.labels(entry.outcome).inc()

    async def ended(self, packet_id: UUID, recipient: str) -> None:
        """A delivery of a packet sent from here ended: time it, if it was delivered (once: a
        receipt sent again must not count twice)."""
        if (packet_id, recipient) in self._timed:
            return
        packet = await self._store.facts(packet_id)
        record = {d.recipient: d for d in await self._store.deliveries(packet_id)}.get(recipient)
        if packet is None or record is None or record.state is not DeliveryState.DELIVERED:
            return
        self._timed[(packet_id, recipient)] = None
        if len(self._timed) > _TIMED_KEPT:
            self._timed.popitem(last=False)
        self.latency.observe(max(0.0, (record.updated_at - packet.received_at).total_seconds()))

    async def refresh(self) -> None:
        """Read the depths and the bus's state, for a scrape."""
        counts = await self._store.delivery_counts()
        for state in DeliveryState:
            self.deliveries.labels(state.value).set(counts.get(state, 0))
        packets, size = await self._store.outbox_size()
        self.outbox_packets.set(packets)
        self.outbox_bytes.set(size)
        connected = self._bus_connected()
        self.bus_up.set(1 if connected else 0)
        if self._queue_depths is None:
            return
        if not connected:  # stale depths would look like real ones
            self.queue_messages.clear()
            return
        try:
            depths = await asyncio.wait_for(self._queue_depths(), _DEPTHS_TIMEOUT_S)
        except Exception:  # the broker went away, or hangs: the scrape must not
            log.warning("metrics: the queue depths could not be read", exc_info=True)
            self.queue_messages.clear()
            return
        self.queue_messages.clear()
        for (queue, agency), messages in depths.items():
            self.queue_messages.labels(queue, agency).set(messages)

    def text(self) -> bytes:
        """The exposition, as Prometheus reads it."""
        return generate_latest(self.registry)


METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)


async def scrape(request: web.Request) -> web.Response:
    """``GET /metrics``."""
    metrics = request.app[METRICS]
    await metrics.refresh()
    response = web.Response(body=metrics.text())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def add_metrics_route(app: web.Application, metrics: Metrics) -> None:
    """Mount ``/metrics``."""
    app[METRICS] = metrics
    app.router.add_get("/metrics", scrape)
