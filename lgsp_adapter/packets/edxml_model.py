"""Typed models of the two edXML packets of QCVN 102:2016: the document and the status receipt.

Each model mirrors one element; ``Tag`` metadata names it (see ``xml_binding``), fields come in
the order the standard writes them, and unknown child elements are kept in ``extra``. Free text
is NFC; codes, dates and ids keep the text the sender wrote (see ``edxml_values``). The shapes are
documented, element by element, in ``docs/edxml.md``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from lgsp_adapter.packets.attachment import Attachment
from lgsp_adapter.packets.edxml_values import (
    STATUS_MEANINGS,
    BusinessDocType,
    EdxmlDate,
    EdxmlTimestamp,
    StatusCode,
    StatusCodeText,
    Text,
    Token,
    check_agency_code,
    check_date,
    check_document_id,
    check_range,
    check_timestamp,
    status_code_of,
)
from lgsp_adapter.packets.xml_binding import DSIG_NS, Attr, Tag, Verbatim, XmlModel

ORGAN_ID = Tag("OrganId", check=check_agency_code)
DOCUMENT_ID = Tag("DocumentId", check=check_document_id)


class Organization(XmlModel):
    """``From`` or ``To``: an agency and how to reach it."""

    organ_id: Annotated[Token, ORGAN_ID]
    organization_in_charge: Annotated[Text | None, Tag("OrganizationInCharge")] = None
    organ_name: Annotated[Text | None, Tag("OrganName")] = None
    organ_add: Annotated[Text | None, Tag("OrganAdd")] = None
    email: Annotated[Token | None, Tag("Email")] = None
    telephone: Annotated[Token | None, Tag("Telephone")] = None
    fax: Annotated[Token | None, Tag("Fax")] = None
    website: Annotated[Token | None, Tag("Website")] = None


class DocumentCode(XmlModel):
    """``Code``: the document's number and notation ("Số / Ký hiệu"), e.g. 7816 / VPCP-TTĐT."""

    code_number: Annotated[Text | None, Tag("CodeNumber")] = None
    code_notation: Annotated[Text | None, Tag("CodeNotation")] = None

    def __str__(self) -> str:
        return "/".join(part for part in (self.code_number, self.code_notation) if part)


class PromulgationInfo(XmlModel):
    """Where and when the document was issued."""

    place: Annotated[Text | None, Tag("Place")] = None
    promulgation_date: Annotated[EdxmlDate | None, Tag("PromulgationDate", check=check_date)] = None


class DocumentType(XmlModel):
    """The kind of document, e.g. 1 / 0 / "Công văn"."""

    type: Annotated[Token | None, Tag("Type")] = None
    type_detail: Annotated[Token | None, Tag("TypeDetail")] = None
    type_name: Annotated[Text | None, Tag("TypeName")] = None


class SignerInfo(XmlModel):
    """Who signed the document, in what capacity."""

    competence: Annotated[Text | None, Tag("Competence")] = None
    position: Annotated[Text | None, Tag("Position")] = None
    full_name: Annotated[Text | None, Tag("FullName")] = None


class OtherInfo(XmlModel):
    """Handling details: priority (0–3), circulation, copies, pages, appendixes."""

    priority: Annotated[Token | None, Tag("Priority", check=check_range(0, 3))] = None
    sphere_of_promulgation: Annotated[Text | None, Tag("SphereOfPromulgation")] = None
    typer_notation: Annotated[Text | None, Tag("TyperNotation")] = None
    promulgation_amount: Annotated[Token | None, Tag("PromulgationAmount")] = None
    page_amount: Annotated[Token | None, Tag("PageAmount")] = None
    direction: Annotated[Token | None, Tag("Direction")] = None
    appendixes: Annotated[list[Text], Tag("Appendixes", item="Appendix")] = Field(
        default_factory=list
    )


class ResponseFor(XmlModel):
    """The earlier document a packet answers: a reply document or a status receipt."""

    organ_id: Annotated[Token, ORGAN_ID]
    code: Annotated[Text | None, Tag("Code")] = None
    promulgation_date: Annotated[EdxmlDate | None, Tag("PromulgationDate", check=check_date)] = None
    document_id: Annotated[Token | None, DOCUMENT_ID] = None


