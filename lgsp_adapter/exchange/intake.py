"""What happens to a packet an agency system submits, up to the moment it is safe with us.

Read it with the codecs; check that the submitting client may speak for its sender (no
spoofing); find its recipients and check each is an agency the exchange knows; then keep it —
packet, one delivery per recipient, and the ``received`` audit entry — in one transaction. Only
then is the packet accepted. Every refusal is audited too, and changes nothing else.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from lgsp_adapter.audit import AuditEntry, AuditEvent, log_event
from lgsp_adapter.errors import ErrorCode, InvalidPacket, LgspError, PermanentError, TransientError
from lgsp_adapter.exchange.idempotency import (
    DEFAULT_WINDOW,
    Repeat,
    document_repeat,
    first_answer,
    kept_meanwhile,
    keyed_repeat,
)
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.packets.reader import (
    Packet,
    ReadPacket,
    document_id_of,
    read_packet_off_loop,
    recipients_of,
    sender_of,
)
from lgsp_adapter.packets.safe_xml import XmlLimits
from lgsp_adapter.registry.agencies import Client
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.store import (
    DeliveryRecord,
    PacketFacts,
    Store,
    StoredPacket,
    entry_for,
)
from lgsp_adapter.store.records import PacketIdTaken
from lgsp_adapter.translators.base import Envelope, find, translate_to_packet

log = logging.getLogger(__name__)

OUTBOX_MEASURE_S = 1.0  # how often the outbox's size is read again
OUTBOX_RETRY_AFTER_S = 30  # what a sender refused for a full outbox is told to wait
GENERATED_BY = "lgsp-adapter"  # the client a packet the adapter writes itself is kept under

# The translator (by name) and the envelope for what an agency system submits in its own format.
Translation = tuple[str, Envelope]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A packet kept: its id, what it is, where it goes, and what was odd about it."""

    packet: StoredPacket
    read: ReadPacket
    deliveries: list[DeliveryRecord]
    repeated: bool = False  # a repeat of a keyed submission: kept before, answered alike


