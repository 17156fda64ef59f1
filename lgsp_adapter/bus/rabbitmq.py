"""The exchange bus on RabbitMQ (aio-pika): between daemons, across machines.

Publishing: persistent messages, publisher confirms, ``mandatory`` (a packet no queue takes comes
back and is handed to the pipeline as refused, never silently dropped), the broker-validated
``user_id`` of this daemon's account, message id = packet id. Consuming: one quorum queue per
served agency, bounded prefetch, each message handed to the pipeline's ``ArrivalHandler`` and
acknowledged only once it returns (its effect and audit entries are then in the store), or
rejected to the dead letters when it says so. The pipeline parks retries and dead letters
through this bus's ``Carrier`` operations: a copy published to the agency's retry queue for
that delay, or to its dead-letter queue. The connection is robust: aio-pika reconnects and
restores channels, queues and consumers; ``consumers`` watches that it really did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from types import TracebackType
from typing import Any, Self
from uuid import UUID

from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aiormq.exceptions import DeliveryError
from pamqp.commands import Basic
from yarl import URL

from lgsp_adapter.audit import AuditEntry
from lgsp_adapter.bus import declare, failover
from lgsp_adapter.bus.contract import ArrivalHandler, Outgoing, Published, Receipt, Refused, Verdict
from lgsp_adapter.bus.rabbitmq_bindings import unbind_stale
from lgsp_adapter.bus.rabbitmq_bridges import consume_strays, declare_bridges
from lgsp_adapter.bus.rabbitmq_consumers import (
    CONNECTION_ERRORS,
    Consumers,
    ShieldedWork,
    patiently,
)
from lgsp_adapter.bus.rabbitmq_messages import (
    HEADER_ATTEMPT,
    HEADER_REASON,
    RECEIPT,
    packet_message,
    read_arrival,
    read_receipt,
    receipt_message,
)
from lgsp_adapter.bus.rabbitmq_queues import AgencyQueues
from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import Endpoint
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.store import DeliveryState, Store, StoredPacket

# aiormq logs every frame at DEBUG, documents' bodies among them: capped, so that DEBUG
# turned on to chase a broker problem leaks none (tests/test_no_secrets_in_logs.py).
logging.getLogger("aiormq").setLevel(logging.INFO)
log = logging.getLogger(__name__)


class RabbitBus:
    """Publishes to and consumes from the province's RabbitMQ."""

    def __init__(
        self,
        *,
        url: str,
        topology: Topology,
        store: Store,
        served: list[str],
        prefetch: int,
        retry_delays_s: list[float],
        connection_name: str,
        directory: Directory,
        cluster_nodes: list[str] | None = None,
        consumer_watch_s: float = 5.0,
        declare_topology: bool = True,
        management_url: str | None = None,
    ) -> None:
        self._url = url
        self._cluster_nodes = cluster_nodes or []
        self._user = URL(url).user or "guest"
        self._topology = topology
        self._store = store
        self._directory = directory
        self._served = set(served) | self._route_keys()  # agencies' codes and routes' keys
        self._retry_delays_s = retry_delays_s
        self._connection_name = connection_name
        self._declare_topology = declare_topology
        self._management_url = management_url  # where the bridges' shovels are declared
        self._queues = AgencyQueues(
            topology=topology,
            delays=self._delays,
            may_declare=declare_topology,
            patterns=self._patterns,
        )
        self._consumers = Consumers(
            topology=topology,
            prefetch=prefetch,
            watch_s=consumer_watch_s,
            on_message=self._handle,
            redeclare=self._redeclare,
            served=lambda: self._served,
        )
        self._handler: ArrivalHandler | None = None
        self._connection: AbstractRobustConnection | None = None
        self._publishing: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._working = ShieldedWork()  # awaited at shutdown

    async def __aenter__(self) -> Self:
        self._connection = await failover.connect(
            self._url,
            self._cluster_nodes,
            client_properties={"connection_name": self._connection_name},
        )
        self._publishing = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._exchange = await self._queues.declare(
            self._connection, self._publishing, sorted(self._served)
        )
        if self._declare_topology:
            await declare_bridges(
                self._publishing,
                self._topology,
                self._directory,
                self._management_url,
                URL(self._url).path.lstrip("/") or "/",
            )
            await unbind_stale(self._connection, self._topology, self._store, self._directory)
        else:
            await self._queues.require(self._connection, [b.key for b in self._directory.bridges])
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._connection is not None:
            await self._connection.close()

    @property
    def user(self) -> str:
        """The broker account this daemon publishes as (``Carrier``)."""
        return self._user

    @property
    def connected(self) -> bool:
        """Whether the connection to the broker is up now."""
        return self._connection is not None and self._connection.connected.is_set()

    async def queue_depths(self) -> dict[tuple[str, str], int]:
        """Messages waiting in each served agency's queue and dead-letter queue (for the
        metrics); a queue an operator deleted is left out."""
        named = {
            name: (role, code)
            for code in sorted(self._served)
            for role, name in (
                ("agency", self._topology.agency_queue(code)),
                ("dead", self._topology.dead_queue(code)),
            )
        }
        found = await declare.depths(self._live(), list(named))
        return {named[name]: count for name, count in found.items() if count is not None}

    def _route_keys(self) -> set[str]:
        return {route.key for route in self._directory.routes}

    def _endpoint(self, key: str) -> Endpoint | None:
        """The endpoint of an agency's code or a route's key."""
        route = self._directory.route_keyed(key)
        if route is not None:
            return route.endpoint
        agency = self._directory.served(AgencyCode.parse(key))
        return None if agency is None else agency.endpoint

    def _patterns(self, key: str) -> list[str] | None:
        route = self._directory.route_keyed(key)
        return None if route is None else list(route.codes)

    def _delays(self, key: str) -> list[float]:
        endpoint = self._endpoint(key)
        return (endpoint.retry_delays_s if endpoint else None) or self._retry_delays_s

    def _live(self) -> AbstractRobustConnection:
        assert self._connection is not None  # noqa: S101  # used only inside `async with`
        return self._connection

    def _channel(self) -> AbstractChannel:
        assert self._publishing is not None  # noqa: S101  # used only inside `async with`
        return self._publishing

    async def _redeclare(self, recipient: str) -> None:
        """An agency's queues anew, whatever this process declared before (an operator may
        have deleted them)."""
        self._queues.forget(recipient)
        await self._queues.agency(self._live(), self._channel(), recipient)

    async def serve(self, codes: list[str]) -> None:
        """Serve these agencies from now on (the registry changed): declare and consume a new
        agency's queues at once; stop consuming a removed one's (its queue keeps what it holds
        until the agency is registered again or an operator acts). Idempotent, so a failure
        halfway (the broker away) is mended by calling it again."""
        if not self._live().connected.is_set():
            # A robust channel would wait for the broker; the registry retries instead.
            raise ConnectionError("the bus is away; the registry's change is applied on its return")
        async with self._consumers.lock:
            wanted = set(codes) | self._route_keys()
            for recipient in sorted(wanted - self._served):
                await self._redeclare(recipient)
            for recipient in sorted(wanted & self._served):  # a changed retry schedule
                endpoint = self._endpoint(recipient)
                for delay in (endpoint.retry_delays_s if endpoint else None) or []:
                    await self._queues.retry(self._live(), self._channel(), recipient, delay)
            self._served = wanted
            await self._consumers.serve(sorted(wanted))

    async def publish(self, deliveries: list[Outgoing]) -> Published:
        """Publish a batch, confirmed, and record what was confirmed as published in one
        transaction. The batch's messages are all in flight at once (a window of confirms):
        waiting for each confirm in turn, then writing each record, held the relay to one
        broker round trip and one disk flush a packet. A connection failure stops the batch
        (the rest stay in the outbox for the bus's return); a packet the bus cannot carry is
        handed back as refused, so it never blocks the others."""
        assert self._exchange is not None  # noqa: S101  # used only inside `async with`
        exchange = self._exchange
        outcomes = await asyncio.gather(
            *(
                exchange.publish(
                    packet_message(packet, recipient, user=self._user),
                    routing_key=self._topology.routing_key(packet.kind, recipient),
                    mandatory=True,
                )
                for packet, recipient, _ in deliveries
            ),
            return_exceptions=True,
        )
        confirmed = []
        refused = []
        failure: BaseException | None = None
        for outgoing, outcome in zip(deliveries, outcomes, strict=True):
            packet, recipient, entry = outgoing
            if not isinstance(outcome, BaseException):
                confirmed.append((packet.id, recipient, [entry]))
            elif isinstance(outcome, DeliveryError) and isinstance(outcome.frame, Basic.Return):
                refused.append(Refused(outgoing, "bus.unroutable", f"no queue takes {recipient}"))
            elif isinstance(outcome, DeliveryError | CONNECTION_ERRORS) or not isinstance(
                outcome, Exception
            ):
                # A nack (the broker could not take it now: an alarm) or the bus away: it
                # stays in the outbox, for later.
                failure = failure or outcome
            else:  # e.g. a property AMQP cannot carry
                why = f"the bus cannot carry it: {outcome}"
                refused.append(Refused(outgoing, "bus.refused", why))
        if confirmed:
            await self._store.mark_published(confirmed)
        return Published(refused, failure)

    async def consume(self, handler: ArrivalHandler, stopping: asyncio.Event) -> None:
        """Hand what the agency queues hold to ``handler`` until ``stopping`` is set, then let
        the messages in hand finish."""
        self._handler = handler
        strays = (
            [asyncio.create_task(consume_strays(self._live(), self._topology, handler, stopping))]
            if self._directory.bridges
            else []
        )
        await self._consumers.run(self._live(), stopping)
        await asyncio.gather(*strays)
        await self._working.wait()

    async def missing_consumers(self) -> list[str]:
        """Served agencies with no consumer attached here now (for ``/readyz``)."""
        return await self._consumers.missing()

    async def _handle(self, message: AbstractIncomingMessage, queue_code: str) -> None:
        handler = self._handler
        assert handler is not None  # noqa: S101  # consumers start only in consume()
        if message.type == RECEIPT:
            try:
                receipt = read_receipt(message)
            except (KeyError, ValueError) as exc:
                log.error("a receipt without its headers (%s); dropped", exc)
                await message.reject(requeue=False)
                return
            await patiently(
                "a receipt",
                message,
                lambda: handler.take_receipt(receipt, message.user_id),
            )
            return
        try:
            arrival = read_arrival(message, queue_code)
        except (KeyError, ValueError) as exc:
            log.error("a message without the lgsp headers (%s); dead-lettered", exc)
            await message.reject(requeue=False)
            return
        await patiently(
            f"{arrival.packet.id} {arrival.recipient}",
            message,
            lambda: self._shielded(handler.take(arrival)),
        )

    async def _shielded(self, work: Awaitable[Verdict]) -> Verdict:
        return await self._working.run(work)

    async def park_retry(
        self, packet: StoredPacket, recipient: str, delay_s: float, attempt: int
    ) -> None:
        """A copy in the agency's retry queue for ``delay_s`` (declared first where needed: the
        agency's schedule may have changed since its queues were), for ``attempt``."""
        key = self._directory.queue_key(recipient)
        await self._queues.retry(self._live(), self._channel(), key, delay_s)
        queue = self._topology.retry_queue(key, delay_s)
        await self._park(packet, recipient, queue, **{HEADER_ATTEMPT: attempt})

    async def park_dead(self, packet: StoredPacket, recipient: str, reason: str) -> None:
        """A copy in the agency's dead-letter queue, with why."""
        queue = self._topology.dead_queue(self._directory.queue_key(recipient))
        await self._park(packet, recipient, queue, **{HEADER_REASON: reason})

    async def requeue(self, packet_id: UUID, recipient: str, entries: list[AuditEntry]) -> None:
        """Put a delivery back on the bus for this daemon's consumer (a held packet whose agency
        now takes pushes): a copy straight into the agency's queue, recorded once confirmed."""
        packet = await self._store.packet(packet_id)
        record = {d.recipient: d for d in await self._store.deliveries(packet_id)}.get(recipient)
        if packet is None or record is None:
            return
        # The copy is for the attempt after those recorded: not taken for a stale one.
        queue = self._topology.agency_queue(self._directory.queue_key(recipient))
        await self._park(packet, recipient, queue, **{HEADER_ATTEMPT: record.since_replay})
        await self._store.update_delivery(
            packet_id, recipient, DeliveryState.PUBLISHED, entries=entries
        )

    async def send_receipt(self, receipt: Receipt) -> None:
        """Tell the sender's daemon how the delivery ended (the transport outcome)."""
        assert self._exchange is not None  # noqa: S101  # used only inside `async with`
        try:
            await self._exchange.publish(
                receipt_message(receipt, user=self._user),
                routing_key=self._topology.routing_key(RECEIPT, receipt.sender),
                mandatory=True,
            )
        except DeliveryError:
            log.warning(
                "%s %s: no daemon on the bus takes receipts for %s",
                receipt.packet_id,
                receipt.recipient,
                receipt.sender,
            )

    async def _park(self, packet: StoredPacket, recipient: str, queue: str, **headers: Any) -> None:
        """Publish a copy straight to a queue (retry, dead letters, the agency's), confirmed."""
        await self._channel().default_exchange.publish(
            packet_message(packet, recipient, user=self._user, **headers),
            routing_key=queue,
            mandatory=True,
        )
