"""Strays: what another bus's shovel brought for a code no queue on this bus takes (a code the
far bus's routing table sends here, and this bus's does not hold). A shovel's publish is not
mandatory, so the arrivals exchange's alternate keeps them; here each is recorded as returned
and answered with a refused receipt that finds its way back across the bridges to the sender's
daemon, which tells the sender. A stray receipt is recorded and dropped: answering it could
start a loop between two buses.
"""

from __future__ import annotations

import logging

from lgsp_adapter.audit import AuditEntry, AuditEvent, log_event
from lgsp_adapter.bus.contract import Carrier, Receipt, Stray, Verdict
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.store import DeliveryState, Store

log = logging.getLogger(__name__)
UNROUTABLE = "bus.unroutable"


async def settle_stray(
    store: Store, carrier: Carrier, directory: Directory, stray: Stray
) -> Verdict:
    """Record ``stray`` and, for a packet from a bridge's codes, refuse it back to its sender."""
    bridge = directory.bridge_arriving_as(stray.publisher)
    came = f"from {bridge.description}" if bridge else f"published by {stray.publisher!r}"
    path = f" through {', '.join(stray.hops)}" if stray.hops else ""
    answer = bridge is not None and stray.kind != "receipt" and bridge.takes(stray.sender)
    why = f"no queue on this bus takes {stray.recipient}"
    if stray.kind == "receipt":
        detail = f"a receipt for {stray.sender} {came}{path}: no queue here takes it; dropped"
    elif answer:
        detail = f"{came}{path}: {why}; refused back to {stray.sender}"
    else:
        detail = f"{came}{path}, not a bridge's account for {stray.sender}: {why}; dropped"
    entry = AuditEntry(
        event=AuditEvent.RETURNED,
        packet_id=stray.packet_id,
        sender=stray.sender,
        recipient=stray.recipient,
        kind=stray.kind,
        payload_sha256=stray.sha256,
        outcome=UNROUTABLE,
        detail=detail[:500],
    )
    await store.append([entry])
    log_event(log, entry, logging.WARNING)
    if answer:
        await carrier.send_receipt(
            Receipt(
                packet_id=stray.packet_id,
                sender=stray.sender,
                recipient=stray.recipient,
                state=DeliveryState.REFUSED,
                attempts=0,
                detail=f"{UNROUTABLE}: {why}",
            )
        )
    return Verdict.ACK
