"""Generated packets — Vietnamese text in NFC and NFD, many recipients and attachments — survive
render and parse with nothing changed."""

from __future__ import annotations

import unicodedata
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from lgsp_adapter.packets.attachment import Attachment
from lgsp_adapter.packets.diagnostics import WarningCode
from lgsp_adapter.packets.edxml_codec import EdxmlPacket, parse_edxml, render_edxml
from lgsp_adapter.packets.edxml_model import (
    Body,
    Business,
    BusinessDocumentInfo,
    DocumentCode,
    DocumentEnvelope,
    DocumentHeader,
    DocumentMessageHeader,
    EdocPacket,
    Manifest,
    ManifestReference,
    Organization,
    OtherInfo,
    PromulgationInfo,
    Receiver,
    ReplacementInfo,
    ResponseFor,
    StaffInfo,
    StatusEnvelope,
    StatusHeader,
    StatusMessageHeader,
    StatusPacket,
    TraceHeader,
    TraceHeaderList,
)
from lgsp_adapter.packets.edxml_values import BusinessDocType, EdxmlDate, EdxmlTimestamp
from tests.xml_facts import xml_facts

VIETNAMESE = (
    "aăâbcdđeêghiklmnoôơpqrstuưvxyáàảãạắằẳẵặấầẩẫậéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ"
)
ALPHABET = VIETNAMESE + VIETNAMESE.upper() + " 0123456789,./-()&<>\"'\t\n"

# Any character XML 1.0 can carry, except CR, which XML turns into LF on reading (XML 1.0, 2.11).
xml_chars = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc", "Cn"), exclude_characters="\r"
) | st.sampled_from("\t\n")
text = st.text(st.sampled_from(ALPHABET), max_size=60) | st.text(xml_chars, max_size=30)
optional_text = st.none() | text

agency_code = st.builds(
    lambda v, z, y, letter, n: f"{v:03d}.{z:02d}.{y:02d}.{letter}{n:02d}",
    st.integers(0, 999),
    st.integers(0, 99),
    st.integers(0, 99),
    st.sampled_from("GHKA"),
    st.integers(1, 99),
)
# Real traffic also carries codes of other shapes: they must survive too.
organ_id = agency_code | st.sampled_from(["28.22.H17", "vxp.saas.03"])
edxml_date = st.dates(date(1990, 1, 1), date(2100, 12, 31)).map(lambda d: d.strftime("%Y/%m/%d"))
document_id = st.builds(
    lambda o, d, n: f"{o},{d},{n}/UBND-VP", agency_code, edxml_date, st.integers(1, 9999)
)

organization = st.builds(
    Organization,
    organ_id=organ_id,
    organization_in_charge=optional_text,
    organ_name=optional_text,
    organ_add=optional_text,
    email=st.none() | st.emails(),
    telephone=st.none() | st.from_regex(r"\A[0-9 ()+-]{6,15}\Z"),
)


@st.composite
def attachments(draw: st.DrawFn) -> list[Attachment]:
    count = draw(st.integers(0, 4))
    return [
        Attachment.from_bytes(
            draw(st.binary(max_size=3000)),
            content_id=f"cid:{index}",
            name=draw(
                st.text(st.sampled_from(ALPHABET.replace("\n", "")), min_size=1, max_size=30)
            ),
            content_type=draw(
                st.sampled_from(["application/pdf", "application/zip", "text/plain"])
            ),
            description=draw(optional_text),
        )
        for index in range(count)
    ]


@st.composite
def business(draw: st.DrawFn) -> Business:
    kind = draw(st.sampled_from(BusinessDocType))
    return Business(
        document_id=draw(st.none() | document_id),
        business_doc_type=kind,
        business_doc_reason=draw(optional_text),
        paper=draw(st.sampled_from([None, "0", "1"])),
        document_info=(
            BusinessDocumentInfo(
                document_info="1",
                document_receiver="1",
                receivers=draw(
                    st.lists(
                        st.builds(
                            Receiver, organ_id=organ_id, receiver_type=st.sampled_from(["0", "1"])
                        ),
                        max_size=3,
                    )
                ),
            )
            if kind is BusinessDocType.UPDATE
            else None
        ),
        replacements=(
            draw(
                st.lists(
                    st.builds(
                        ReplacementInfo,
                        document_id=document_id,
                        organ_ids=st.lists(organ_id, max_size=3),
                    ),
                    min_size=1,
                    max_size=2,
                )
            )
            if kind is BusinessDocType.REPLACE
            else []
        ),
        staff_info=draw(
            st.none() | st.builds(StaffInfo, department=optional_text, staff=optional_text)
        ),
    )


