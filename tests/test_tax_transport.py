from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.tax_transport import (
    KINDS,
    BadgePacket,
    TaxStatusReply,
    json_schema,
    parse_tax_transport,
    render_tax_transport,
)
from tests.conftest import EXAMPLES, PROJECT

EXAMPLE_FILES = sorted(EXAMPLES.glob("tax-transport-*.json"))


def example(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"tax-transport-{kind}.json").read_text())
    return data


def refused(packet: dict[str, Any] | bytes) -> InvalidPacket:
    raw = packet if isinstance(packet, bytes) else json.dumps(packet).encode()
    with pytest.raises(InvalidPacket) as info:
        parse_tax_transport(raw)
    return info.value


def test_there_is_an_example_of_every_kind() -> None:
    kinds = {json.loads(path.read_text())["kind"] for path in EXAMPLE_FILES}
    assert kinds == set(KINDS)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_examples_round_trip_through_canonical_json(path: Path) -> None:
    packet = parse_tax_transport(path.read_bytes())
    assert parse_tax_transport(render_tax_transport(packet)) == packet


def test_badge_example_is_normalised() -> None:
    packet = parse_tax_transport(json.dumps(example("vehicle-badge")).encode())
    assert isinstance(packet, BadgePacket)
    assert [r.plate for r in packet.records] == ["36B12345", "36C45678"]
    assert str(packet.sender) == "000.00.12.H56"


def test_reply_correlates_with_its_query() -> None:
    query = example("tax-status-query")
    reply = parse_tax_transport(json.dumps(example("tax-status-reply")).encode())
    assert isinstance(reply, TaxStatusReply)
    assert reply.in_reply_to == query["reference"]


def test_published_schema_is_the_one_the_code_enforces() -> None:
    published = json.loads((PROJECT / "docs/schema/tax-transport-v1.schema.json").read_text())
    assert published == json.loads(json.dumps(json_schema())), "run `make schema`"


def test_bad_tax_code_names_the_record_and_field() -> None:
    packet = example("vehicle-badge")
    packet["records"][1]["holder_tax_code"] = "0100109107"
    error = refused(packet)
    assert error.code is ErrorCode.TAX_TRANSPORT_INVALID
    assert error.message.startswith("records.1.holder_tax_code:")
    assert "checksum" in error.message


def test_bad_plate_is_refused() -> None:
    packet = example("vehicle-badge")
    packet["records"][0]["plate"] = "not a plate"
    assert refused(packet).details[0]["field"] == "records.0.plate"


def test_dates_out_of_order_are_refused() -> None:
    packet = example("licence")
    packet["records"][0]["expires_on"] = "2020-01-01"
    assert "expires_on is before issued_on" in refused(packet).message


def test_unknown_field_is_refused_not_ignored() -> None:
    packet = example("licence")
    packet["records"][0]["holder_tax_cod"] = "0100109106"
    assert refused(packet).code is ErrorCode.TAX_TRANSPORT_INVALID


def test_record_without_legal_basis_is_refused() -> None:
    packet = example("tracking")
    del packet["records"][0]["legal_basis"]
    assert refused(packet).details[0]["field"] == "records.0.legal_basis"


def test_malformed_agency_code_is_refused() -> None:
    packet = example("licence")
    packet["sender"] = "28.22.H17"
    error = refused(packet)
    assert error.code is ErrorCode.TAX_TRANSPORT_INVALID
    assert "sender" in error.message


def test_inconsistent_reply_is_refused() -> None:
    packet = example("tax-status-reply")
    packet["results"][1]["registered"] = True
    assert "registered and status disagree" in refused(packet).message


def test_naive_timestamps_are_refused() -> None:
    packet = example("licence")
    packet["created_at"] = "2026-11-20T08:30:00"
    assert refused(packet).details[0]["field"] == "created_at"


def test_unknown_kind() -> None:
    packet = example("licence")
    packet["kind"] = "tax-transport/fuel"
    assert refused(packet).code is ErrorCode.PACKET_UNKNOWN_KIND


def test_missing_kind() -> None:
    packet = example("licence")
    del packet["kind"]
    assert refused(packet).code is ErrorCode.PACKET_UNKNOWN_KIND


def test_future_schema_version_is_named() -> None:
    packet = example("licence")
    packet["schema_version"] = 2
    error = refused(packet)
    assert error.code is ErrorCode.TAX_TRANSPORT_UNSUPPORTED_VERSION
    assert error.details == {"supported": [1]}


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b'{"kind": "tax-transport/licence",}'])
def test_malformed_json(raw: bytes) -> None:
    assert refused(raw).code is ErrorCode.JSON_MALFORMED


@pytest.mark.parametrize("raw", [b"[1, 2]", b"null", b'"text"'])
def test_json_that_is_not_an_object(raw: bytes) -> None:
    error = refused(raw)
    assert error.code is ErrorCode.TAX_TRANSPORT_INVALID
    assert "JSON object" in error.message


def test_deeply_nested_json_is_refused_without_a_crash() -> None:
    raw = b'{"kind": "tax-transport/licence", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    error = refused(raw)
    assert error.code is ErrorCode.JSON_MALFORMED
    assert "recursion limit" in error.message
