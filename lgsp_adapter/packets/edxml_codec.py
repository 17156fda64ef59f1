"""Reads and writes edXML packets: bytes in, typed model and warnings out, and back.

``parse_edxml`` refuses what is unsafe or cannot be understood (``InvalidPacket`` with a stable
code) and accepts the quirks of real traffic, each reported as a ``Diagnostic`` with its
location. ``render_edxml`` writes what the standard expects: the element order, namespace
prefixes and date forms of QCVN 102:2016's samples. ``render_edxml(parse_edxml(x).packet)`` is
semantically equal to ``x``; delivery, however, always forwards the bytes as received, since
re-rendering would break an XML-DSig signature over the document.
"""

from __future__ import annotations

import io
import mimetypes
from collections import Counter
from dataclasses import dataclass
from typing import Any

from lxml import etree
from pydantic import ValidationError

from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.packets import safe_xml
from lgsp_adapter.packets.attachment import AttachmentEncodingError
from lgsp_adapter.packets.diagnostics import Diagnostic, Diagnostics, WarningCode
from lgsp_adapter.packets.edxml_model import EdocPacket, StatusPacket
from lgsp_adapter.packets.edxml_values import BusinessDocType, StatusCode, status_code_of
from lgsp_adapter.packets.xml_binding import NS, local_name, qname
from lgsp_adapter.packets.xml_reading import MissingElement, Reader
from lgsp_adapter.packets.xml_writing import Slots, fill

LEGACY_NS = "http://www.e-doc.vn/Schema/"

EdxmlPacket = EdocPacket | StatusPacket

# Only Python's built-in table: the system's mime.types differs between machines.
_MIME = mimetypes.MimeTypes(filenames=())


@dataclass(frozen=True, slots=True)
class ParsedEdxml:
    """A packet read from bytes, with what deviated from the standard."""

    packet: EdxmlPacket
    warnings: list[Diagnostic]


def parse_edxml(data: bytes, limits: safe_xml.XmlLimits | None = None) -> ParsedEdxml:
    """Read an edXML document or status packet; raises ``InvalidPacket`` on what we refuse."""
    root = safe_xml.parse(data, limits or safe_xml.XmlLimits())
    _check_root(root)
    cls = StatusPacket if _is_status(root) else EdocPacket
    diagnostics = Diagnostics()
    try:
        encoding = (root.getroottree().docinfo.encoding or "UTF-8").upper()
        source = data if encoding in ("UTF-8", "US-ASCII", "ASCII") else None
        raw = Reader(diagnostics, source).read(cls, root, "/edXML")
    except MissingElement as exc:
        raise InvalidPacket(
            ErrorCode.EDXML_MISSING_ELEMENT,
            f"required element {exc.path} is missing",
            details={"path": exc.path, "line": exc.line},
        ) from exc
    del root  # the tree's copy of the attachments is no longer needed
    packet = _validate(cls, raw)
    if isinstance(packet, EdocPacket):
        _check_document(packet, diagnostics)
    else:
        _check_status(packet, diagnostics)
    return ParsedEdxml(packet=packet, warnings=diagnostics.items)


def _check_root(root: etree._Element) -> None:
    namespace, name = local_name(root)
    if namespace == LEGACY_NS:
        raise InvalidPacket(
            ErrorCode.EDXML_LEGACY_NAMESPACE,
            f"the packet uses the pre-QCVN namespace {LEGACY_NS}; QCVN 102:2016 packets use {NS}",
            details={"namespace": namespace},
        )
    if namespace != NS or name != "edXML":
        found = f"{{{namespace}}}{name}" if namespace else name
        raise InvalidPacket(
            ErrorCode.EDXML_WRONG_ROOT,
            f"the root element is <{found}>; an edXML packet has <edXML> in {NS}",
            details={"root": found},
        )


# As lenient as the reader: a StatusCode in no namespace still makes a status packet.
_HAS_STATUS_CODE = etree.XPath(
    "boolean(/*/*[local-name()='edXMLEnvelope']/*[local-name()='edXMLHeader']"
    "/*[local-name()='MessageHeader']/*[local-name()='StatusCode'])"
)


def _is_status(root: etree._Element) -> bool:
    return bool(_HAS_STATUS_CODE(root))