class DocumentMessageHeader(XmlModel):
    """``MessageHeader`` of a document packet: who sends what to whom."""

    sender: Annotated[Organization, Tag("From")]
    recipients: Annotated[list[Organization], Tag("To"), Field(min_length=1)]
    document_id: Annotated[Token | None, DOCUMENT_ID] = None
    code: Annotated[DocumentCode | None, Tag("Code")] = None
    promulgation_info: Annotated[PromulgationInfo | None, Tag("PromulgationInfo")] = None
    document_type: Annotated[DocumentType | None, Tag("DocumentType")] = None
    subject: Annotated[Text | None, Tag("Subject")] = None
    content: Annotated[Text | None, Tag("Content")] = None
    signer_info: Annotated[SignerInfo | None, Tag("SignerInfo")] = None
    due_date: Annotated[EdxmlDate | None, Tag("DueDate", check=check_date)] = None
    other_info: Annotated[OtherInfo | None, Tag("OtherInfo")] = None
    response_for: Annotated[list[ResponseFor], Tag("ResponseFor")] = Field(default_factory=list)
    steering_type: Annotated[Token | None, Tag("SteeringType")] = None
    to_places: Annotated[list[Text], Tag("ToPlaces", item="Place")] = Field(default_factory=list)


class TraceHeader(XmlModel):
    """One hop of the packet's journey: which agency handled it, when."""

    organ_id: Annotated[Token, ORGAN_ID]
    timestamp: Annotated[EdxmlTimestamp | None, Tag("Timestamp", check=check_timestamp)] = None


class StaffInfo(XmlModel):
    """The clerk who handled the packet."""

    department: Annotated[Text | None, Tag("Department")] = None
    staff: Annotated[Text | None, Tag("Staff")] = None
    email: Annotated[Token | None, Tag("Email")] = None
    mobile: Annotated[Token | None, Tag("Mobile")] = None


class Receiver(XmlModel):
    """A recipient named by an update (``ReceiverList``)."""

    organ_id: Annotated[Token, ORGAN_ID]
    receiver_type: Annotated[Token | None, Tag("ReceiverType")] = None


class BusinessDocumentInfo(XmlModel):
    """What an update changes: the document information, its receivers, or both."""

    document_info: Annotated[Token | None, Tag("DocumentInfo")] = None
    document_receiver: Annotated[Token | None, Tag("DocumentReceiver")] = None
    receivers: Annotated[list[Receiver], Tag("ReceiverList", item="Receiver")] = Field(
        default_factory=list
    )


class ReplacementInfo(XmlModel):
    """A document that a replacement supersedes, and the agencies that had it."""

    document_id: Annotated[Token, DOCUMENT_ID]
    organ_ids: Annotated[
        list[Token], Tag("OrganIdList", item="OrganId", check=check_agency_code)
    ] = Field(default_factory=list)


class Business(XmlModel):
    """``Bussiness`` (sic, the standard's spelling): what the packet does to the document."""

    document_id: Annotated[Token | None, DOCUMENT_ID] = None
    business_doc_type: Annotated[
        BusinessDocType, Tag("BussinessDocType", aliases=("BusinessDocType",))
    ]
    business_doc_reason: Annotated[
        Text | None, Tag("BussinessDocReason", aliases=("BusinessDocReason",))
    ] = None
    paper: Annotated[Token | None, Tag("Paper")] = None
    document_info: Annotated[
        BusinessDocumentInfo | None,
        Tag("BussinessDocumentInfo", aliases=("BusinessDocumentInfo",)),
    ] = None
    replacements: Annotated[
        list[ReplacementInfo], Tag("ReplacementInfoList", item="ReplacementInfo")
    ] = Field(default_factory=list)
    staff_info: Annotated[StaffInfo | None, Tag("StaffInfo")] = None


class TraceHeaderList(XmlModel):
    """The hops so far and the business action."""

    trace_headers: Annotated[list[TraceHeader], Tag("TraceHeader")] = Field(default_factory=list)
    business: Annotated[Business | None, Tag("Bussiness", aliases=("Business",))] = None


SIGNATURE = Tag("Signature", namespaces=(DSIG_NS,))


class DocumentHeader(XmlModel):
    """``edXMLHeader`` of a document packet; the XML-DSig signature is kept verbatim."""

    message_header: Annotated[DocumentMessageHeader, Tag("MessageHeader")]
    trace_header_list: Annotated[TraceHeaderList | None, Tag("TraceHeaderList")] = None
    signature: Annotated[Verbatim | None, SIGNATURE] = None