class Intake:
    """Accepts packets from clients into the store."""

    def __init__(
        self,
        *,
        store: Store,
        directory: Directory,
        limits: XmlLimits,
        on_accept: Callable[[], None] | None = None,
        outbox_budget_bytes: int | None = None,
        idempotency_window: timedelta = DEFAULT_WINDOW,
    ) -> None:
        self._window = idempotency_window
        self._store = store
        self._directory = directory
        self.limits = limits
        self._on_accept = on_accept
        self._budget = outbox_budget_bytes
        self._outbox_bytes = 0  # as last measured, plus what was accepted since
        self._measured_at = -OUTBOX_MEASURE_S

    async def submit(
        self,
        data: bytes,
        *,
        content_type: str | None,
        client: Client,
        translation: Translation | None = None,
        claimed_sender: str | None = None,
        packet_id: uuid.UUID | None = None,
        reached: Callable[[str], bool] | None = None,
        audit_refusal: bool = True,
        idempotent: bool = False,
    ) -> Accepted:
        """Accept a packet, or raise ``LgspError`` saying why not (the refusal is audited).
        With ``translation``, ``data`` is in the agency system's own format: the packet kept
        is its translation, checked like any other. ``claimed_sender`` is who the transport
        says sends (the axis' ``from`` header): the packet must name the same. ``packet_id`` is
        the id to keep it under when the caller must know it beforehand (a packet fetched from
        an axis: fetched again, it is found by it); ``PacketIdTaken`` if it is kept already.
        With ``reached``, the packet goes only to those of its recipients it admits (a packet
        from an axis: the axis delivers to the others itself), and to at least one. Without
        ``audit_refusal`` the caller audits a refusal itself (``refused``), or not: the axis
        poller, which tries a packet again, audits its refusal once, not at every try. With
        ``idempotent``, ``packet_id`` is an Idempotency-Key's: a packet kept under it already
        is this one repeated (answered as at first, ``repeated``), or refused if it is not."""
        sha256 = hashlib.sha256(data).hexdigest()
        translated_from = None
        try:
            await self._check_outbox(len(data))
            _check_content_type(content_type)
            if translation is not None:
                name, envelope = translation
                data = translate_to_packet(find(name), data, envelope, self.limits)
                translated_from, sha256 = sha256, hashlib.sha256(data).hexdigest()
                content_type = None  # whatever it became, the packet says
            read = await read_packet_off_loop(data, content_type=content_type, limits=self.limits)
            sender = self._check_sender(read.packet, client)
            if claimed_sender is not None and claimed_sender != sender:
                raise PermanentError(
                    ErrorCode.PACKET_FORGED_SENDER,
                    f"the request says it comes from {claimed_sender!r}, the packet from "
                    f"{sender!r}",
                    details={"sender": sender, "claimed": claimed_sender},
                )
            recipients = self._check_recipients(read.packet, reached)
            self._check_served_recipients(recipients, read.kind)
            repeat: Repeat | None = None
            if idempotent and packet_id is not None:
                repeat = await keyed_repeat(self._store, packet_id, sha256, self._window)
            elif packet_id is None and read.kind == "edoc":
                repeat = await document_repeat(self._store, read.packet, sender, sha256)
            if repeat is not None:
                packet_id = repeat.packet_id
                if repeat.earlier is not None:
                    repeat.check(repeat.earlier)  # another packet under its name: refused
                    return self._again(repeat.earlier, read, data)
        except LgspError as exc:
            if audit_refusal:
                await self.refused(exc, client.name, sha256)
            raise
        elsewhere = [code for code in recipients_of(read.packet) if code not in recipients]
        return await self._keep(
            data,
            sha256,
            read,
            sender=sender,
            recipients=recipients,
            content_type=content_type,
            client=client.name,
            detail=_received_detail(read, translation, translated_from, elsewhere),
            packet_id=packet_id,
            repeat=repeat,
        )

    async def accept_generated(self, data: bytes, *, sender: str) -> Accepted:
        """Keep a packet the adapter wrote itself on ``sender``'s behalf (the status 01 sent on
        delivery). No client speaks for it and it charges no outbox budget (it answers a
        delivery already made); it is read back as its receiver will read it, its recipients
        are checked as a submission's are, and it is kept and audited as one."""
        sha256 = hashlib.sha256(data).hexdigest()
        try:
            read = await read_packet_off_loop(data, content_type=None, limits=self.limits)
            if sender_of(read.packet) != sender:
                raise InvalidPacket(
                    ErrorCode.PACKET_FORGED_SENDER,
                    f"the adapter wrote a packet for {sender} that names another sender",
                    details={"sender": sender},
                )
            recipients = self._check_recipients(read.packet)
            self._check_served_recipients(recipients, read.kind)
        except LgspError as exc:
            await self.refused(exc, GENERATED_BY, sha256)
            raise
        return await self._keep(
            data,
            sha256,
            read,
            sender=sender,
            recipients=recipients,
            content_type=None,
            client=GENERATED_BY,
            detail=_received_detail(read, None, None),
        )

    async def _keep(
        self,
        data: bytes,
        sha256: str,
        read: ReadPacket,
        *,
        sender: str,
        recipients: list[str],
        content_type: str | None,
        client: str,
        detail: str | None,
        packet_id: uuid.UUID | None = None,
        repeat: Repeat | None = None,
    ) -> Accepted:
        """The packet, a delivery per recipient and the ``received`` entry, in one transaction;
        with ``repeat``, one kept under its id meanwhile (a request at the same time) is this
        one's first answer, or this one is refused."""
        packet = StoredPacket(
            id=packet_id or uuid.uuid4(),
            kind=read.kind,
            sender=sender,
            recipients=recipients,
            document_id=document_id_of(read.packet),
            content_type=content_type or _default_content_type(read),
            payload=data,
            sha256=sha256,
            client=client,
        )
        received = entry_for(
            packet, AuditEvent.RECEIVED, recipient=",".join(recipients), outcome="ok", detail=detail
        )
        try:
            await self._store.accept(packet, [received])
        except PacketIdTaken:
            if repeat is None:
                raise
            return await self._kept_meanwhile(packet, read, repeat)
        log_event(log, received)
        if self._on_accept is not None:
            self._on_accept()  # the relay need not wait for its next look at the outbox
        return Accepted(packet, read, await self._store.deliveries(packet.id))

    async def _kept_meanwhile(
        self, packet: StoredPacket, read: ReadPacket, repeat: Repeat
    ) -> Accepted:
        """The packet another request kept under this one's id while it was being read."""
        earlier = await kept_meanwhile(self._store, packet.id)
        try:
            repeat.check(earlier)
        except LgspError as exc:
            await self.refused(exc, packet.client or "", packet.sha256)
            raise
        return self._again(earlier, read, packet.payload)

    @staticmethod
    def _again(earlier: PacketFacts, read: ReadPacket, data: bytes) -> Accepted:
        """The first answer to a packet kept already. Nothing is written."""
        log.info("%s submitted again by %s; answered as at first", earlier.id, earlier.client)
        packet, first = first_answer(earlier, data)
        return Accepted(packet, read, first, repeated=True)

    async def refused(self, error: LgspError, client: str, sha256: str) -> None:
        """Audit a refusal of what ``client`` submitted (its bytes' digest ``sha256``)."""
        rejection = _rejection(error, client, sha256)
        await self._store.append([rejection])
        log_event(log, rejection)

    async def _check_outbox(self, size: int) -> None:
        """Refuse, for now, what would take the outbox past its budget: the bus has been away
        long enough to fill it. Measured at most once a second (the sum is a query), and
        counted up in between."""
        if self._budget is None:
            return
        now = time.monotonic()
        if now - self._measured_at >= OUTBOX_MEASURE_S:
            _, self._outbox_bytes = await self._store.outbox_size()
            self._measured_at = now
        if self._outbox_bytes + size > self._budget:
            raise TransientError(
                ErrorCode.OUTBOX_FULL,
                f"the bus has been away long enough to fill the outbox "
                f"({self._outbox_bytes // 1_000_000} MB); try again later",
                details={"retry_after_s": OUTBOX_RETRY_AFTER_S},
            )
        self._outbox_bytes += size

    def _check_sender(self, packet: Packet, client: Client) -> str:
        sender = sender_of(packet)
        if not client.speaks_for(sender):
            raise PermanentError(
                ErrorCode.PACKET_FORGED_SENDER,
                f"client {client.name} may not send as {sender!r}",
                details={"sender": sender},
            )
        served = self._directory.served(AgencyCode.parse(sender))
        if served is None:  # its settings client outlived its removal from the registry
            raise PermanentError(
                ErrorCode.AUTH_FORBIDDEN,
                f"{sender} is no longer served here: its systems may not submit",
                details={"sender": sender},
            )
        if not served.enabled:
            raise PermanentError(
                ErrorCode.AUTH_FORBIDDEN,
                f"{sender} is disabled here (its registry entry or its route): its systems may "
                "not submit",
                details={"sender": sender},
            )
        return sender

    def _check_served_recipients(self, recipients: list[str], kind: str) -> None:
        """Recipients served here are checked now: disabled, or not taking this kind, is a
        refusal the sender hears at once rather than a dead letter later."""
        for code in recipients:
            agency = self._directory.served(AgencyCode.parse(code))
            if agency is None:
                continue
            if not agency.enabled:
                raise InvalidPacket(
                    ErrorCode.PACKET_RECIPIENT_DISABLED,
                    f"{code} is disabled here (its registry entry or its route) and takes no "
                    "packets now",
                    details={"recipient": code},
                )
            if not agency.endpoint.accepts(kind):
                raise InvalidPacket(
                    ErrorCode.PACKET_KIND_NOT_ACCEPTED,
                    f"{code} takes only {', '.join(agency.endpoint.kinds)}, not {kind}",
                    details={"recipient": code, "kinds": agency.endpoint.kinds},
                )

    def _check_recipients(
        self, packet: Packet, reached: Callable[[str], bool] | None = None
    ) -> list[str]:
        recipients = recipients_of(packet)
        if reached is not None:
            ours = [code for code in recipients if reached(code)]
            if not ours:
                raise InvalidPacket(
                    ErrorCode.PACKET_UNKNOWN_RECIPIENT,
                    f"none of its recipients ({', '.join(recipients[:10])}) is reached here",
                    details={"recipients": recipients[:10]},
                )
            return ours
        unknown = [code for code in recipients if not self._routable(code)]
        if unknown:
            raise InvalidPacket(
                ErrorCode.PACKET_UNKNOWN_RECIPIENT,
                f"no agency on this exchange has the code {', '.join(map(repr, unknown[:10]))}",
                details={"recipients": unknown[:10]},
            )
        return recipients

    def _routable(self, text: str) -> bool:
        code = AgencyCode.read(text).code
        return code is not None and str(code) == text and self._directory.is_known(code)


