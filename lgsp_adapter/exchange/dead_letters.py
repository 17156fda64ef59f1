"""Dead letters: deliveries that ran out of attempts, or that no bus would take, parked for an
operator to decide on. Nothing moves them but an operator: ``replay`` puts one back in the
outbox with a fresh retry schedule (the relay publishes it as if just accepted), ``drop``
gives it up for good and tells the sender. Each act is an audit entry naming the operator,
and acts only on a delivery still dead-lettered, so two operators cannot replay it twice.

A dead letter is acted on where it ended: at the daemon serving its recipient, which made the
attempts, or at the sender's when the bus itself returned it. The sender's daemon also
records, from the receipt, a delivery another daemon gave up on; replaying it there would
make no attempt (the recipient's daemon has it as ended), so it is shown, and refused with
``dead_letter.elsewhere``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

from lgsp_adapter.audit import AuditEvent, log_event
from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.store import DeadLetter, DeliveryRecord, DeliveryState, Store, entry_for

log = logging.getLogger(__name__)

MAX_PAGE = 500


class DeadLetters:
    """The operator's view of, and hand on, the dead-lettered deliveries in this store."""

    def __init__(
        self,
        *,
        store: Store,
        directory: Directory,
        wake: Callable[[], None],
        tell_sender: Callable[[UUID, str], Awaitable[None]],
        tell_own_system: Callable[[UUID, str], Awaitable[None]],
    ) -> None:
        self._store = store
        self._directory = directory
        self._wake = wake  # the relay: a replayed delivery is in the outbox
        self._tell_sender = tell_sender  # the bus: a receipt to the sender's daemon
        self._tell_own_system = tell_own_system  # a sender served here: its receipts_url

    async def find(
        self,
        *,
        recipient: str | None = None,
        sender: str | None = None,
        kind: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Dead letters, oldest first, after the cursor ``after``."""
        found = await self._store.dead_letters(
            recipient=recipient, sender=sender, kind=kind, after=after, limit=limit
        )
        return [await self._placed(letter) for letter in found]

    async def show(self, packet_id: UUID, recipient: str) -> DeadLetter:
        """One dead letter; ``dead_letter.not_found`` if there is no such delivery."""
        found = await self._store.dead_letter(packet_id, recipient)
        if found is None:
            raise _not_found(packet_id, recipient)
        return await self._placed(found)

    async def _placed(self, letter: DeadLetter) -> DeadLetter:
        where = await self._where(letter.packet_id, letter.recipient)
        return letter.model_copy(update={"here": where != "elsewhere"})

    async def _where(self, packet_id: UUID, recipient: str) -> str:
        """``served`` (its attempts were made here), ``returned`` (the bus gave it back to its
        sender here) or ``elsewhere``."""
        if self._directory.served(AgencyCode.parse(recipient)) is not None:
            return "served"
        ends = [
            e
            for e in await self._store.history(packet_id)
            if e.recipient == recipient
            and e.event in (AuditEvent.RETURNED, AuditEvent.DEAD_LETTERED, AuditEvent.RECEIPT)
        ]
        return "returned" if ends and ends[-1].event is AuditEvent.RETURNED else "elsewhere"

    async def replay(self, packet_id: UUID, recipient: str, *, actor: str) -> DeliveryRecord:
        """Back to the outbox on a fresh retry budget; the attempts made so far are kept."""
        current = {d.recipient: d for d in await self._store.deliveries(packet_id)}.get(recipient)
        made = f"; {current.attempts} attempt(s) made before" if current else ""
        replays = f", replay {current.replays + 1}" if current else ""
        return await self._settle(
            packet_id,
            recipient,
            DeliveryState.ACCEPTED,
            actor=actor,
            outcome="dead_letter.replayed",
            detail=f"back in the outbox, on a fresh retry schedule{made}{replays}",
        )

    async def drop(
        self, packet_id: UUID, recipient: str, *, actor: str, reason: str
    ) -> DeliveryRecord:
        """Given up for good, with the operator's reason."""
        return await self._settle(
            packet_id,
            recipient,
            DeliveryState.DROPPED,
            actor=actor,
            outcome="dead_letter.dropped",
            detail=reason,
        )

    async def _settle(
        self,
        packet_id: UUID,
        recipient: str,
        state: DeliveryState,
        *,
        actor: str,
        outcome: str,
        detail: str,
    ) -> DeliveryRecord:
        packet = await self._store.facts(packet_id)
        current = {d.recipient: d for d in await self._store.deliveries(packet_id)}
        if packet is None or recipient not in current:
            raise _not_found(packet_id, recipient)
        if current[recipient].state is not DeliveryState.DEAD_LETTERED:
            raise _not_dead(recipient, current[recipient].state)
        where = await self._where(packet_id, recipient)
        if where == "elsewhere":
            raise PermanentError(
                ErrorCode.DEAD_LETTER_ELSEWHERE,
                f"the delivery to {recipient} ended at the daemon that serves it; replay or "
                "drop it there (here it is the sender's record of that end)",
                details={"recipient": recipient},
            )
        entry = entry_for(
            packet, AuditEvent.ADMIN, recipient=recipient, outcome=outcome, detail=detail
        ).model_copy(update={"actor": actor})
        record = await self._store.leave_dead_letters(packet_id, recipient, state, [entry])
        if record is None:  # another operator was quicker
            now = {d.recipient: d for d in await self._store.deliveries(packet_id)}[recipient]
            raise _not_dead(recipient, now.state)
        log_event(log, entry, logging.WARNING)
        if state is DeliveryState.ACCEPTED:
            self._wake()
        else:
            await self._announce(packet_id, recipient, where)
        return record

    async def _announce(self, packet_id: UUID, recipient: str, where: str) -> None:
        """Tell the sender a delivery was given up (its system may be waiting on it)."""
        tell = self._tell_sender if where == "served" else self._tell_own_system
        try:
            await tell(packet_id, recipient)
        except Exception:
            # Recorded and audited already; the sender still has it as dead-lettered.
            log.warning("%s %s: the sender could not be told of the drop", packet_id, recipient)


def _not_dead(recipient: str, state: DeliveryState) -> PermanentError:
    return PermanentError(
        ErrorCode.DEAD_LETTER_NOT_DEAD,
        f"the delivery to {recipient} is {state.value}, not dead-lettered",
        details={"state": state.value},
    )


def _not_found(packet_id: UUID, recipient: str) -> PermanentError:
    return PermanentError(
        ErrorCode.DEAD_LETTER_NOT_FOUND, f"no delivery of {packet_id} to {recipient} here"
    )
