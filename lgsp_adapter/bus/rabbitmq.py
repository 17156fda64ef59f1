"""The exchange bus on RabbitMQ (aio-pika): between daemons, across machines.

Publishing: persistent messages, publisher confirms, ``mandatory`` (a packet no queue takes comes
back and is recorded as returned, never silently dropped), the broker-validated ``user_id`` of
this daemon's account, message id = packet id. Consuming: one quorum queue per served agency,
manual acknowledgement only after the outcome and its audit entries are in the store, bounded
prefetch. A durable retry is a copy published to the agency's retry queue for that delay before
the original is acknowledged; a delivery given up on goes to the agency's dead-letter queue.
The connection is robust: aio-pika reconnects and restores channels, queues and consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from uuid import UUID

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aiormq.exceptions import ChannelInvalidStateError, DeliveryError
from pamqp.commands import Basic
from yarl import URL

from lgsp_adapter.audit import AuditEntry, AuditEvent, log_event
from lgsp_adapter.bus import declare, failover
from lgsp_adapter.bus.embedded import Handler
from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.errors import ErrorCode, FatalError, LgspError
from lgsp_adapter.exchange.receiving import NOT_SERVED_WAIT_S, Settlement
from lgsp_adapter.exchange.relay import Outgoing, set_aside
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.packets.reader import read_packet_off_loop, recipients_of, sender_of
from lgsp_adapter.packets.safe_xml import XmlLimits
from lgsp_adapter.registry.agencies import Directory
from lgsp_adapter.store import DeliveryState, PacketFacts, Store, StoredPacket, entry_for
from lgsp_adapter.store.base import PacketIdTaken
from lgsp_adapter.store.unavailable import STORE_UNAVAILABLE_OR_SLOW, Backoff, until_stored

# aiormq logs every frame at DEBUG, documents' bodies among them: capped, so that DEBUG
# turned on to chase a broker problem leaks none (tests/test_no_secrets_in_logs.py).
logging.getLogger("aiormq").setLevel(logging.INFO)
log = logging.getLogger(__name__)

HEADER_SENDER = "x-lgsp-sender"
HEADER_RECIPIENT = "x-lgsp-recipient"
HEADER_DOCUMENT_ID = "x-lgsp-document-id"
HEADER_SHA256 = "x-lgsp-payload-sha256"
HEADER_RECIPIENTS = "x-lgsp-recipients"
HEADER_REASON = "x-lgsp-reason"
HEADER_STATE = "x-lgsp-state"
HEADER_ATTEMPTS = "x-lgsp-attempts"
HEADER_PACKET_ID = "x-lgsp-packet-id"
HEADER_ATTEMPT = "x-lgsp-attempt"  # on retry copies: the delivery attempt they are for
RECEIPT = "receipt"  # the message type (and routing-key kind) of transport receipts
# The bus is away: what failed is tried again when it is back, nothing is set aside.
_CONNECTION_ERRORS = (*CONNECTION_EXCEPTIONS, ChannelInvalidStateError, TimeoutError)


def _set_aside(
    packet: StoredPacket, recipient: str, settlement: Settlement, why: LgspError
) -> Settlement:
    """A retry that cannot wait on the bus, as a dead letter."""
    detail = f"{why.message} (after {settlement.detail})"
    entry = entry_for(
        packet, AuditEvent.DEAD_LETTERED, recipient=recipient, outcome=str(why.code), detail=detail
    )
    log_event(log, entry, logging.ERROR)
    return Settlement(
        DeliveryState.DEAD_LETTERED,
        [*settlement.entries, entry],
        detail,
        attempted=settlement.attempted,
    )


def _channel_closed(message: AbstractIncomingMessage) -> bool:
    try:
        return message.channel.is_closed
    except ChannelInvalidStateError:  # what aio-pika says of a closed channel
        return True


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
        limits: XmlLimits,
        on_final: Callable[[UUID, str], Awaitable[None]] | None = None,
        cluster_nodes: list[str] | None = None,
        consumer_watch_s: float = 5.0,
        declare_topology: bool = True,
    ) -> None:
        self._watch_s = consumer_watch_s
        self._handler_wanted = False  # consume() has been asked for
        self._declare = declare_topology
        self._url = url
        self._cluster_nodes = cluster_nodes or []
        self._user = URL(url).user or "guest"
        self._topology = topology
        self._store = store
        self._served = set(served)
        self._prefetch = prefetch
        self._retry_delays_s = retry_delays_s
        self._connection_name = connection_name
        self._directory = directory
        self._limits = limits
        self._on_final = on_final  # a receipt came: tell the sending agency's system
        self._connection: AbstractRobustConnection | None = None
        self._publishing: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._in_hand: set[asyncio.Task[None]] = set()
        # One delivery handled at a time: a publish whose confirm was lost in a reconnect is
        # published again, and both copies may arrive together.
        self._handling: dict[tuple[UUID, str], tuple[asyncio.Lock, int]] = {}
        self._working: set[asyncio.Task[None]] = set()  # shielded work, awaited at shutdown
        # The consuming side, kept so that agencies registered later get their consumers.
        self._consuming: AbstractChannel | None = None
        self._handler: Handler | None = None
        self._consumers: dict[str, tuple[AbstractQueue, str]] = {}
        self._serving = asyncio.Lock()
        self._retry_queues: set[str] = set()  # declared by this process

    async def __aenter__(self) -> Self:
        self._connection = await failover.connect(
            self._url,
            self._cluster_nodes,
            client_properties={"connection_name": self._connection_name},
        )
        self._publishing = await self._connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        self._exchange = await self.declare(self._publishing)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def queue_depths(self) -> dict[tuple[str, str], int]:
        """Messages waiting in each served agency's queue and dead-letter queue (for the
        metrics); a queue an operator deleted is left out."""
        assert self._connection is not None  # noqa: S101  # used only inside `async with`
        named = {
            name: (role, code)
            for code in sorted(self._served)
            for role, name in (
                ("agency", self._topology.agency_queue(code)),
                ("dead", self._topology.dead_queue(code)),
            )
        }
        found = await declare.depths(self._connection, list(named))
        return {named[name]: count for name, count in found.items() if count is not None}

    @property
    def connected(self) -> bool:
        """Whether the connection to the broker is up now."""
        return self._connection is not None and self._connection.connected.is_set()

    async def declare(self, channel: AbstractChannel) -> AbstractExchange:
        """Declare the exchange and this daemon's queues (idempotent), or, where the daemon
        may not (``bus.declare = false``), check that they are there; returns the exchange."""
        if not self._declare:
            await self._require(sorted(self._served))
            return await channel.get_exchange(self._topology.exchange, ensure=False)
        exchange = await declare.exchanges(channel, self._topology)
        for recipient in sorted(self._served):
            await self._declare_agency(channel, recipient)
        return exchange

    def _delays(self, recipient: str) -> list[float]:
        agency = self._directory.served(AgencyCode.parse(recipient))
        return (agency.endpoint.retry_delays_s if agency else None) or self._retry_delays_s

    async def _require(self, codes: list[str]) -> None:
        """The topology an administrator declared beforehand is all there, or a clear error."""
        assert self._connection is not None  # noqa: S101  # used only inside `async with`
        needed = {code: self._delays(code) for code in codes}
        absent = await declare.missing(self._connection, self._topology, needed)
        for code in codes:  # what is there need not be declared again
            for name in declare.queue_names(self._topology, code, needed[code]):
                if name not in absent and ".retry." in name:
                    self._retry_queues.add(name)
        if absent:
            raise FatalError(
                ErrorCode.BUS_TOPOLOGY_MISSING,
                f"bus.declare is false and the broker lacks {', '.join(absent[:5])}"
                + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
                + ": run `lgsp-adapter declare` with an administrator's account",
                details={"missing": absent},
            )

    async def _declare_agency(self, channel: AbstractChannel, recipient: str) -> None:
        """One agency's queue, dead letters and retry queues, bound (idempotent)."""
        if not self._declare:
            await self._require([recipient])
            return
        await declare.agency_queues(channel, self._topology, recipient)
        for delay in self._delays(recipient):
            await self._declare_retry(channel, recipient, delay)

    async def _declare_retry(self, channel: AbstractChannel, recipient: str, delay: float) -> None:
        name = self._topology.retry_queue(recipient, delay)
        if name in self._retry_queues:
            return
        if not self._declare:
            await self._require([recipient])  # a schedule changed since `declare` ran
            return
        await declare.retry_queue(channel, self._topology, recipient, delay)
        self._retry_queues.add(name)

    def _forget_retry_queues(self, recipient: str) -> None:
        prefix = self._topology.retry_queue(recipient, 0).rsplit(".", 1)[0] + "."
        self._retry_queues = {q for q in self._retry_queues if not q.startswith(prefix)}

    async def serve(self, codes: list[str]) -> None:
        """Serve these agencies from now on (the registry changed): declare and consume a new
        agency's queues at once; stop consuming a removed one's (its queue keeps what it holds
        until the agency is registered again or an operator acts). Idempotent, so a failure
        halfway (the broker away) is mended by calling it again."""
        assert self._publishing is not None  # noqa: S101  # used only inside `async with`
        assert self._connection is not None  # noqa: S101
        if not self._connection.connected.is_set():
            # A robust channel would wait for the broker; the registry retries instead.
            raise ConnectionError("the bus is away; the registry's change is applied on its return")
        async with self._serving:
            wanted = set(codes)
            for recipient in sorted(wanted - self._served):
                # Its queues may have been deleted while it was not served (an operator may):
                # declare every one anew, whatever this process declared before.
                self._forget_retry_queues(recipient)
                await self._declare_agency(self._publishing, recipient)
            for recipient in sorted(wanted & self._served):  # a changed retry schedule
                agency = self._directory.served(AgencyCode.parse(recipient))
                for delay in (agency.endpoint.retry_delays_s if agency else None) or []:
                    await self._declare_retry(self._publishing, recipient, delay)
            self._served = wanted
            if self._consuming is None or self._handler is None:
                return
            for recipient in sorted(set(self._consumers) - wanted):
                queue, tag = self._consumers.pop(recipient)
                await queue.cancel(tag)
                log.info("no longer consuming %s", recipient)
            for recipient in sorted(wanted - set(self._consumers)):
                await self._start_consumer(self._consuming, self._handler, recipient)

    def _message(self, packet: StoredPacket, recipient: str, **headers: Any) -> aio_pika.Message:
        return aio_pika.Message(
            body=packet.payload,
            message_id=str(packet.id),
            content_type=packet.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=packet.kind,
            app_id="lgsp-adapter",
            user_id=self._user,
            timestamp=datetime.now(UTC),
            headers={
                HEADER_SENDER: packet.sender,
                HEADER_RECIPIENT: recipient,
                HEADER_RECIPIENTS: ",".join(packet.recipients),
                HEADER_DOCUMENT_ID: packet.document_id or "",
                HEADER_SHA256: packet.sha256,
                **headers,
            },
        )

    async def publish(self, deliveries: list[Outgoing]) -> None:
        """Publish a batch, confirmed, and record what was confirmed as published in one
        transaction. The batch's messages are all in flight at once (a window of confirms):
        waiting for each confirm in turn, then writing each record, held the relay to one
        broker round trip and one disk flush a packet. A connection failure stops the batch
        (the rest stay in the outbox for the bus's return); a packet the bus cannot carry is
        set aside as dead-lettered, so it never blocks the others."""
        assert self._exchange is not None  # noqa: S101  # used only inside `async with`
        exchange = self._exchange
        outcomes = await asyncio.gather(
            *(
                exchange.publish(
                    self._message(packet, recipient),
                    routing_key=self._topology.routing_key(packet.kind, recipient),
                    mandatory=True,
                )
                for packet, recipient, _ in deliveries
            ),
            return_exceptions=True,
        )
        confirmed = []
        failure: BaseException | None = None
        for outgoing, outcome in zip(deliveries, outcomes, strict=True):
            packet, recipient, entry = outgoing
            if not isinstance(outcome, BaseException):
                confirmed.append((packet.id, recipient, [entry]))
            elif isinstance(outcome, DeliveryError) and isinstance(outcome.frame, Basic.Return):
                why = f"no queue takes {recipient}"
                await set_aside(self._store, outgoing, "bus.unroutable", why, self._on_final)
            elif isinstance(outcome, DeliveryError | _CONNECTION_ERRORS) or not isinstance(
                outcome, Exception
            ):
                # A nack (the broker could not take it now: an alarm) or the bus away: it
                # stays in the outbox, for later.
                failure = failure or outcome
            else:  # e.g. a property AMQP cannot carry
                why = f"the bus cannot carry it: {outcome}"
                await set_aside(self._store, outgoing, "bus.refused", why, self._on_final)
        if confirmed:
            await self._store.mark_published(confirmed)
        if failure is not None:
            raise failure

    async def consume(self, handler: Handler, stopping: asyncio.Event) -> None:
        """Deliver what the agency queues hold until ``stopping`` is set."""
        assert self._connection is not None  # noqa: S101  # used only inside `async with`
        self._handler_wanted = True
        channel = await self._consuming_channel(handler, stopping)
        if channel is None:
            return
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self._watch_s)
            if not stopping.is_set():
                await self._attach_missing()
        async with self._serving:
            for queue, tag in self._consumers.values():
                await queue.cancel(tag)
            self._consumers.clear()
            self._consuming = None
        if self._in_hand:
            await asyncio.gather(*self._in_hand, return_exceptions=True)
        if self._working:
            await asyncio.gather(*self._working, return_exceptions=True)
        await channel.close()

    async def _consuming_channel(
        self, handler: Handler, stopping: asyncio.Event
    ) -> AbstractChannel | None:
        """The consuming channel with a consumer per served agency. The broker may drop the
        connection meanwhile: then again, once it is back (None if told to stop first)."""
        assert self._connection is not None  # noqa: S101  # used only inside `async with`
        while not stopping.is_set():
            channel: AbstractChannel | None = None
            try:
                channel = await self._connection.channel()
                await channel.set_qos(prefetch_count=self._prefetch)
                async with self._serving:
                    self._consumers.clear()
                    for recipient in sorted(self._served):
                        await self._start_consumer(channel, handler, recipient)
                    self._consuming, self._handler = channel, handler
                return channel
            except _CONNECTION_ERRORS:
                log.warning("the bus went away while consumers were starting; trying again")
                # Closed, or the robust connection would restore it with its consumers: a
                # second consumer no removal knows to cancel.
                if channel is not None:
                    with contextlib.suppress(Exception):
                        await channel.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=1.0)
        return None

    async def missing_consumers(self) -> list[str]:
        """Served agencies with no consumer attached here now: the broker cancels one whose
        queue was deleted, and nothing in aio-pika brings it back. Empty while the bus is
        away (that is a state of its own) or before consuming starts."""
        if not self.connected:
            return []
        if self._consuming is None or self._consuming.is_closed:
            # Connected, consuming asked for, and no channel: none is attached.
            return sorted(self._served) if self._handler_wanted else []
        try:
            underlay = await asyncio.wait_for(self._consuming.get_underlay_channel(), 1)
        except Exception:  # the channel is being restored
            return []
        live = getattr(underlay, "consumers", None)
        if live is None:
            return []
        attached = {code for code, (_, tag) in self._consumers.items() if tag in live}
        return sorted(self._served - attached)

    async def _attach_missing(self) -> None:
        """The watchdog: declare a missing consumer's queues again (they may be gone) and
        consume them; a failure is tried again at the next look."""
        async with self._serving:
            missing = await self.missing_consumers()
            if not missing or self._consuming is None or self._handler is None:
                return
            for recipient in missing:
                try:
                    # aio-pika would restore the cancelled consumer by itself once the queue
                    # is back, beside ours: cancelling it takes it off that list.
                    if recipient in self._consumers:
                        queue, tag = self._consumers.pop(recipient)
                        with contextlib.suppress(Exception):
                            await queue.cancel(tag)
                    self._forget_retry_queues(recipient)
                    await self._declare_agency(self._publishing_channel(), recipient)
                    await self._start_consumer(self._consuming, self._handler, recipient)
                except (*_CONNECTION_ERRORS, aio_pika.exceptions.ChannelClosed, FatalError):
                    log.warning("the consumer of %s could not be attached again yet", recipient)
                    continue
                log.warning("the consumer of %s had vanished; attached again", recipient)

    async def _start_consumer(
        self, channel: AbstractChannel, handler: Handler, recipient: str
    ) -> None:
        queue = await channel.get_queue(self._topology.agency_queue(recipient), ensure=True)

        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._in_hand.add(task)
            try:
                await self._handle(handler, message, recipient)
            finally:
                if task is not None:
                    self._in_hand.discard(task)

        self._consumers[recipient] = (queue, await queue.consume(on_message))
        log.info("consuming %s", recipient)

    def _publishing_channel(self) -> AbstractChannel:
        assert self._publishing is not None  # noqa: S101  # used only inside `async with`
        return self._publishing

    async def _handle(
        self, handler: Handler, message: AbstractIncomingMessage, queue_code: str
    ) -> None:
        if message.type == RECEIPT:
            await self._patiently("a receipt", message, lambda: self._take_receipt(message))
            return
        headers = message.headers
        try:
            packet = StoredPacket(
                id=UUID(str(message.message_id)),
                kind=str(message.type),
                sender=str(headers[HEADER_SENDER]),
                recipients=str(headers[HEADER_RECIPIENTS]).split(","),
                document_id=str(headers.get(HEADER_DOCUMENT_ID) or "") or None,
                content_type=str(message.content_type or "application/octet-stream"),
                payload=message.body,
                sha256=str(headers[HEADER_SHA256]),
            )
            recipient = str(headers[HEADER_RECIPIENT])
            attempt = int(str(headers.get(HEADER_ATTEMPT, 0)))
        except (KeyError, ValueError) as exc:
            log.error("a message without the lgsp headers (%s); dead-lettered", exc)
            await message.reject(requeue=False)
            return
        await self._patiently(
            f"{packet.id} {recipient}",
            message,
            lambda: self._take_packet(handler, message, packet, recipient, attempt, queue_code),
        )

    async def _patiently(
        self, what: str, message: AbstractIncomingMessage, work: Callable[[], Awaitable[None]]
    ) -> None:
        """Do a message's ``work`` (which acknowledges it); while the store is away, wait and
        do it again. Handed back to the broker instead, it would come straight back, and the
        queue's delivery limit would dead-letter it within seconds of an outage (PostgreSQL
        restarting) where nobody looks. Anything else is handed back, and that limit parks a
        message that fails every time."""
        backoff = Backoff()
        while True:
            try:
                await work()
                return
            except STORE_UNAVAILABLE_OR_SLOW as exc:
                if _channel_closed(message):
                    return  # the broker has it back, for this consumer or another
                log.warning("%s: the store is unavailable (%s); the message waits", what, exc)
                await backoff.wait()
            except Exception:
                log.exception("%s could not be handled; the broker redelivers it", what)
                await message.nack(requeue=True)
                return

    async def _take_packet(
        self,
        handler: Handler,
        message: AbstractIncomingMessage,
        packet: StoredPacket,
        recipient: str,
        attempt: int,
        queue_code: str,
    ) -> None:
        forged = await self._forged(message, packet, recipient, queue_code)
        if forged is not None:
            await self._refuse(message, packet, recipient, forged)
            return
        try:
            await self._keep_and_settle(handler, packet, recipient, attempt)
        except PacketIdTaken:
            # Another packet took this id between the check above and the store's write: the
            # store refused this one in the same transaction, so nothing of it was kept.
            await self._refuse(message, packet, recipient, "it reuses the id of another packet")
            return
        await message.ack()

    async def _keep_and_settle(
        self, handler: Handler, packet: StoredPacket, recipient: str, attempt: int
    ) -> None:
        """Everything but the acknowledgement."""
        if recipient not in self._served:
            # Removed while this message was on its way: it waits in the agency's queue
            # (through a short retry queue, so it neither spins nor counts as a delivery).
            # Kept first: the copy goes out under this daemon's account, and the store is
            # what vouches for it when it comes back.
            entry = entry_for(
                packet,
                AuditEvent.RECEIVED,
                recipient=recipient,
                outcome="ok",
                detail="from the bus",
            )
            await self._store.receive(packet, recipient, [entry])
            await self._declare_retry(self._publishing_channel(), recipient, NOT_SERVED_WAIT_S)
            await self._park(
                packet,
                recipient,
                self._topology.retry_queue(recipient, NOT_SERVED_WAIT_S),
                **{HEADER_ATTEMPT: attempt},
            )
            return
        # Shielded: a dropped connection cancels this callback, but a delivery half done
        # (posted, not yet recorded) would be posted again on redelivery. The work finishes;
        # only the acknowledgement is lost, and the redelivered copy finds it recorded.
        work = asyncio.ensure_future(self._settle(handler, packet, recipient, attempt))
        self._working.add(work)
        work.add_done_callback(self._working.discard)
        await asyncio.shield(work)

    async def _forged(
        self,
        message: AbstractIncomingMessage,
        packet: StoredPacket,
        recipient: str,
        queue_code: str,
    ) -> str | None:
        """Why a message must not be believed, or None. The broker vouches only for the
        publishing account; the rest is checked against the content and the directory."""
        if recipient != queue_code:
            return f"addressed to {recipient} but in the queue of {queue_code}"
        if hashlib.sha256(packet.payload).hexdigest() != packet.sha256:
            return "the payload does not match its digest"
        expected = self._directory.bus_user(packet.sender)
        if packet.sender in self._served:
            expected = self._user
        if expected is not None and message.user_id != expected:
            # Our own retry copy of a packet we took in (and checked) before: the broker
            # vouches it is ours, and the store that it is the packet we checked.
            kept = await self._store.facts(packet.id) if message.user_id == self._user else None
            if kept is None or kept.sha256 != packet.sha256:
                return (
                    f"published by {message.user_id!r}, not by {expected!r} "
                    f"who serves {packet.sender}"
                )
        try:
            read = await read_packet_off_loop(
                packet.payload, content_type=packet.content_type, limits=self._limits
            )
        except LgspError as exc:
            return f"the content is not a packet we read: {exc.code}"
        if (
            read.kind != packet.kind
            or sender_of(read.packet) != packet.sender
            or recipient not in recipients_of(read.packet)
        ):
            return "the headers disagree with the content (kind, sender or recipient)"
        known = await self._store.facts(packet.id)
        if known is not None and known.sha256 != packet.sha256:
            return "it reuses the id of another packet"
        return None

    async def _refuse(
        self, message: AbstractIncomingMessage, packet: StoredPacket, recipient: str, why: str
    ) -> None:
        """Dead-letter a message that must not be believed, and say so in the audit log."""
        entry = AuditEntry(
            event=AuditEvent.REJECTED,
            sender=packet.sender,
            recipient=recipient,
            kind=packet.kind,
            payload_sha256=hashlib.sha256(packet.payload).hexdigest(),
            outcome="bus.forged",
            detail=f"message {message.message_id}: {why}"[:500],
        )
        await self._store.append([entry])
        log_event(log, entry, logging.WARNING)
        await message.reject(requeue=False)

    async def _settle(
        self, handler: Handler, packet: StoredPacket, recipient: str, attempt: int
    ) -> None:
        """Keep, deliver, record, and park a retry or dead letter: everything but the ack."""
        key = (packet.id, recipient)
        lock, users = self._handling.get(key, (asyncio.Lock(), 0))
        self._handling[key] = (lock, users + 1)
        try:
            # In this process, then against replicas sharing the store: a copy redelivered to
            # one while another still works on the first waits, and then finds it recorded.
            async with lock, self._store.exclusive(packet.id, recipient):
                await self._settle_once(handler, packet, recipient, attempt)
        finally:
            lock, users = self._handling[key]
            if users == 1:
                del self._handling[key]
            else:
                self._handling[key] = (lock, users - 1)

    async def _settle_once(
        self, handler: Handler, packet: StoredPacket, recipient: str, attempt: int
    ) -> None:
        entry = entry_for(
            packet, AuditEvent.RECEIVED, recipient=recipient, outcome="ok", detail="from the bus"
        )
        await self._store.receive(packet, recipient, [entry])
        record = {d.recipient: d for d in await self._store.deliveries(packet.id)}[recipient]
        if not record.state.final and attempt < record.attempts:
            # A copy from before a recorded attempt (its ack was lost in a crash); the retry
            # copy parked for the later attempt is the one that counts.
            log.info("%s %s: stale copy for attempt %d; dropped", packet.id, recipient, attempt)
            return
        settlement = await handler(packet, recipient)
        # Park first, record second: a crash between them costs at most an extra attempt,
        # and after the record, the redelivered original is recognised as stale.
        if settlement.retry_in_s is not None:
            # The agency's schedule may have changed since its queues were declared.
            try:
                await self._declare_retry(
                    self._publishing_channel(), recipient, settlement.retry_in_s
                )
            except FatalError as exc:
                # bus.declare is false and nobody declared that retry queue: the delivery is
                # set aside for an operator (replayed once `lgsp-adapter declare` has run),
                # not handed back to the broker to be posted again and again.
                settlement = _set_aside(packet, recipient, settlement, exc)
        if settlement.retry_in_s is not None:
            await self._park(
                packet,
                recipient,
                self._topology.retry_queue(recipient, settlement.retry_in_s),
                **{HEADER_ATTEMPT: record.attempts + (1 if settlement.attempted else 0)},
            )
        elif settlement.state in (DeliveryState.REFUSED, DeliveryState.DEAD_LETTERED):
            await self._park(
                packet,
                recipient,
                self._topology.dead_queue(recipient),
                **{HEADER_REASON: settlement.detail or str(settlement.state)},
            )
        # The agency system has answered: its answer is recorded whatever the store's moods
        # (redone from the start, the delivery would be posted again).
        record = await until_stored(
            lambda: self._store.update_delivery(
                packet.id,
                recipient,
                settlement.state,
                entries=settlement.entries,
                detail=settlement.detail,
                attempted=settlement.attempted,
            ),
            f"{packet.id} {recipient}: recording {settlement.state}",
        )
        if settlement.state.final:  # again on a redelivery: the first receipt may be lost
            await self._send_receipt(
                packet, recipient, record.state, record.attempts, record.detail
            )

    async def requeue(self, packet_id: UUID, recipient: str, entries: list[AuditEntry]) -> None:
        """Put a delivery back on the bus for this daemon's consumer (a held packet whose agency
        now takes pushes): a copy straight into the agency's queue, recorded once confirmed."""
        packet = await self._store.packet(packet_id)
        record = {d.recipient: d for d in await self._store.deliveries(packet_id)}.get(recipient)
        if packet is None or record is None:
            return
        # The copy is for the attempt after those recorded: not taken for a stale one.
        await self._park(
            packet,
            recipient,
            self._topology.agency_queue(recipient),
            **{HEADER_ATTEMPT: record.attempts},
        )
        await self._store.update_delivery(
            packet_id, recipient, DeliveryState.PUBLISHED, entries=entries
        )

    async def announce_final(self, packet_id: UUID, recipient: str) -> None:
        """A delivery ended outside the consumer (a pull inbox's acknowledgement): send the
        sender's daemon its receipt, as for a delivery the consumer ended."""
        packet = await self._store.facts(packet_id)
        records = {d.recipient: d for d in await self._store.deliveries(packet_id)}
        record = records.get(recipient)
        if packet is None or record is None or not record.state.final:
            return
        await self._send_receipt(packet, recipient, record.state, record.attempts, record.detail)

    async def _send_receipt(
        self,
        packet: PacketFacts,
        recipient: str,
        state: DeliveryState,
        attempts: int,
        detail: str | None,
    ) -> None:
        """Tell the sender's daemon how the delivery ended (the transport outcome)."""
        assert self._exchange is not None  # noqa: S101  # used only inside `async with`
        receipt = aio_pika.Message(
            body=b"",
            message_id=f"{packet.id}:{recipient}:{state}",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            type=RECEIPT,
            app_id="lgsp-adapter",
            user_id=self._user,
            timestamp=datetime.now(UTC),
            headers={
                HEADER_PACKET_ID: str(packet.id),
                HEADER_SENDER: packet.sender,
                HEADER_RECIPIENT: recipient,
                HEADER_STATE: state.value,
                HEADER_ATTEMPTS: attempts,
                HEADER_REASON: (detail or "")[:500],
            },
        )
        try:
            await self._exchange.publish(
                receipt,
                routing_key=self._topology.routing_key(RECEIPT, packet.sender),
                mandatory=True,
            )
        except DeliveryError:
            log.warning(
                "%s %s: no daemon on the bus takes receipts for %s",
                packet.id,
                recipient,
                packet.sender,
            )

    async def _take_receipt(self, message: AbstractIncomingMessage) -> None:
        """Record what the recipient's daemon says became of a packet we sent."""
        headers = message.headers
        try:
            packet_id = UUID(str(headers[HEADER_PACKET_ID]))
            recipient = str(headers[HEADER_RECIPIENT])
            state = DeliveryState(str(headers[HEADER_STATE]))
            detail = str(headers.get(HEADER_REASON) or "") or None
        except (KeyError, ValueError) as exc:
            log.error("a receipt without its headers (%s); dropped", exc)
            await message.reject(requeue=False)
            return
        packet = await self._store.facts(packet_id)
        recipients = {d.recipient for d in await self._store.deliveries(packet_id)}
        expected = self._directory.bus_user(recipient)
        why = None
        if packet is None or packet.sender not in self._served:
            why = "for a packet this daemon did not send"
        elif recipient not in recipients:
            why = f"for a recipient the packet does not have ({recipient})"
        elif not state.final:
            why = f"with a state that is not an outcome ({state})"
        elif expected is not None and message.user_id != expected:
            why = f"published by {message.user_id!r}, not by {expected!r} who serves {recipient}"
        if why is not None or packet is None:
            log.warning("a receipt %s; dead-lettered", why)
            await message.reject(requeue=False)
            return
        entry = entry_for(
            packet, AuditEvent.RECEIPT, recipient=recipient, outcome=state.value, detail=detail
        )
        await self._store.update_delivery(
            packet_id, recipient, state, entries=[entry], detail=detail
        )
        log_event(log, entry)
        await message.ack()
        if self._on_final is not None:
            await self._on_final(packet_id, recipient)

    async def _park(self, packet: StoredPacket, recipient: str, queue: str, **headers: Any) -> None:
        """Publish a copy straight to a queue (retry or dead letters), confirmed."""
        assert self._publishing is not None  # noqa: S101  # used only inside `async with`
        await self._publishing.default_exchange.publish(
            self._message(packet, recipient, **headers), routing_key=queue, mandatory=True
        )
