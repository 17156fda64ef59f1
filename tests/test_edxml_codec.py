from __future__ import annotations

import base64
import hashlib
import re

import pytest

from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.packets.diagnostics import WarningCode
from lgsp_adapter.packets.edxml_codec import parse_edxml, render_edxml
from lgsp_adapter.packets.edxml_model import EdocPacket, StatusPacket
from lgsp_adapter.packets.edxml_values import BusinessDocType, StatusCode
from tests.conftest import EDXML_SAMPLES, EXAMPLES, data, sample
from tests.xml_facts import xml_facts

# --- the real samples ------------------------------------------------------------------------


@pytest.mark.parametrize("name", EDXML_SAMPLES)
def test_every_sample_round_trips_with_no_fact_lost(name: str) -> None:
    original = sample(name)
    parsed = parse_edxml(original)
    rendered = render_edxml(parsed.packet)
    assert xml_facts(rendered) == xml_facts(original)
    assert parse_edxml(rendered).packet == parsed.packet


@pytest.mark.parametrize(
    ("name", "business_type"),
    [
        ("edoc_new.edxml", BusinessDocType.NEW),
        ("edoc_revocation.edxml", BusinessDocType.REVOKE),
        ("edoc_update.edxml", BusinessDocType.UPDATE),
        ("edoc_replacement.edxml", BusinessDocType.REPLACE),
    ],
)
def test_document_samples_read_as_their_business_type(
    name: str, business_type: BusinessDocType
) -> None:
    packet = parse_edxml(sample(name)).packet
    assert isinstance(packet, EdocPacket)
    assert packet.business_doc_type is business_type
    assert packet.envelope.header.signature is not None


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("status_inbox_01.edxml", StatusCode.ARRIVED),
        ("status_rejection_02.edxml", StatusCode.REFUSED),
        ("status_acceptance_03.edxml", StatusCode.ACCEPTED),
        ("status_processing_05.edxml", StatusCode.PROCESSING),
        ("status_finish_06.edxml", StatusCode.DONE),
        ("status_cancellation_13.edxml", StatusCode.TAKE_BACK_REQUESTED),
    ],
)
def test_status_samples_read_as_their_code(name: str, status: StatusCode) -> None:
    packet = parse_edxml(sample(name)).packet
    assert isinstance(packet, StatusPacket)
    assert packet.status is status
    assert packet.message.response_for.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"


def test_new_document_sample_reports_its_quirks_where_they_are() -> None:
    parsed = parse_edxml(sample("edoc_new.edxml"))
    found = {(w.code, w.path, w.line) for w in parsed.warnings}
    header = "/edXML/edXMLEnvelope/edXMLHeader"
    assert found == {
        (WarningCode.AGENCY_CODE_SHAPE, f"{header}/MessageHeader/To[1]/OrganId", 18),
        (WarningCode.IMPOSSIBLE_DATE, f"{header}/TraceHeaderList/Bussiness/DocumentId", 72),
        (WarningCode.CONTENT_TYPE_MISMATCH, "/edXML/AttachmentEncoded/Attachment[1]", None),
    }
    packet = parsed.packet
    assert isinstance(packet, EdocPacket)
    assert packet.recipients[0].organ_id == "28.22.H17"  # kept as written, not "fixed"


def test_replacement_sample_keeps_its_replacement_list() -> None:
    packet = parse_edxml(sample("edoc_replacement.edxml")).packet
    assert isinstance(packet, EdocPacket)
    assert packet.business is not None
    replaced = packet.business.replacements
    assert [r.organ_ids for r in replaced] == [["000.00.00.H41", "000.00.00.H14"]] * 2


def test_update_sample_keeps_its_receiver_list() -> None:
    packet = parse_edxml(sample("edoc_update.edxml")).packet
    assert isinstance(packet, EdocPacket)
    assert packet.business is not None
    info = packet.business.document_info
    assert info is not None
    assert [(r.organ_id, r.receiver_type) for r in info.receivers] == [
        ("000.00.00.H41", "0"),
        ("000.00.00.H14", "1"),
    ]


