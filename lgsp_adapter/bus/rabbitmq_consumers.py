"""One consumer per served agency's queue, kept attached: started with the consuming channel,
added and cancelled as the registry changes, and brought back by a watchdog when the broker
cancelled one (its queue was deleted) and aio-pika, which restores consumers only on a
reconnect, left it gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aiormq.exceptions import ChannelInvalidStateError

from lgsp_adapter.bus.contract import Verdict
from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.errors import FatalError
from lgsp_adapter.store.unavailable import STORE_UNAVAILABLE_OR_SLOW, Backoff

log = logging.getLogger(__name__)

# The bus is away: what failed is tried again when it is back, nothing is set aside.
CONNECTION_ERRORS = (*CONNECTION_EXCEPTIONS, ChannelInvalidStateError, TimeoutError)

OnMessage = Callable[[AbstractIncomingMessage, str], Awaitable[None]]
"""What to do with a message from the queue of the agency with that code."""


class Consumers:
    """The consuming channel and its consumers, one per served agency."""

    def __init__(
        self,
        *,
        topology: Topology,
        prefetch: int,
        watch_s: float,
        on_message: OnMessage,
        redeclare: Callable[[str], Awaitable[None]],
        served: Callable[[], set[str]],
    ) -> None:
        self._topology = topology
        self._prefetch = prefetch
        self._watch_s = watch_s
        self._on_message = on_message
        self._redeclare = redeclare  # an agency's queues, declared anew
        self._served = served
        self.lock = asyncio.Lock()  # held while consumers are added or cancelled
        self._connection: AbstractRobustConnection | None = None  # consuming has been asked for
        self._channel: AbstractChannel | None = None
        self._attached: dict[str, tuple[AbstractQueue, str]] = {}
        self._in_hand: set[asyncio.Task[None]] = set()

    async def run(self, connection: AbstractRobustConnection, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set, watching that every consumer stays attached;
        then cancel them and let the messages in hand finish."""
        self._connection = connection
        channel = await self._open(connection, stopping)
        if channel is None:
            return
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self._watch_s)
            if not stopping.is_set():
                await self._attach_missing()
        async with self.lock:
            for queue, tag in self._attached.values():
                await queue.cancel(tag)
            self._attached.clear()
            self._channel = None
        if self._in_hand:
            await asyncio.gather(*self._in_hand, return_exceptions=True)
        await channel.close()

    async def serve(self, codes: list[str]) -> None:
        """Consume exactly these agencies' queues; the caller holds ``lock``. Before consuming
        starts there is nothing to change: it starts with whoever is served then."""
        if self._channel is None:
            return
        for recipient in sorted(set(self._attached) - set(codes)):
            queue, tag = self._attached.pop(recipient)
            await queue.cancel(tag)
            log.info("no longer consuming %s", recipient)
        for recipient in sorted(set(codes) - set(self._attached)):
            await self._start(self._channel, recipient)

    async def missing(self) -> list[str]:
        """Served agencies with no consumer attached here now; empty before consuming starts,
        while the bus is away (that is a state of its own) and while the channel is being
        restored."""
        if self._connection is None or not self._connection.connected.is_set():
            return []
        served = self._served()
        if self._channel is None or self._channel.is_closed:
            # Connected, consuming asked for, and no channel: none is attached.
            return sorted(served)
        try:
            underlay = await asyncio.wait_for(self._channel.get_underlay_channel(), 1)
        except Exception:  # the channel is being restored
            return []
        live = getattr(underlay, "consumers", None)
        if live is None:
            return []
        attached = {code for code, (_, tag) in self._attached.items() if tag in live}
        return sorted(served - attached)

    async def _open(
        self, connection: AbstractRobustConnection, stopping: asyncio.Event
    ) -> AbstractChannel | None:
        """The consuming channel with a consumer per served agency. The broker may drop the
        connection meanwhile: then again, once it is back (None if told to stop first)."""
        while not stopping.is_set():
            channel: AbstractChannel | None = None
            try:
                channel = await connection.channel()
                await channel.set_qos(prefetch_count=self._prefetch)
                async with self.lock:
                    self._attached.clear()
                    for recipient in sorted(self._served()):
                        await self._start(channel, recipient)
                    self._channel = channel
                return channel
            except CONNECTION_ERRORS:
                log.warning("the bus went away while consumers were starting; trying again")
                # Closed, or the robust connection would restore it with its consumers: a
                # second consumer no removal knows to cancel.
                if channel is not None:
                    with contextlib.suppress(Exception):
                        await channel.close()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=1.0)
        return None

    async def _attach_missing(self) -> None:
        """The watchdog: declare a missing consumer's queues again (they may be gone) and
        consume them; a failure is tried again at the next look."""
        async with self.lock:
            missing = await self.missing()
            if not missing or self._channel is None:
                return
            for recipient in missing:
                try:
                    # aio-pika would restore the cancelled consumer by itself once the queue
                    # is back, beside ours: cancelling it takes it off that list.
                    if recipient in self._attached:
                        queue, tag = self._attached.pop(recipient)
                        with contextlib.suppress(Exception):
                            await queue.cancel(tag)
                    await self._redeclare(recipient)
                    await self._start(self._channel, recipient)
                except (*CONNECTION_ERRORS, aio_pika.exceptions.ChannelClosed, FatalError):
                    log.warning("the consumer of %s could not be attached again yet", recipient)
                    continue
                log.warning("the consumer of %s had vanished; attached again", recipient)

    async def _start(self, channel: AbstractChannel, recipient: str) -> None:
        queue = await channel.get_queue(self._topology.agency_queue(recipient), ensure=True)

        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._in_hand.add(task)
            try:
                await self._on_message(message, recipient)
            finally:
                if task is not None:
                    self._in_hand.discard(task)

        self._attached[recipient] = (queue, await queue.consume(on_message))
        log.info("consuming %s", recipient)


