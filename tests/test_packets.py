from __future__ import annotations

import pytest

from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.packets import read_packet
from lgsp_adapter.safe_xml import XmlLimits
from tests.conftest import EXAMPLES


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("edoc-new-thanh-hoa.edxml", "edoc"),
        ("status-03-accepted.edxml", "status"),
        ("tax-transport-vehicle-badge.json", "tax-transport/vehicle-badge"),
    ],
)
def test_kind_is_recognised_from_the_content(name: str, kind: str) -> None:
    assert read_packet((EXAMPLES / name).read_bytes()).kind == kind


@pytest.mark.parametrize(
    "content_type", ["application/xml", "text/xml; charset=utf-8", "application/edxml+xml"]
)
def test_xml_content_types_choose_edxml(content_type: str) -> None:
    raw = (EXAMPLES / "status-03-accepted.edxml").read_bytes()
    assert read_packet(raw, content_type=content_type).kind == "status"


def test_content_type_decides_over_sniffing() -> None:
    raw = (EXAMPLES / "tax-transport-licence.json").read_bytes()
    with pytest.raises(InvalidPacket) as info:
        read_packet(raw, content_type="application/xml")
    assert info.value.code is ErrorCode.XML_MALFORMED


def test_unknown_content_type() -> None:
    with pytest.raises(InvalidPacket) as info:
        read_packet(b"<edXML/>", content_type="application/pdf")
    assert info.value.code is ErrorCode.PACKET_UNKNOWN_KIND


def test_content_that_is_neither_xml_nor_json() -> None:
    with pytest.raises(InvalidPacket) as info:
        read_packet(b"%PDF-1.7")
    assert info.value.code is ErrorCode.PACKET_UNKNOWN_KIND


def test_size_limit_applies_to_every_kind() -> None:
    raw = (EXAMPLES / "tax-transport-licence.json").read_bytes()
    with pytest.raises(InvalidPacket) as info:
        read_packet(raw, limits=XmlLimits(max_bytes=100))
    assert info.value.code is ErrorCode.PACKET_TOO_LARGE
