"""What ``lgsp-adapter inspect`` prints: a summary a clerk can read, or canonical JSON.

The summary answers the questions people ask of a packet (who sent it to whom, which document,
what it does, what it carries, what looks wrong) in that order, one fact per line.
"""

from __future__ import annotations

import json
from typing import Any

from lgsp_adapter.audit.entry import format_time
from lgsp_adapter.packets.edxml_model import EdocPacket, Organization, StatusPacket
from lgsp_adapter.packets.reader import ReadPacket
from lgsp_adapter.packets.tax_transport import (
    RecordReply,
    RecordRequest,
    TaxStatusQuery,
    TaxStatusReply,
    TaxTransportPacket,
)

_BUSINESS_WORDS = {0: "new document", 1: "revocation", 2: "update", 3: "replacement"}


def summary(read: ReadPacket) -> str:
    """A readable multi-line summary of a packet and its warnings."""
    packet = read.packet
    if isinstance(packet, EdocPacket):
        lines = _document(packet)
    elif isinstance(packet, StatusPacket):
        lines = _status(packet)
    else:
        lines = _tax_transport(packet)
    lines.append(f"warnings     {len(read.warnings) or 'none'}")
    lines.extend(f"  {warning}" for warning in read.warnings)
    return "\n".join(lines)


def canonical_json(read: ReadPacket) -> str:
    """The packet as JSON, with the kind and the warnings; attachments by size and digest."""
    body: dict[str, Any] = {
        "kind": read.kind,
        "packet": read.packet.model_dump(mode="json", exclude_none=True),
        "warnings": [w.model_dump(mode="json", exclude_none=True) for w in read.warnings],
    }
    return json.dumps(body, ensure_ascii=False, indent=2)


def _organ(org: Organization) -> str:
    return f"{org.organ_id}  {org.organ_name or org.organization_in_charge or ''}".rstrip()


def _document(packet: EdocPacket) -> list[str]:
    message = packet.message
    kind = packet.business_doc_type
    lines = [
        f"kind         edoc ({_BUSINESS_WORDS[kind]}, BussinessDocType {int(kind)})",
        f"sender       {_organ(message.sender)}",
    ]
    for index, recipient in enumerate(message.recipients):
        lines.append(f"{'recipients' if index == 0 else '':<13}{_organ(recipient)}")
    lines.append(f"document id  {message.document_id or '-'}")
    lines.append(f"code         {message.code or '-'}")
    if message.promulgation_info and message.promulgation_info.promulgation_date:
        lines.append(f"issued       {message.promulgation_info.promulgation_date}")
    if message.document_type and message.document_type.type_name:
        lines.append(f"type         {message.document_type.type_name}")
    lines.append(f"subject      {message.subject or '-'}")
    business = packet.business
    if business and business.business_doc_reason:
        lines.append(f"reason       {business.business_doc_reason}")
    signed = packet.envelope.header.signature is not None
    lines.append(f"signed       {'yes (XML-DSig block kept verbatim)' if signed else 'no'}")
    lines.append(f"attachments  {len(packet.attachments) or 'none'}")
    for attachment in packet.attachments:
        lines.append(
            f"  {attachment.content_id}  {attachment.attachment_name or '-'}  "
            f"{attachment.content_type or '-'}  {attachment.size_bytes:,} bytes  "
            f"sha256 {attachment.sha256}"
        )
    return lines


def _status(packet: StatusPacket) -> list[str]:
    message = packet.message
    about = message.response_for
    return [
        f"kind         status {message.status_code}: {packet.meaning}",
        f"sender       {_organ(message.sender)}",
        f"about        {about.document_id or about.code or '-'} (from {about.organ_id})",
        f"description  {message.description or '-'}",
        f"time         {message.timestamp or '-'}",
    ]


def _tax_transport(packet: TaxTransportPacket) -> list[str]:
    lines = [
        f"kind         {packet.kind} (schema version {packet.schema_version})",
        f"sender       {packet.sender}",
        f"recipients   {', '.join(str(r) for r in packet.recipients)}",
        f"reference    {packet.reference}"
        + (f" (in reply to {packet.in_reply_to})" if packet.in_reply_to else ""),
        f"created      {format_time(packet.created_at)}",
    ]
    if isinstance(packet, TaxStatusQuery):
        lines.append(f"tax codes    {', '.join(packet.tax_codes)}")
    elif isinstance(packet, RecordRequest):
        lines.append(f"asks for     {', '.join(packet.record_kinds)} of {packet.holder_tax_code}")
    elif isinstance(packet, RecordReply):
        follow = f", {packet.packets} packet(s) follow" if packet.packets else ""
        lines.append(f"outcome      {packet.outcome}{follow}")
        if packet.reason:
            lines.append(f"reason       {packet.reason}")
    elif isinstance(packet, TaxStatusReply):
        for result in packet.results:
            compliant = {True: "compliant", False: "NOT compliant", None: "compliance unknown"}
            lines.append(f"  {result.tax_code}  {result.status}  {compliant[result.compliant]}")
    else:
        records = getattr(packet, "records", None)
        if records is not None:
            lines.append(f"records      {len(records)}")
    return lines