def test_sample_attachment_digest_matches_the_decoded_file() -> None:
    original = sample("edoc_new.edxml")
    packet = parse_edxml(original).packet
    assert isinstance(packet, EdocPacket)
    (attachment,) = packet.attachments
    encoded = re.search(rb"ContentTransferEncoded[^>]*>([^<]*)<", original)
    assert encoded is not None
    decoded = base64.b64decode(b"".join(encoded.group(1).split()))
    assert attachment.size_bytes == len(decoded)
    assert attachment.sha256 == hashlib.sha256(decoded).hexdigest()
    assert attachment.read_bytes() == decoded
    assert decoded.startswith(b"PK")  # the zip behind the ".doc" name


def test_signature_block_is_kept_verbatim_to_the_byte() -> None:
    original = sample("edoc_new.edxml")
    packet = parse_edxml(original).packet
    assert isinstance(packet, EdocPacket)
    signature = packet.envelope.header.signature
    assert signature is not None
    block = re.search(rb"<Signature>.*</Signature>", original, re.DOTALL)
    assert block is not None
    assert signature.xml.encode() == block.group(0)  # line ends, spacing, "/>" forms and all
    assert block.group(0) in render_edxml(packet)


def test_signature_that_relies_on_an_outer_prefix_is_kept_with_its_declaration() -> None:
    # A signature whose prefix is declared on the root cannot be cut out as written; it is kept
    # as an equivalent element that declares what it uses.
    raw = document(
        FROM + TO, "<d:Signature><d:SignatureValue>eA==</d:SignatureValue></d:Signature>"
    )
    raw = raw.replace(
        b"<edXML xmlns=", b'<edXML xmlns:d="http://www.w3.org/2000/09/xmldsig#" xmlns='
    )
    packet = parse_edxml(raw).packet
    assert isinstance(packet, EdocPacket)
    signature = packet.envelope.header.signature
    assert signature is not None
    assert 'xmlns:d="http://www.w3.org/2000/09/xmldsig#"' in signature.xml
    assert parse_edxml(render_edxml(packet)).packet == packet


# --- our own files -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["edoc-new-thanh-hoa.edxml", "status-03-accepted.edxml"])
def test_our_examples_are_rendered_exactly_as_we_write_packets(name: str) -> None:
    original = (EXAMPLES / name).read_bytes()
    parsed = parse_edxml(original)
    assert parsed.warnings == []
    assert render_edxml(parsed.packet) == original


def test_quirky_packet_is_accepted_with_every_deviation_reported() -> None:
    parsed = parse_edxml(data("quirks.edxml"))
    codes = sorted(str(w.code) for w in parsed.warnings)
    assert codes == sorted(
        [
            "agency_code.shape",  # vxp.saas.03
            "date.format",  # DocumentId with dd/MM/yyyy
            "date.format",  # PromulgationDate dd/MM/yyyy
            "date.format",  # ISO timestamp
            "date.impossible",  # DueDate 2026/02/30
            "text.not_nfc",  # decomposed Vietnamese subject
            "edxml.value_out_of_range",  # Priority 7
            "edxml.unknown_element",  # VendorTrackingNo
            "edxml.unknown_element",  # v:Routing in a vendor namespace
            "edxml.spelling",  # Business
            "edxml.spelling",  # BusinessDocType
            "edxml.spelling",  # BusinessDocReason
            "edxml.ignored_attribute",  # generator="vendor-x"
            "edxml.unsafe_attachment_name",  # ../phu-hieu.csv
            "edxml.missing_recommended",  # update without BussinessDocumentInfo
        ]
    )


def test_quirky_packet_keeps_original_text_and_typed_readings() -> None:
    packet = parse_edxml(data("quirks.edxml")).packet
    assert isinstance(packet, EdocPacket)
    message = packet.message
    assert message.promulgation_info is not None
    date = message.promulgation_info.promulgation_date
    assert date is not None
    assert (date.text, date.iso) == ("20/11/2026", "2026-11-20")
    assert message.due_date is not None
    assert (message.due_date.text, message.due_date.value) == ("2026/02/30", None)
    assert message.subject == "Về việc tăng cường phối hợp thu thuế vận tải"  # NFC now
    assert packet.business_doc_type is BusinessDocType.UPDATE
    assert any("VendorTrackingNo" in x for x in message.extra)
    assert any("urn:example:vendor" in x for x in message.extra)


