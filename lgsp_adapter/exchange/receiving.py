"""What happens to a packet at the recipient's side: deliver it, then say what the bus does.

The bus hands over one delivery (a packet towards one recipient); the receiver pushes it to the
recipient's system and answers with a ``Settlement`` — delivered, retry later, or given up —
which is recorded with its audit entries before the bus acknowledges (``settling`` does it for
a broker; the embedded bus's acknowledgement is that record). A delivery already recorded (the
bus redelivered after a crash) is settled at once, never posted twice. An agency that wants it
gets the status 01 sent on its behalf, kept by ``Intake.accept_generated``.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from lgsp_adapter.audit import AuditEntry, AuditEvent, log_event
from lgsp_adapter.bus.contract import Settlement
from lgsp_adapter.bus.topology import NOT_SERVED_WAIT_S
from lgsp_adapter.errors import ErrorCode, LgspError, PermanentError, TransientError
from lgsp_adapter.exchange.arrival import arrival_status, refusal_status
from lgsp_adapter.exchange.delivery import Delivered, Deliverer, Outbound
from lgsp_adapter.exchange.intake import Intake
from lgsp_adapter.exchange.signature_gate import Checked, SignatureGate
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.agencies import AXIS_KINDS, DeliveryMode, Endpoint, ServedAgency
from lgsp_adapter.registry.directory import Directory
from lgsp_adapter.store import DeliveryState, Store, StoredPacket, entry_for
from lgsp_adapter.translators import find, translate_from_packet

log = logging.getLogger(__name__)


class Receiver:
    """Delivers packets to the systems of the agencies this daemon serves."""

    def __init__(
        self,
        *,
        store: Store,
        directory: Directory,
        deliverer: Deliverer,
        retry_delays_s: list[float],
        intake: Intake | None = None,
        gate: SignatureGate | None = None,
    ) -> None:
        self._store = store
        self._gate = gate or SignatureGate(None)
        self._directory = directory
        self._deliverer = deliverer
        self._retry_delays_s = retry_delays_s
        self._intake = intake  # for the status 01 the adapter sends on an agency's behalf

    async def handle(self, packet: StoredPacket, recipient: str) -> Settlement:
        """Deliver one packet to one recipient and settle the outcome."""
        packet_id = packet.id
        records = {d.recipient: d for d in await self._store.deliveries(packet_id)}
        record = records.get(recipient)
        if record is None:
            raise KeyError(f"no delivery of {packet_id} to {recipient} in the store")
        if record.state.final:
            # A redelivery (a crash or a dropped connection before the acknowledgement): the
            # outcome is recorded, so the agency system is not posted to again.
            log.info("%s %s already %s; not posting again", packet_id, recipient, record.state)
            return Settlement(record.state, detail=record.detail)
        agency = self._directory.served(AgencyCode.parse(recipient))
        if agency is None:
            # Removed from the registry while this delivery was on its way (or registered and
            # not yet in the directory): not an outcome. It goes back to wait on the bus, and
            # is delivered if the agency is served again; no attempt is counted.
            log.info("%s %s: not served here now; back on the bus", packet_id, recipient)
            return Settlement(record.state, detail=record.detail, retry_in_s=NOT_SERVED_WAIT_S)
        endpoint = agency.endpoint
        delays = endpoint.retry_delays_s or self._retry_delays_s
        if not agency.enabled:
            # Waits on the retry schedule: re-enabled in time, it is delivered.
            paused = TransientError(
                ErrorCode.DELIVERY_UNAVAILABLE, f"{recipient} is disabled in the registry"
            )
            given = self._retry_or_give_up(packet, recipient, record.since_replay, paused, delays)
            return await self._with_verdict(given, packet, recipient, endpoint)
        if not endpoint.accepts(packet.kind):
            taken = endpoint.kinds or (AXIS_KINDS if endpoint.mode is DeliveryMode.AXIS else [])
            why = f"{recipient} takes only {', '.join(taken)}, not {packet.kind}"
            entry = _entry(packet, recipient, AuditEvent.REFUSED, "packet.kind_not_accepted", why)
            log_event(log, entry)
            refused = Settlement(DeliveryState.REFUSED, [entry], why)
            return await self._with_verdict(refused, packet, recipient, endpoint)
        checked = await self._gate.judge(packet, recipient, endpoint)
        if checked.refused is not None:
            return await self._refuse_unsigned(packet, recipient, agency.name, checked)
        if endpoint.mode is DeliveryMode.PULL:
            return self._hold(packet, recipient, record.state, checked)
        return await self._push(packet, recipient, agency, record.since_replay, checked)

    async def _push(
        self,
        packet: StoredPacket,
        recipient: str,
        agency: ServedAgency,
        attempts: int,
        checked: Checked,
    ) -> Settlement:
        """One attempt at the agency system; the verdict goes with whatever outcome is final."""
        endpoint = agency.endpoint
        delays = endpoint.retry_delays_s or self._retry_delays_s
        try:
            outbound = _translated(packet, endpoint.translator)
            delivered = await self._deliverer.push(
                packet, recipient, endpoint, outbound, checked.headers
            )
        except TransientError as exc:
            given = self._retry_or_give_up(packet, recipient, attempts, exc, delays)
            return _recorded(given, checked)
        except PermanentError as exc:
            entry = _entry(packet, recipient, AuditEvent.REFUSED, str(exc.code), exc.message)
            log_event(log, entry)
            refused = Settlement(DeliveryState.REFUSED, [entry], exc.message, attempted=True)
            return _recorded(refused, checked)
        except Exception as exc:
            # Our bug or a library's. Not a silent loop: an attempt on the retry schedule, in
            # the audit log, ending in the dead letters if it never passes.
            log.exception("%s %s: delivery failed unexpectedly", packet.id, recipient)
            failed = TransientError(
                ErrorCode.DELIVERY_UNAVAILABLE, f"internal error: {type(exc).__name__}"
            )
            given = self._retry_or_give_up(packet, recipient, attempts, failed, delays)
            return _recorded(given, checked)
        detail = _delivered_detail(delivered, attempts + 1) + checked.said()
        entry = _entry(packet, recipient, AuditEvent.DELIVERED, "ok", detail)
        log_event(log, entry)
        if endpoint.send_arrival_status and packet.kind == "edoc":
            await self._send_status(packet, agency, "01")
        return _recorded(
            Settlement(DeliveryState.DELIVERED, [entry], detail, attempted=True), checked
        )

    async def _with_verdict(
        self, settled: Settlement, packet: StoredPacket, recipient: str, endpoint: Endpoint
    ) -> Settlement:
        """An outcome reached before the signatures were looked at: if it is final, the
        packet's verdict is recorded with it all the same (an auditor reads every end)."""
        if not settled.state.final:
            return settled
        return _recorded(settled, await self._gate.judge(packet, recipient, endpoint))

    async def _refuse_unsigned(
        self, packet: StoredPacket, recipient: str, name: str, checked: Checked
    ) -> Settlement:
        """The endpoint's signature policy refuses it: nothing is delivered, the sender gets a
        status 02 saying why, and the log says both."""
        why = checked.refused or ""
        entry = _entry(packet, recipient, AuditEvent.REFUSED, str(ErrorCode.SIGNATURE_REFUSED), why)
        log_event(log, entry)
        agency = self._directory.served(AgencyCode.parse(recipient))
        if packet.kind == "edoc" and agency is not None:
            await self._send_status(packet, agency, "02", why)
        return Settlement(DeliveryState.REFUSED, [*checked.entries, entry], why)

    async def _send_status(
        self, packet: StoredPacket, agency: ServedAgency, code: str, why: str = ""
    ) -> None:
        """Status 01 (or 02) to the sender, signed with the agency's key when it has one. The
        delivery's outcome stands whatever happens here: a failure is logged, and must never
        make a delivery look undone (it would be posted again)."""
        if self._intake is None:
            return
        recipient, limits = str(agency.code), self._intake.limits
        try:
            if code == "01":
                status = arrival_status(
                    packet.payload, recipient=recipient, recipient_name=agency.name, limits=limits
                )
            else:
                status = refusal_status(
                    packet.payload,
                    recipient=recipient,
                    recipient_name=agency.name,
                    why=why,
                    limits=limits,
                )
            if status is not None:
                signed = self._gate.sign(agency, status)
                await self._intake.accept_generated(signed, sender=recipient)
        except Exception:
            log.warning("%s %s: status %s not sent", packet.id, recipient, code, exc_info=True)

    def _retry_or_give_up(
        self,
        packet: StoredPacket,
        recipient: str,
        attempts: int,
        error: TransientError,
        delays: list[float],
    ) -> Settlement:
        if attempts >= len(delays):
            detail = f"gave up after {attempts + 1} attempts: {error.message}"
            entry = _entry(packet, recipient, AuditEvent.DEAD_LETTERED, str(error.code), detail)
            log_event(log, entry, logging.WARNING)
            return Settlement(DeliveryState.DEAD_LETTERED, [entry], detail, attempted=True)
        delay = delays[attempts]
        detail = f"{error.message}; next attempt in {delay:g} s"
        entry = _entry(packet, recipient, AuditEvent.RETRIED, str(error.code), detail)
        log_event(log, entry)
        return Settlement(DeliveryState.RETRYING, [entry], detail, attempted=True, retry_in_s=delay)

    def _hold(
        self, packet: StoredPacket, recipient: str, state: DeliveryState, checked: Checked
    ) -> Settlement:
        """A pull agency's packet waits in its inbox; its acknowledgement ends the delivery."""
        detail = "in the pull inbox until the agency's system acknowledges it" + checked.said()
        if state is DeliveryState.HELD:  # the bus redelivered: it is there already
            return Settlement(DeliveryState.HELD, detail=detail)
        entry = _entry(packet, recipient, AuditEvent.HELD, "ok", detail)
        log_event(log, entry)
        return Settlement(DeliveryState.HELD, [*checked.entries, entry], detail)


