"""Telling a sending agency's system how each delivery of its packet ended.

The transport outcome (delivered, refused, dead-lettered) is always in the store, where
``GET /v1/packets/{id}`` shows it. An agency whose endpoint has a ``receipts_url`` also gets it
pushed there as JSON, once the delivery is final. The push is best effort: a system that misses
it can still ask; each push is audited with its outcome.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import UUID

import aiohttp

from lgsp_adapter.audit import AuditEvent, log_event
from lgsp_adapter.audit.entry import format_time
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.registry.endpoint_transport import redacted
from lgsp_adapter.store import Store, entry_for

log = logging.getLogger(__name__)


class ReceiptPusher:
    """Pushes final delivery outcomes to the sender's ``receipts_url``."""

    def __init__(
        self,
        *,
        store: Store,
        directory: Directory,
        session: aiohttp.ClientSession,
        timeout_s: float = 10.0,
    ) -> None:
        self._store = store
        self._directory = directory
        self._session = session
        self._timeout_s = timeout_s

    async def push(self, packet_id: UUID, recipient: str) -> None:
        """Push the outcome of one final delivery, if its sender wants receipts pushed."""
        # Most daemons have no agency that wants receipts pushed: then this costs no read.
        if not self._directory.wants_receipts:
            return
        packet = await self._store.facts(packet_id)
        if packet is None or packet.sender not in self._directory.wants_receipts:
            return
        code = AgencyCode.read(packet.sender).code
        sender = self._directory.served(code) if code else None
        if sender is None or sender.endpoint.receipts_url is None:
            return
        record = {d.recipient: d for d in await self._store.deliveries(packet_id)}.get(recipient)
        if record is None or not record.state.final:
            return
        receipt = {
            "packet_id": str(packet_id),
            "kind": packet.kind,
            "document_id": packet.document_id,
            "sender": packet.sender,
            "recipient": recipient,
            "state": record.state.value,
            "attempts": record.attempts,
            "detail": record.detail,
            "at": format_time(datetime.now(UTC)),
        }
        url = str(sender.endpoint.receipts_url)
        try:
            async with self._session.post(
                url,
                json=receipt,
                headers={"X-LGSP-Kind": "receipt", "X-LGSP-Packet-Id": str(packet_id)},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            ) as response:
                await response.content.read(64 * 1024)  # bounded: the status is what counts
                outcome = "pushed" if 200 <= response.status < 300 else f"http.{response.status}"
        except (TimeoutError, aiohttp.ClientError) as exc:
            outcome = f"unreachable: {type(exc).__name__}"
        entry = entry_for(
            packet,
            AuditEvent.RECEIPT,
            recipient=recipient,
            outcome=outcome,
            detail=f"{record.state} receipt to {packet.sender}'s receipts_url {redacted(url)}",
        )
        await self._store.append([entry])
        log_event(log, entry)