def test_quirky_packet_renders_standard_spelling_and_keeps_unknown_elements() -> None:
    packet = parse_edxml(data("quirks.edxml")).packet
    rendered = render_edxml(packet).decode()
    assert "<edXML:Bussiness>" in rendered
    assert "<edXML:BussinessDocType>2</edXML:BussinessDocType>" in rendered
    assert "SXD-2026-000088" in rendered
    # Kept in canonical XML, with every namespace it had in scope, so it means the same here.
    routing = re.search(r"<v:Routing [^>]*>", rendered)
    assert routing is not None
    assert 'xmlns:v="urn:example:vendor"' in routing.group(0)
    assert 'hint="fast"' in routing.group(0)
    assert "<v:Queue>vt</v:Queue></v:Routing>" in rendered
    assert "<ds:SignatureValue>c2lnbmF0dXJl</ds:SignatureValue>" in rendered
    assert parse_edxml(rendered.encode()).packet == packet


def test_base64_with_line_breaks_decodes_and_is_kept_as_written() -> None:
    packet = parse_edxml(data("quirks.edxml")).packet
    assert isinstance(packet, EdocPacket)
    (attachment,) = packet.attachments
    assert attachment.read_bytes() == b"so_hieu,bien_so,loai\nPH-36-2026-004512,36B12345,contract\n"
    assert "\n" in attachment.encoded


# --- what we refuse ----------------------------------------------------------------------------

PREFIX = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">'
    '<edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">'
    "<edXML:edXMLHeader><edXML:MessageHeader>"
)
FROM = "<edXML:From><edXML:OrganId>000.00.00.H56</edXML:OrganId></edXML:From>"
TO = "<edXML:To><edXML:OrganId>000.00.12.H56</edXML:OrganId></edXML:To>"


def document(header: str, rest: str = "", attachments: str = "") -> bytes:
    """A minimal document packet around the given parts."""
    return (
        f"{PREFIX}{header}</edXML:MessageHeader>{rest}</edXML:edXMLHeader>"
        f"</edXML:edXMLEnvelope>{attachments}</edXML>"
    ).encode()


def attachments(*items: tuple[str, str]) -> str:
    inner = "".join(
        f"<Attachment><ContentId>{cid}</ContentId><AttachmentName>a.txt</AttachmentName>"
        f"<ContentTransferEncoded>{b64}</ContentTransferEncoded></Attachment>"
        for cid, b64 in items
    )
    return f"<AttachmentEncoded>{inner}</AttachmentEncoded>"


def with_body(refs: list[str], items: list[tuple[str, str]]) -> bytes:
    ref_xml = "".join(
        f"<edXML:Reference><edXML:ContentId>{c}</edXML:ContentId></edXML:Reference>" for c in refs
    )
    return (
        f"{PREFIX}{FROM}{TO}</edXML:MessageHeader></edXML:edXMLHeader>"
        f"<edXML:edXMLBody><edXML:edXMLManifest>{ref_xml}</edXML:edXMLManifest></edXML:edXMLBody>"
        f"</edXML:edXMLEnvelope>{attachments(*items)}</edXML>"
    ).encode()


def refused(raw: bytes) -> InvalidPacket:
    with pytest.raises(InvalidPacket) as info:
        parse_edxml(raw)
    return info.value


def test_minimal_document_is_accepted() -> None:
    packet = parse_edxml(document(FROM + TO)).packet
    assert isinstance(packet, EdocPacket)
    assert packet.business_doc_type is BusinessDocType.NEW


def test_missing_sender_is_refused_with_its_path() -> None:
    error = refused(document(TO))
    assert error.code is ErrorCode.EDXML_MISSING_ELEMENT
    assert error.details["path"] == "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/From"


def test_missing_recipient_is_refused() -> None:
    error = refused(document(FROM))
    assert error.code is ErrorCode.EDXML_MISSING_ELEMENT
    assert error.details["path"].endswith("/MessageHeader/To")