def _validate(cls: type[EdxmlPacket], raw: dict[str, Any]) -> EdxmlPacket:
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = "/".join(str(part) for part in error["loc"])
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, AttachmentEncodingError):
            raise InvalidPacket(
                ErrorCode.EDXML_ATTACHMENT_ENCODING,
                f"attachment content cannot be decoded: {cause}",
                details={"field": where},
            ) from exc
        raise InvalidPacket(
            ErrorCode.EDXML_INVALID_VALUE,
            f"{where}: {error['msg']}",
            details={"field": where, "input": str(error.get("input"))[:200]},
        ) from exc


_LISTED = 10  # ids named in an error: enough to act on, bounded for hostile packets


def _some(ids: list[str]) -> str:
    more = f" and {len(ids) - _LISTED} more" if len(ids) > _LISTED else ""
    return ", ".join(ids[:_LISTED]) + more


def _check_document(packet: EdocPacket, diagnostics: Diagnostics) -> None:
    for what, ids in (
        ("attachment", [a.content_id for a in packet.attachments]),
        ("manifest reference", [r.content_id for r in packet.references]),
    ):
        duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
        if duplicates:
            raise InvalidPacket(
                ErrorCode.EDXML_ATTACHMENT_MISMATCH,
                f"more than one {what} has ContentId {_some(duplicates)}",
                details={"content_ids": duplicates[:_LISTED]},
            )
    attachment_ids = {a.content_id for a in packet.attachments}
    reference_ids = {r.content_id for r in packet.references}
    unlisted = sorted(attachment_ids - reference_ids)
    missing = sorted(reference_ids - attachment_ids)
    if unlisted or missing:
        parts = [f"no attachment for {_some(missing)}"] if missing else []
        parts += [f"not in the manifest: {_some(unlisted)}"] if unlisted else []
        raise InvalidPacket(
            ErrorCode.EDXML_ATTACHMENT_MISMATCH,
            "manifest and attachments disagree: " + "; ".join(parts),
            details={
                "missing_attachments": missing[:_LISTED],
                "unlisted_attachments": unlisted[:_LISTED],
            },
        )
    for index, attachment in enumerate(packet.attachments, start=1):
        path = f"/edXML/AttachmentEncoded/Attachment[{index}]"
        name = attachment.attachment_name or ""
        guessed, _ = _MIME.guess_type(name, strict=False)
        declared = (attachment.content_type or "").split(";")[0].strip().lower()
        if guessed and declared and guessed != declared:
            diagnostics.warn(
                WarningCode.CONTENT_TYPE_MISMATCH,
                f"ContentType {declared!r} does not match the name {name!r} ({guessed})",
                path,
            )
        if any(sep in name for sep in ("/", "\\", "\x00")) or name in (".", ".."):
            diagnostics.warn(
                WarningCode.UNSAFE_ATTACHMENT_NAME,
                f"attachment name {name!r} contains a path; only its last part may be used",
                path,
            )
    _check_business(packet, diagnostics)


def _check_business(packet: EdocPacket, diagnostics: Diagnostics) -> None:
    business = packet.business
    path = "/edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness"
    if business is None:
        return
    if business.business_doc_type is BusinessDocType.UPDATE and business.document_info is None:
        diagnostics.warn(
            WarningCode.MISSING_RECOMMENDED,
            "an update (BussinessDocType 2) should say what it updates (BussinessDocumentInfo)",
            path,
        )
    if business.business_doc_type is BusinessDocType.REPLACE and not business.replacements:
        diagnostics.warn(
            WarningCode.MISSING_RECOMMENDED,
            "a replacement (BussinessDocType 3) should name what it replaces (ReplacementInfoList)",
            path,
        )


def _check_status(packet: StatusPacket, diagnostics: Diagnostics) -> None:
    code = status_code_of(packet.message.status_code)
    if code not in StatusCode.__members__.values():
        diagnostics.warn(
            WarningCode.UNUSED_STATUS_CODE,
            f"status code {code} is not one that implementations use "
            f"({', '.join(s.value for s in StatusCode)})",
            "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/StatusCode",
        )


def render_edxml(packet: EdxmlPacket) -> bytes:
    """Write a packet as QCVN 102:2016 edXML (UTF-8, the standard's prefixes and order)."""
    slots = Slots()
    root = etree.Element(qname("edXML"), nsmap={None: NS})
    fill(packet, root, slots)
    etree.indent(root, space="  ")
    head = etree.tostring(root, xml_declaration=False, encoding="UTF-8")
    out = io.BytesIO()
    out.write(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    slots.splice(head, out)
    return out.getvalue()