def _recorded(settled: Settlement, checked: Checked) -> Settlement:
    """The verdict's entry goes before a final outcome's; a retry's waits for the end."""
    if not settled.state.final or not checked.entries:
        return settled
    return replace(settled, entries=[*checked.entries, *settled.entries])


def _entry(
    packet: StoredPacket, recipient: str, event: AuditEvent, outcome: str, detail: str
) -> AuditEntry:
    return entry_for(packet, event, recipient=recipient, outcome=outcome, detail=detail)


def _translated(packet: StoredPacket, translator: str | None) -> Outbound | None:
    """The packet in the agency system's own format, when its endpoint names a translator. A
    packet the translator cannot take is refused for good (``translation.failed``); a
    translator missing from this installation is the operator's to fix, so it is retried."""
    if translator is None:
        return None
    try:
        found = find(translator)
    except LgspError as exc:
        raise TransientError(ErrorCode.DELIVERY_UNAVAILABLE, exc.message) from exc
    return Outbound(translate_from_packet(found, packet.payload), found.media_type)


def _delivered_detail(delivered: Delivered, attempt: int) -> str:
    """How a delivery went, for its audit entry: the answer (or the axis' id for it)."""
    if delivered.reference is not None:
        detail = f"axis DocId {delivered.reference[:100]} on attempt {attempt}"
    else:
        detail = f"HTTP {delivered.status} on attempt {attempt}"
    if delivered.attempts > 1:
        detail += f" ({delivered.attempts} tries)"
    return detail