def test_unknown_business_type_is_refused() -> None:
    business = (
        "<edXML:TraceHeaderList><edXML:Bussiness><edXML:BussinessDocType>9"
        "</edXML:BussinessDocType></edXML:Bussiness></edXML:TraceHeaderList>"
    )
    error = refused(document(FROM + TO, business))
    assert error.code is ErrorCode.EDXML_INVALID_VALUE
    assert "business_doc_type" in error.message


def test_manifest_entry_without_attachment_is_refused() -> None:
    error = refused(with_body(["cid:1", "cid:2"], [("cid:1", "QUJD")]))
    assert error.code is ErrorCode.EDXML_ATTACHMENT_MISMATCH
    assert error.details["missing_attachments"] == ["cid:2"]


def test_attachment_missing_from_manifest_is_refused() -> None:
    error = refused(with_body(["cid:1"], [("cid:1", "QUJD"), ("cid:9", "QUJD")]))
    assert error.code is ErrorCode.EDXML_ATTACHMENT_MISMATCH
    assert error.details["unlisted_attachments"] == ["cid:9"]


def test_duplicate_content_ids_are_refused() -> None:
    error = refused(with_body(["cid:1", "cid:1"], [("cid:1", "QUJD")]))
    assert error.code is ErrorCode.EDXML_ATTACHMENT_MISMATCH


@pytest.mark.parametrize("b64", ["QUJD*", "QUJDRA", "QU=JDRA="])
def test_undecodable_attachment_is_refused(b64: str) -> None:
    error = refused(with_body(["cid:1"], [("cid:1", b64)]))
    assert error.code is ErrorCode.EDXML_ATTACHMENT_ENCODING


@pytest.mark.parametrize(
    ("b64", "said"),
    [
        # Found by a black-box probe: a character beyond ASCII was edxml.invalid_value with
        # Python's raw message, and an error at character 40 was "near character 0".
        ("QUJD" * 10 + "QUẠD", "invalid base64 at character 42 (blanks not counted): 'Ạ' is not"),
        ("QUJD" * 10 + "QU=DQUJD", "invalid base64 at character 42 (blanks not counted): padding"),
        ("QUJD\n" * 10 + "QU*D", "invalid base64 at character 42 (blanks not counted): '*' is not"),
    ],
)
def test_an_undecodable_attachment_says_where(b64: str, said: str) -> None:
    error = refused(with_body(["cid:1"], [("cid:1", b64)]))
    assert error.code is ErrorCode.EDXML_ATTACHMENT_ENCODING
    assert said in error.message, error.message


def test_wrong_root_is_refused() -> None:
    error = refused(b"<html><body>hello</body></html>")
    assert error.code is ErrorCode.EDXML_WRONG_ROOT
    assert error.details == {"root": "html"}


def test_legacy_namespace_is_named_in_the_error() -> None:
    error = refused(data("legacy_namespace.edxml"))
    assert error.code is ErrorCode.EDXML_LEGACY_NAMESPACE
    assert "e-doc.vn" in error.message


def test_status_with_non_numeric_code_is_refused() -> None:
    status = (
        FROM + "<edXML:ResponseFor><edXML:OrganId>000.00.00.H56</edXML:OrganId>"
        "</edXML:ResponseFor><edXML:StatusCode>OK</edXML:StatusCode>"
    )
    error = refused(document(status))
    assert error.code is ErrorCode.EDXML_INVALID_VALUE


def test_status_with_a_code_nobody_uses_is_accepted_with_a_warning() -> None:
    status = (
        FROM + "<edXML:ResponseFor><edXML:OrganId>000.00.00.H56</edXML:OrganId>"
        "</edXML:ResponseFor><edXML:StatusCode>09</edXML:StatusCode>"
    )
    parsed = parse_edxml(document(status))
    assert isinstance(parsed.packet, StatusPacket)
    assert parsed.packet.status is None
    assert [w.code for w in parsed.warnings] == [WarningCode.UNUSED_STATUS_CODE]
