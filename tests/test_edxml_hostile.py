"""Regressions from an adversarial review of the codec: each input once broke it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.packets.diagnostics import WarningCode
from lgsp_adapter.packets.edxml_codec import parse_edxml, render_edxml
from lgsp_adapter.packets.edxml_model import EdocPacket, Organization, StatusPacket
from lgsp_adapter.packets.reader import read_packet
from tests.test_edxml_codec import FROM, TO, document, with_body

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"


def refused(raw: bytes) -> InvalidPacket:
    with pytest.raises(InvalidPacket) as info:
        parse_edxml(raw)
    return info.value


def round_trips(raw: bytes) -> EdocPacket | StatusPacket:
    packet = parse_edxml(raw).packet
    assert parse_edxml(render_edxml(packet)).packet == packet
    return packet


# --- denial of service ------------------------------------------------------------------------


def test_many_duplicate_content_ids_are_refused_quickly_with_a_bounded_message() -> None:
    refs = [f"cid:{i % 3000}" for i in range(6_000)]
    error = refused(with_body(refs, []))
    assert error.code is ErrorCode.EDXML_ATTACHMENT_MISMATCH
    assert len(error.message) < 500
    assert len(error.details["content_ids"]) == 10


def test_many_namespace_declarations_are_refused_before_parsing() -> None:
    declarations = "".join(f' xmlns:p{i}="urn:x{i}"' for i in range(2000))
    raw = document(FROM + TO).replace(b"<edXML xmlns=", f"<edXML{declarations} xmlns=".encode())
    assert refused(raw).code is ErrorCode.XML_TOO_MANY_NAMESPACES


def test_too_many_elements_are_refused() -> None:
    raw = document(FROM + TO + "<edXML:U/>" * 30_000)
    assert refused(raw).code is ErrorCode.XML_TOO_MANY_ELEMENTS


@pytest.mark.timeout(30)  # each attribute once cost a linear search: 40k took seconds
def test_many_attributes_give_one_warning() -> None:
    attributes = "".join(f' a{i}="v"' for i in range(50_000))
    raw = document(FROM + TO).replace(
        b"<edXML:MessageHeader>", f"<edXML:MessageHeader{attributes}>".encode()
    )
    (warning,) = parse_edxml(raw).warnings
    assert warning.code is WarningCode.IGNORED_ATTRIBUTE
    assert "and 49995 more" in warning.message


def test_warnings_are_capped_with_a_count_of_the_rest() -> None:
    parsed = parse_edxml(document(FROM + TO + "<edXML:Vendor/>" * 250))
    assert len(parsed.warnings) == 101
    assert parsed.warnings[-1].code is WarningCode.TOO_MANY_WARNINGS
    assert parsed.warnings[-1].message == "150 more warnings not listed"
    assert isinstance(parsed.packet, EdocPacket)
    assert len(parsed.packet.message.extra) == 250  # all kept, whatever was listed


# --- crashes ----------------------------------------------------------------------------------


def test_superscript_digit_in_priority_is_a_warning_not_a_crash() -> None:
    other = "<edXML:OtherInfo><edXML:Priority>²</edXML:Priority></edXML:OtherInfo>"
    parsed = parse_edxml(document(FROM + TO + other))
    assert [w.code for w in parsed.warnings] == [WarningCode.VALUE_OUT_OF_RANGE]


@pytest.mark.parametrize("text", ["nul\x00", "bell\x07", "\ufffe", "lone \ud800"])
def test_models_refuse_text_that_xml_cannot_carry(text: str) -> None:
    with pytest.raises(ValidationError, match="cannot appear in XML"):
        Organization(organ_id="000.00.00.H56", organ_name=text)


@pytest.mark.parametrize(
    "xml",
    [
        "<x/></edXML:From><edXML:Injected>1</edXML:Injected><edXML:From>",
        "<a/><b/>",
        "text",
        "<unclosed>",
    ],
)
def test_kept_xml_must_be_exactly_one_element(xml: str) -> None:
    with pytest.raises(ValidationError, match="element"):
        Organization(organ_id="000.00.00.H56", extra=[xml])


# --- the verbatim signature -------------------------------------------------------------------

DECOY = (
    '<edXML:Foo><Signature xmlns:p="urn:EVIL"><Transform><XPath>p:x</XPath></Transform>'
    "</Signature></edXML:Foo>"
)
REAL = '<Signature xmlns:p="urn:real"><Transform><XPath>p:x</XPath></Transform></Signature>'


def test_a_decoy_signature_is_never_kept_in_place_of_the_real_one() -> None:
    packet = parse_edxml(document(FROM + TO, DECOY + REAL)).packet
    assert isinstance(packet, EdocPacket)
    signature = packet.envelope.header.signature
    assert signature is not None
    assert "urn:real" in signature.xml
    assert "urn:EVIL" not in signature.xml


def test_a_decoy_signature_in_a_comment_is_skipped() -> None:
    raw = document(FROM + TO, "<!-- <Signature>fake</Signature> -->" + REAL)
    packet = parse_edxml(raw).packet
    assert isinstance(packet, EdocPacket)
    assert packet.envelope.header.signature is not None
    assert packet.envelope.header.signature.xml == REAL  # the real bytes, verbatim


def test_a_prefix_bound_outside_the_signature_stays_bound() -> None:
    # The XPath text uses q:, declared on the root: cut out as written it would lose q.
    signature = "<Signature><Transform><XPath>q:x</XPath></Transform></Signature>"
    raw = document(FROM + TO, signature).replace(b"<edXML xmlns=", b'<edXML xmlns:q="urn:q" xmlns=')
    packet = round_trips(raw)
    assert isinstance(packet, EdocPacket)
    assert packet.envelope.header.signature is not None
    assert 'xmlns:q="urn:q"' in packet.envelope.header.signature.xml


# --- round trips ------------------------------------------------------------------------------


def test_unknown_element_in_no_namespace_keeps_no_namespace() -> None:
    packet = round_trips(document(FROM + TO + '<Foo xmlns="">bar</Foo>'))
    assert isinstance(packet, EdocPacket)
    assert 'xmlns=""' in packet.message.extra[0]
    assert b'<Foo xmlns=""' in render_edxml(packet)


def test_carriage_return_in_base64_survives() -> None:
    round_trips(with_body(["cid:1"], [("cid:1", "QUJD&#13;\nQUJD")]))


def test_absent_manifest_version_stays_absent() -> None:
    packet = round_trips(with_body(["cid:1"], [("cid:1", "QUJD")]))
    assert isinstance(packet, EdocPacket)
    assert packet.envelope.body is not None
    assert packet.envelope.body.manifest is not None
    assert packet.envelope.body.manifest.version is None


def test_status_code_is_kept_as_written() -> None:
    status = (
        FROM + "<edXML:ResponseFor><edXML:OrganId>000.00.00.H56</edXML:OrganId>"
        "</edXML:ResponseFor><edXML:StatusCode> 3 </edXML:StatusCode>"
    )
    packet = round_trips(document(status))
    assert isinstance(packet, StatusPacket)
    assert packet.message.status_code == " 3 "
    assert packet.status is not None
    assert packet.status.value == "03"


# --- nothing dropped without a word, and words in the right place -------------------------------


def test_attributes_on_text_elements_and_stray_text_in_wrappers_are_reported() -> None:
    header = (
        FROM + TO + '<edXML:Subject lang="vi">x</edXML:Subject>'
        "<edXML:ToPlaces>junk<edXML:Place>A</edXML:Place></edXML:ToPlaces>"
    )
    codes = [w.code for w in parse_edxml(document(header)).warnings]
    assert codes == [WarningCode.IGNORED_ATTRIBUTE, WarningCode.STRAY_TEXT]


def test_status_code_in_no_namespace_still_makes_a_status_packet() -> None:
    status = (
        FROM + "<edXML:ResponseFor><edXML:OrganId>000.00.00.H56</edXML:OrganId>"
        '</edXML:ResponseFor><StatusCode xmlns="">03</StatusCode>'
    )
    assert isinstance(parse_edxml(document(status)).packet, StatusPacket)


def test_foreign_elements_do_not_shift_the_numbering_of_real_ones() -> None:
    header = (
        FROM + '<o:To xmlns:o="urn:other"><o:OrganId>x</o:OrganId></o:To>'
        "<edXML:To><edXML:OrganId>28.22.H17</edXML:OrganId></edXML:To>"
    )
    paths = [w.path for w in parse_edxml(document(header)).warnings]
    assert paths[-1].endswith("/MessageHeader/To[1]/OrganId")


def test_utf16_without_a_byte_order_mark_is_recognised_as_xml() -> None:
    raw = document(FROM + TO).decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    assert read_packet(raw.encode("utf-16-be")).kind == "edoc"
