"""Status 01 ("Đã đến", arrived) and 02 ("Từ chối", refused): what a receiving adapter may say
on the agency's behalf.

QCVN 102:2016 leaves status 01 to the receiver's software once the document is in it. Agencies
whose systems do not send it themselves can have the adapter send it on delivery (endpoint
setting ``send_arrival_status``); a document the endpoint's signature policy refuses gets a 02
naming why. Either travels as an ordinary status packet, so the sender sees it like any other,
and it is audited like any other.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lgsp_adapter.packets.edxml_codec import parse_edxml, render_edxml
from lgsp_adapter.packets.edxml_model import (
    EdocPacket,
    Organization,
    ResponseFor,
    StatusEnvelope,
    StatusHeader,
    StatusMessageHeader,
    StatusPacket,
)
from lgsp_adapter.packets.edxml_values import EdxmlTimestamp
from lgsp_adapter.packets.safe_xml import XmlLimits

ARRIVED_DESCRIPTION = "Đã đến - văn bản đã đến phần mềm quản lý văn bản của đơn vị"


REFUSED_DESCRIPTION = "Từ chối - "


def arrival_status(
    document: bytes, *, recipient: str, recipient_name: str, limits: XmlLimits
) -> bytes | None:
    """Status 01 from ``recipient`` about a delivered edXML document; None for other packets."""
    return status_about(
        document,
        recipient=recipient,
        recipient_name=recipient_name,
        code="01",
        description=ARRIVED_DESCRIPTION,
        limits=limits,
    )


def refusal_status(
    document: bytes, *, recipient: str, recipient_name: str, why: str, limits: XmlLimits
) -> bytes | None:
    """Status 02 from ``recipient``: the document was refused before it reached its system."""
    return status_about(
        document,
        recipient=recipient,
        recipient_name=recipient_name,
        code="02",
        description=f"{REFUSED_DESCRIPTION}{why}"[:1000],
        limits=limits,
    )


def status_about(
    document: bytes,
    *,
    recipient: str,
    recipient_name: str,
    code: str,
    description: str,
    limits: XmlLimits,
) -> bytes | None:
    """A status packet from ``recipient`` about an edXML document; None for other packets."""
    packet = parse_edxml(document, limits).packet
    if not isinstance(packet, EdocPacket):
        return None
    message = packet.message
    promulgation = message.promulgation_info
    status = StatusPacket(
        envelope=StatusEnvelope(
            header=StatusHeader(
                message_header=StatusMessageHeader(
                    sender=Organization(organ_id=recipient, organ_name=recipient_name),
                    response_for=ResponseFor(
                        organ_id=packet.sender.organ_id,
                        code=str(message.code) if message.code else None,
                        promulgation_date=promulgation.promulgation_date if promulgation else None,
                        document_id=message.document_id,
                    ),
                    status_code=code,
                    description=description,
                    timestamp=EdxmlTimestamp.model_validate(datetime.now(UTC)),
                )
            )
        )
    )
    return render_edxml(status)