class ManifestReference(XmlModel):
    """One entry of the manifest, matched to an attachment by ``content_id``."""

    content_id: Annotated[Token, Tag("ContentId")]
    content_type: Annotated[Token | None, Tag("ContentType")] = None
    description: Annotated[Text | None, Tag("Description")] = None
    attachment_name: Annotated[Text | None, Tag("AttachmentName")] = None


class Manifest(XmlModel):
    """``edXMLManifest``: the list of attachments the document declares."""

    version: Annotated[Token | None, Attr("version")] = "1.0"
    references: Annotated[list[ManifestReference], Tag("Reference")] = Field(default_factory=list)


class Body(XmlModel):
    """``edXMLBody``."""

    manifest: Annotated[Manifest | None, Tag("edXMLManifest")] = None


class DocumentEnvelope(XmlModel):
    """``edXMLEnvelope`` of a document packet."""

    header: Annotated[DocumentHeader, Tag("edXMLHeader")]
    body: Annotated[Body | None, Tag("edXMLBody")] = None


class EdocPacket(XmlModel):
    """An edXML document packet (kind ``edoc``): new, revoke, update or replace."""

    envelope: Annotated[DocumentEnvelope, Tag("edXMLEnvelope", declare_prefix=True)]
    attachments: Annotated[list[Attachment], Tag("AttachmentEncoded", item="Attachment")] = Field(
        default_factory=list
    )

    kind: Literal["edoc"] = "edoc"

    @property
    def message(self) -> DocumentMessageHeader:
        """The message header, where most of what people ask about lives."""
        return self.envelope.header.message_header

    @property
    def sender(self) -> Organization:
        """``From``."""
        return self.message.sender

    @property
    def recipients(self) -> list[Organization]:
        """``To``, one or more."""
        return self.message.recipients

    @property
    def business(self) -> Business | None:
        """The business action, when the packet carries one."""
        tl = self.envelope.header.trace_header_list
        return tl.business if tl else None

    @property
    def business_doc_type(self) -> BusinessDocType:
        """New, revoke, update or replace; a packet without ``Bussiness`` is a new document."""
        business = self.business
        return business.business_doc_type if business else BusinessDocType.NEW

    @property
    def references(self) -> list[ManifestReference]:
        """The manifest entries (empty without a body)."""
        body = self.envelope.body
        return body.manifest.references if body and body.manifest else []


class StatusMessageHeader(XmlModel):
    """``MessageHeader`` of a status packet: who reports what about which document."""

    sender: Annotated[Organization, Tag("From")]
    response_for: Annotated[ResponseFor, Tag("ResponseFor")]
    staff_info: Annotated[StaffInfo | None, Tag("StaffInfo")] = None
    status_code: Annotated[StatusCodeText, Tag("StatusCode")]
    description: Annotated[Text | None, Tag("Description")] = None
    timestamp: Annotated[EdxmlTimestamp | None, Tag("Timestamp", check=check_timestamp)] = None


class StatusHeader(XmlModel):
    """``edXMLHeader`` of a status packet."""

    message_header: Annotated[StatusMessageHeader, Tag("MessageHeader")]
    trace_header_list: Annotated[TraceHeaderList | None, Tag("TraceHeaderList")] = None
    signature: Annotated[Verbatim | None, SIGNATURE] = None


class StatusEnvelope(XmlModel):
    """``edXMLEnvelope`` of a status packet (it has no body)."""

    header: Annotated[StatusHeader, Tag("edXMLHeader")]


class StatusPacket(XmlModel):
    """An edXML status packet (kind ``status``): a business receipt about a document."""

    envelope: Annotated[StatusEnvelope, Tag("edXMLEnvelope", declare_prefix=True)]

    kind: Literal["status"] = "status"

    @property
    def message(self) -> StatusMessageHeader:
        """The message header, which holds everything a receipt says."""
        return self.envelope.header.message_header

    @property
    def sender(self) -> Organization:
        """``From``: the agency reporting the status."""
        return self.message.sender

    @property
    def status(self) -> StatusCode | None:
        """The status as a known code, or None for a code no implementation uses."""
        try:
            return StatusCode(status_code_of(self.message.status_code))
        except ValueError:
            return None

    @property
    def meaning(self) -> str:
        """The status in words."""
        status = self.status
        return STATUS_MEANINGS[status] if status else "not a status code in use"
