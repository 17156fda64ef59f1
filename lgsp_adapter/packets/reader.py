"""One entry point for every packet kind: recognise it, read it, say what deviated.

An agency system may send an edXML document, an edXML status receipt or a tax–transport JSON
packet to the same door; the content type, or else the first byte, tells which codec reads it.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import get_args

from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.packets.diagnostics import Diagnostic
from lgsp_adapter.packets.edxml_codec import EdxmlPacket, parse_edxml
from lgsp_adapter.packets.edxml_model import EdocPacket, StatusPacket
from lgsp_adapter.packets.safe_xml import XmlLimits
from lgsp_adapter.packets.tax_transport import TaxTransportPacket, parse_tax_transport

Packet = EdxmlPacket | TaxTransportPacket

# From this size a packet is read in a thread: 5 MB takes ~20 ms to parse and check, time in
# which the event loop would answer nobody else (other submissions, deliveries, /healthz). A
# small one is read where it is, as the hop to a thread would cost more than it saves. Two at
# a time: each tree of a large document is several times its size, and the GIL lets no more
# than one make progress anyway.
OFF_LOOP_BYTES = 256 * 1024
_READING_LARGE = threading.BoundedSemaphore(2)

_XML_TYPES = ("application/xml", "text/xml")
_JSON_TYPES = ("application/json",)


@dataclass(frozen=True, slots=True)
class ReadPacket:
    """A packet read from bytes: the model, its kind, and the deviations found."""

    packet: Packet
    warnings: list[Diagnostic] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """``edoc``, ``status`` or ``tax-transport/…``."""
        return self.packet.kind


def read_packet(
    data: bytes, *, content_type: str | None = None, limits: XmlLimits | None = None
) -> ReadPacket:
    """Read any packet we carry; raises ``InvalidPacket`` with a stable code when we cannot."""
    limits = limits or XmlLimits()
    if len(data) > limits.max_bytes:
        raise InvalidPacket(
            ErrorCode.PACKET_TOO_LARGE,
            f"the packet is {len(data)} bytes; the limit is {limits.max_bytes}",
            details={"size_bytes": len(data), "max_bytes": limits.max_bytes},
        )
    syntax = _syntax(data, content_type)
    if syntax == "xml":
        parsed = parse_edxml(data, limits)
        return ReadPacket(parsed.packet, parsed.warnings)
    return ReadPacket(parse_tax_transport(data))


async def read_packet_off_loop(
    data: bytes, *, content_type: str | None = None, limits: XmlLimits | None = None
) -> ReadPacket:
    """``read_packet``, in a thread when the packet is large (``OFF_LOOP_BYTES``)."""
    if len(data) < OFF_LOOP_BYTES:
        return read_packet(data, content_type=content_type, limits=limits)
    return await asyncio.to_thread(_read_large, data, content_type, limits)


def _read_large(data: bytes, content_type: str | None, limits: XmlLimits | None) -> ReadPacket:
    with _READING_LARGE:
        return read_packet(data, content_type=content_type, limits=limits)


def _syntax(data: bytes, content_type: str | None) -> str:
    if content_type:
        media = content_type.split(";")[0].strip().lower()
        if media in _XML_TYPES or media.endswith("+xml"):
            return "xml"
        if media in _JSON_TYPES or media.endswith("+json"):
            return "json"
        raise InvalidPacket(
            ErrorCode.PACKET_UNKNOWN_KIND,
            f"content type {media!r} is neither XML (edXML) nor JSON (tax–transport)",
            details={"content_type": media},
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff", b"<\x00", b"\x00<")):  # UTF-16
        return "xml"
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start == b"<":
        return "xml"
    if start == b"{":
        return "json"
    raise InvalidPacket(
        ErrorCode.PACKET_UNKNOWN_KIND,
        "the content is neither XML (edXML) nor a JSON object (tax–transport)",
    )


def sender_of(packet: Packet) -> str:
    """The agency the packet says it comes from, as written."""
    if isinstance(packet, EdocPacket | StatusPacket):
        return packet.sender.organ_id.strip()
    return str(packet.sender)


def recipients_of(packet: Packet) -> list[str]:
    """The agencies the packet goes to, as written, each once, in order of appearance.

    A status packet goes to the agency whose document it is about (``ResponseFor``)."""
    if isinstance(packet, EdocPacket):
        codes = [org.organ_id.strip() for org in packet.recipients]
    elif isinstance(packet, StatusPacket):
        codes = [packet.message.response_for.organ_id.strip()]
    else:
        codes = [str(code) for code in packet.recipients]
    return list(dict.fromkeys(codes))


def document_id_of(packet: Packet) -> str | None:
    """The document a packet carries or is about, when it names one."""
    if isinstance(packet, EdocPacket):
        return packet.message.document_id
    if isinstance(packet, StatusPacket):
        return packet.message.response_for.document_id
    return packet.reference


def _kinds() -> frozenset[str]:
    models = [*get_args(EdxmlPacket), *get_args(get_args(TaxTransportPacket)[0])]
    return frozenset(
        kind for model in models for kind in get_args(model.model_fields["kind"].annotation)
    )


KINDS = _kinds()  # every packet kind we carry: what an endpoint may name as accepted