def _received_detail(
    read: ReadPacket,
    translation: Translation | None,
    original_sha256: str | None,
    elsewhere: list[str] | None = None,
) -> str | None:
    parts = [f"{len(read.warnings)} warnings"] if read.warnings else []
    if translation is not None:
        parts.append(f"translated by {translation[0]} from sha256 {original_sha256}")
    if elsewhere:
        parts.append(f"also addressed to {', '.join(elsewhere[:10])}, reached otherwise")
    return "; ".join(parts)[:500] or None


def _check_content_type(content_type: str | None) -> None:
    # It travels as an AMQP property: a short string of printable ASCII.
    if content_type is not None and (
        len(content_type) > 200 or not content_type.isascii() or not content_type.isprintable()
    ):
        raise InvalidPacket(
            ErrorCode.PACKET_UNKNOWN_KIND,
            "the Content-Type is not a media type (at most 200 printable ASCII characters)",
        )


def _default_content_type(read: ReadPacket) -> str:
    return "application/json" if read.kind.startswith("tax-transport/") else "application/xml"


def _rejection(error: LgspError, client: str, sha256: str) -> AuditEntry:
    return AuditEntry(
        event=AuditEvent.REJECTED,
        sender=(error.details or {}).get("sender") if isinstance(error.details, dict) else None,
        payload_sha256=sha256,
        outcome=str(error.code),
        detail=f"from client {client}: {error.message}"[:500],
    )
