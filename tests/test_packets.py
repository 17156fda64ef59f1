from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.packets import reader as packets
from lgsp_adapter.packets.attachment import Attachment
from lgsp_adapter.packets.edxml_codec import render_edxml
from lgsp_adapter.packets.edxml_model import EdocPacket
from lgsp_adapter.packets.reader import (
    OFF_LOOP_BYTES,
    ReadPacket,
    read_packet,
    read_packet_off_loop,
)
from lgsp_adapter.packets.safe_xml import XmlLimits
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


@pytest.mark.asyncio
async def test_a_large_packet_is_read_off_the_event_loop_and_a_small_one_on_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 5 MB takes ~20 ms to parse and check: the loop must go on serving others meanwhile;
    # a small packet is not worth the hop.
    example_bytes = (EXAMPLES / "edoc-new-thanh-hoa.edxml").read_bytes()
    example = read_packet(example_bytes).packet
    assert isinstance(example, EdocPacket)
    first = example.attachments[0]
    large = Attachment.from_bytes(
        os.urandom(3 * OFF_LOOP_BYTES), content_id=first.content_id, name="large.pdf"
    )
    data = render_edxml(
        example.model_copy(update={"attachments": [large, *example.attachments[1:]]})
    )
    read_in: list[threading.Thread] = []

    def reading(*args: Any, **kwargs: Any) -> ReadPacket:  # the real reader, noting where
        read_in.append(threading.current_thread())
        return read_packet(*args, **kwargs)

    monkeypatch.setattr(packets, "read_packet", reading)
    read = await read_packet_off_loop(data, content_type="application/xml")
    await read_packet_off_loop(example_bytes, content_type="application/xml")
    assert read_in[0] is not threading.main_thread()
    assert read_in[1] is threading.main_thread()
    assert read == read_packet(data, content_type="application/xml")