class ShieldedWork:
    """A message's work, run to its end whatever befalls its consumer. A dropped connection
    cancels the consumer's callback, but a delivery half done (posted, not yet recorded) would
    be posted again on redelivery. The work finishes; only the acknowledgement is lost, and
    the redelivered copy finds the outcome recorded."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Verdict]] = set()

    async def run(self, work: Awaitable[Verdict]) -> Verdict:
        """``work``'s verdict; if the caller is cancelled, the work goes on without it."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_orphan_ended)  # nobody awaits it now: its end is logged
            raise

    async def wait(self) -> None:
        """Until all work under way has ended (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _orphan_ended(task: asyncio.Task[Verdict]) -> None:
    """Work whose consumer was cancelled has ended. A failure now (the receipt's channel gone
    with the connection, say) loses nothing, since the broker redelivers the message, but
    unread it would surface as asyncio's "Task exception was never retrieved"."""
    if task.cancelled() or task.exception() is None:
        return
    log.info("work finished after its connection dropped, then failed: %r", task.exception())


def _channel_closed(message: AbstractIncomingMessage) -> bool:
    try:
        return message.channel.is_closed
    except ChannelInvalidStateError:  # what aio-pika says of a closed channel
        return True


async def patiently(
    what: str, message: AbstractIncomingMessage, work: Callable[[], Awaitable[Verdict]]
) -> None:
    """Do a message's ``work`` and acknowledge or reject it as the pipeline says; while
    the store is away, wait and do it again. Handed back to the broker instead, it would
    come straight back, and the queue's delivery limit would dead-letter it within seconds
    of an outage (PostgreSQL restarting) where nobody looks. Anything else is handed back,
    and that limit parks a message that fails every time."""
    backoff = Backoff()
    while True:
        try:
            verdict = await work()
            if verdict is Verdict.ACK:
                await message.ack()
            else:
                await message.reject(requeue=False)
            return
        except STORE_UNAVAILABLE_OR_SLOW as exc:
            if _channel_closed(message):
                return  # the broker has it back, for this consumer or another
            log.warning("%s: the store is unavailable (%s); the message waits", what, exc)
            await backoff.wait()
        except Exception as exc:
            if _channel_closed(message):  # nothing to nack on: the broker has it back
                log.info("%s: %r with its channel closed; the broker redelivers it", what, exc)
                return
            log.exception("%s could not be handled; the broker redelivers it", what)
            await message.nack(requeue=True)
            return