@st.composite
def documents(draw: st.DrawFn) -> EdocPacket:
    files = draw(attachments())
    references = [
        ManifestReference(
            content_id=a.content_id,
            content_type=a.content_type,
            description=a.description,
            attachment_name=a.attachment_name,
        )
        for a in files
    ]
    message = DocumentMessageHeader(
        sender=draw(organization),
        recipients=draw(st.lists(organization, min_size=1, max_size=6)),
        document_id=draw(st.none() | document_id),
        code=draw(
            st.none()
            | st.builds(DocumentCode, code_number=optional_text, code_notation=optional_text)
        ),
        promulgation_info=draw(
            st.none()
            | st.builds(
                PromulgationInfo, place=optional_text, promulgation_date=st.none() | edxml_date
            )
        ),
        subject=draw(optional_text),
        content=draw(optional_text),
        due_date=draw(st.none() | edxml_date.map(lambda text: EdxmlDate(text=text))),
        other_info=draw(
            st.none()
            | st.builds(
                OtherInfo,
                priority=st.sampled_from(["0", "1", "2", "3"]),
                appendixes=st.lists(text, max_size=3),
            )
        ),
        response_for=draw(
            st.lists(
                st.builds(
                    ResponseFor,
                    organ_id=organ_id,
                    code=optional_text,
                    document_id=st.none() | document_id,
                ),
                max_size=2,
            )
        ),
        to_places=draw(st.lists(text, max_size=3)),
    )
    trace = TraceHeaderList(
        trace_headers=draw(
            st.lists(
                st.builds(
                    TraceHeader,
                    organ_id=organ_id,
                    timestamp=st.none() | edxml_date.map(lambda d: d + " 08:30:00"),
                ),
                max_size=3,
            )
        ),
        business=draw(st.none() | business()),
    )
    return EdocPacket(
        envelope=DocumentEnvelope(
            header=DocumentHeader(message_header=message, trace_header_list=trace),
            body=Body(manifest=Manifest(references=references)) if files else None,
        ),
        attachments=files,
    )


statuses = st.builds(
    lambda sender, about, code, description: StatusPacket(
        envelope=StatusEnvelope(
            header=StatusHeader(
                message_header=StatusMessageHeader(
                    sender=sender,
                    response_for=about,
                    status_code=code,
                    description=description,
                    timestamp=EdxmlTimestamp(text="2026/11/20 10:02:41"),
                )
            )
        )
    ),
    organization,
    st.builds(
        ResponseFor, organ_id=organ_id, code=optional_text, document_id=st.none() | document_id
    ),
    st.sampled_from(["01", "02", "03", "04", "05", "06", "13", "15", "16"]),
    optional_text,
)


@given(documents() | statuses)
def test_render_then_parse_gives_the_same_packet(packet: EdxmlPacket) -> None:
    rendered = render_edxml(packet)
    assert parse_edxml(rendered).packet == packet


@given(documents() | statuses)
def test_decomposed_vietnamese_reads_as_the_composed_packet(packet: EdxmlPacket) -> None:
    rendered = render_edxml(packet)
    decomposed = unicodedata.normalize("NFD", rendered.decode()).encode()
    parsed = parse_edxml(decomposed)
    assert parsed.packet == packet
    assert xml_facts(decomposed) == xml_facts(rendered)
    not_nfc = [w for w in parsed.warnings if w.code is WarningCode.TEXT_NOT_NFC]
    assert bool(not_nfc) == (decomposed != rendered)


@given(documents())
def test_attachment_bytes_and_digests_survive(packet: EdocPacket) -> None:
    parsed = parse_edxml(render_edxml(packet)).packet
    assert isinstance(parsed, EdocPacket)
    for before, after in zip(packet.attachments, parsed.attachments, strict=True):
        assert after.read_bytes() == before.read_bytes()
        assert (after.size_bytes, after.sha256) == (before.size_bytes, before.sha256)
