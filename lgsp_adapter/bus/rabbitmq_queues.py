"""The queues one daemon needs on RabbitMQ, declared as its agencies and their retry schedules
come and go: or, where its account may declare nothing (``bus.declare = false``), required.

A retry queue is declared when a schedule first needs it and remembered, so a busy consumer
does not declare the same queue for every retry; an agency served anew has all of its queues
declared again, since an operator may have deleted them while it was away.
"""

from __future__ import annotations

from collections.abc import Callable

from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from lgsp_adapter.bus import declare
from lgsp_adapter.bus.topology import Topology
from lgsp_adapter.errors import ErrorCode, FatalError

Delays = Callable[[str], list[float]]
"""An agency's retry schedule, by its code."""


class AgencyQueues:
    """Declares (or requires) the exchange and each served agency's queues."""

    def __init__(
        self,
        *,
        topology: Topology,
        delays: Delays,
        may_declare: bool,
        patterns: Callable[[str], list[str] | None] = lambda key: None,
    ) -> None:
        self._topology = topology
        self._delays = delays
        self._patterns = patterns  # a route's key: the patterns its queues are bound to
        self._may_declare = may_declare
        self._retry_queues: set[str] = set()  # declared or found by this process

    async def declare(
        self, connection: AbstractConnection, channel: AbstractChannel, served: list[str]
    ) -> AbstractExchange:
        """The exchange and these agencies' queues (idempotent), or, where the daemon may
        not declare, a check that they are there; returns the exchange."""
        if not self._may_declare:
            await self.require(connection, served)
            return await channel.get_exchange(self._topology.exchange, ensure=False)
        exchange = await declare.exchanges(channel, self._topology)
        for recipient in served:
            await self.agency(connection, channel, recipient)
        return exchange

    async def require(self, connection: AbstractConnection, codes: list[str]) -> None:
        """The topology an administrator declared beforehand is all there, or a clear error."""
        needed = {code: self._delays(code) for code in codes}
        absent = await declare.missing(connection, self._topology, needed)
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

    async def agency(
        self, connection: AbstractConnection, channel: AbstractChannel, recipient: str
    ) -> None:
        """One agency's queue, dead letters and retry queues, bound (idempotent)."""
        if not self._may_declare:
            await self.require(connection, [recipient])
            return
        await declare.agency_queues(channel, self._topology, recipient, self._patterns(recipient))
        for delay in self._delays(recipient):
            await self.retry(connection, channel, recipient, delay)

    async def retry(
        self,
        connection: AbstractConnection,
        channel: AbstractChannel,
        recipient: str,
        delay_s: float,
    ) -> None:
        """The retry queue for ``delay_s``, unless this process has it already; a schedule
        changed since ``lgsp-adapter declare`` ran is a ``FatalError`` where it may not."""
        name = self._topology.retry_queue(recipient, delay_s)
        if name in self._retry_queues:
            return
        if not self._may_declare:
            await self.require(connection, [recipient])
            return
        await declare.retry_queue(channel, self._topology, recipient, delay_s)
        self._retry_queues.add(name)

    def forget(self, recipient: str) -> None:
        """Declare this agency's retry queues anew when next needed (they may be gone)."""
        prefix = self._topology.retry_queue(recipient, 0).rsplit(".", 1)[0] + "."
        self._retry_queues = {q for q in self._retry_queues if not q.startswith(prefix)}
