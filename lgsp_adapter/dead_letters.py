"""Dead letters: deliveries that ran out of attempts, or that no bus would take, parked for an
operator to decide on. Nothing moves them but an operator: ``replay`` puts one back in the
outbox with a fresh retry schedule (the relay publishes it as if just accepted, so it reaches
whichever daemon serves the recipient now), ``drop`` gives it up for good. Each act is an
audit entry naming the operator, and acts only on a delivery still dead-lettered, so two
operators cannot replay the same one twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from uuid import UUID

from lgsp_adapter.audit import AuditEvent
from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.store import DeadLetter, DeliveryRecord, DeliveryState, entry_for
from lgsp_adapter.store.sqlite import SqliteStore

log = logging.getLogger(__name__)

MAX_PAGE = 500


class DeadLetters:
    """The operator's view of, and hand on, the dead-lettered deliveries in this store."""

    def __init__(self, *, store: SqliteStore, wake: Callable[[], None]) -> None:
        self._store = store
        self._wake = wake  # the relay: a replayed delivery is in the outbox

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
        return await self._store.dead_letters(
            recipient=recipient, sender=sender, kind=kind, after=after, limit=limit
        )

    async def show(self, packet_id: UUID, recipient: str) -> DeadLetter:
        """One dead letter; ``dead_letter.not_found`` if there is no such delivery."""
        found = await self._store.dead_letter(packet_id, recipient)
        if found is None:
            raise _not_found(packet_id, recipient)
        return found

    async def replay(self, packet_id: UUID, recipient: str, *, actor: str) -> DeliveryRecord:
        """Back to the outbox, attempts counted from nought."""
        return await self._settle(
            packet_id,
            recipient,
            DeliveryState.ACCEPTED,
            actor=actor,
            outcome="dead_letter.replayed",
            detail="back in the outbox, on a fresh retry schedule",
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
        packet = await self._store.packet(packet_id)
        if packet is None:
            raise _not_found(packet_id, recipient)
        entry = entry_for(
            packet, AuditEvent.ADMIN, recipient=recipient, outcome=outcome, detail=detail
        ).model_copy(update={"actor": actor})
        record = await self._store.leave_dead_letters(packet_id, recipient, state, [entry])
        if record is None:
            current = {d.recipient: d for d in await self._store.deliveries(packet_id)}
            if recipient not in current:
                raise _not_found(packet_id, recipient)
            raise PermanentError(
                ErrorCode.DEAD_LETTER_NOT_DEAD,
                f"the delivery to {recipient} is {current[recipient].state.value}, "
                "not dead-lettered",
                details={"state": current[recipient].state.value},
            )
        log.warning(entry.line())
        if state is DeliveryState.ACCEPTED:
            self._wake()
        return record


def _not_found(packet_id: UUID, recipient: str) -> PermanentError:
    return PermanentError(
        ErrorCode.DEAD_LETTER_NOT_FOUND, f"no delivery of {packet_id} to {recipient} here"
    )
