from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.packets.tax_transport import (
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
    assert [r.record_id for r in packet.records] == ["PH-36-2026-004512-I", "PH-36-2024-000977-R"]
    assert str(packet.sender) == "000.00.12.H56"


def test_reply_correlates_with_its_query() -> None:
    query = example("tax-status-query")
    reply = parse_tax_transport(json.dumps(example("tax-status-reply")).encode())
    assert isinstance(reply, TaxStatusReply)
    assert reply.in_reply_to == query["reference"]


PUBLISHED = json.loads((PROJECT / "docs/schema/tax-transport-v1.schema.json").read_text())


def test_published_schema_is_the_one_the_code_makes() -> None:
    assert json.loads(json.dumps(json_schema())) == PUBLISHED, "run `make schema`"


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_examples_are_valid_under_the_published_schema(path: Path) -> None:
    # An independent validator, so that other vendors can rely on the schema alone.
    validator = Draft202012Validator(PUBLISHED, format_checker=Draft202012Validator.FORMAT_CHECKER)
    validator.validate(json.loads(path.read_text()))


# Inputs the schema can judge: the schema and the code must agree on every one.
AGREEMENT_CASES: list[tuple[str, tuple[str | int, ...], object]] = [
    ("vehicle-badge", ("records", 0, "plate"), "36B12345"),
    ("vehicle-badge", ("records", 0, "plate"), "hello"),
    ("vehicle-badge", ("records", 0, "plate"), "36b-123.45"),
    ("vehicle-badge", ("records", 0, "plate"), "00A-123.45"),
    ("vehicle-badge", ("records", 0, "holder_tax_code"), "0100109106-001"),
    ("vehicle-badge", ("records", 0, "holder_tax_code"), "0100109106001"),
    ("vehicle-badge", ("records", 0, "holder_tax_code"), "0100109106-01"),
    ("vehicle-badge", ("records", 0, "holder_tax_code"), "038085001234"),
    ("vehicle-badge", ("records", 0, "seats"), "29"),
    ("vehicle-badge", ("records", 0, "legal_basis"), "   "),
    ("vehicle-badge", ("records", 0, "badge_number"), " PH-1"),
    ("vehicle-badge", ("records", 0, "source_agency"), "000.00.12.H56 "),
    ("vehicle-badge", ("records", 0, "source_agency"), "０００.００.１２.H56"),
    ("vehicle-badge", ("reference",), "has space"),
    ("vehicle-badge", ("schema_version",), 2),
    ("vehicle", ("records", 0, "vin"), "RLUB5HD3XPN01234O"),
    ("tax-status-reply", ("in_reply_to",), " "),
    ("tax-status-reply", ("results", 0, "registered"), "yes"),
    ("tracking", ("records", 0, "trips"), 1.5),
]


@pytest.mark.parametrize(("kind", "where", "value"), AGREEMENT_CASES)
def test_schema_and_code_agree(kind: str, where: tuple[str | int, ...], value: object) -> None:
    packet: Any = example(kind)
    target = packet
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    schema_accepts = Draft202012Validator(PUBLISHED).is_valid(packet)
    try:
        parse_tax_transport(json.dumps(packet).encode())
        code_accepts = True
    except InvalidPacket:
        code_accepts = False
    assert schema_accepts == code_accepts


def test_kind_and_version_are_required_by_the_schema() -> None:
    for name in ("LicencePacket", "RecordReply"):
        assert {"kind", "schema_version"} <= set(PUBLISHED["$defs"][name]["required"])


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


def test_dates_out_of_order_are_refused_at_the_later_field() -> None:
    packet = example("licence")
    packet["records"][0]["expires_on"] = "2020-01-01"
    assert refused(packet).message == "records.0.expires_on: is before issued_on (2026-11-19)"


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
    assert refused(packet).message == (
        "results.1.status: not_registered disagrees with registered=true"
    )


@pytest.mark.parametrize(("outcome", "packets"), [("records_follow", 0), ("no_records", 2)])
def test_record_reply_says_packets_follow_exactly_when_they_do(outcome: str, packets: int) -> None:
    packet = example("record-reply")
    packet.update(outcome=outcome, packets=packets)
    assert refused(packet).details[0]["field"] == "packets"


def test_record_reply_can_refuse_with_a_reason() -> None:
    packet = example("record-reply")
    packet.update(outcome="refused", packets=0, reason="Thiếu căn cứ pháp lý")
    parse_tax_transport(json.dumps(packet).encode())


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("records", 0, "seats"), "29"),  # a string is not a number
        (("records", 0, "valid_from"), "2024-03-01T00:00:00"),  # a time is not a date
        (("records", 0, "holder_tax_code"), " 0101248141"),  # no blanks around identifiers
        (("records", 0, "legal_basis"), "   "),  # blank text
        (("created_at",), 1763600000),  # a number is not a time
    ],
)
def test_no_coercion(where: tuple[str | int, ...], value: object) -> None:
    packet: Any = example("vehicle-badge")
    target = packet
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    assert refused(packet).details[0]["field"] == ".".join(map(str, where))


def test_naive_timestamps_are_refused() -> None:
    packet = example("licence")
    packet["created_at"] = "2026-11-20T08:30:00"
    assert refused(packet).details[0]["field"] == "created_at"


def test_unknown_kind_is_echoed() -> None:
    packet = example("licence")
    packet["kind"] = "tax-transport/fuel"
    error = refused(packet)
    assert error.code is ErrorCode.PACKET_UNKNOWN_KIND
    assert error.message.startswith("kind 'tax-transport/fuel' is unknown")


def test_missing_kind() -> None:
    packet = example("licence")
    del packet["kind"]
    error = refused(packet)
    assert error.code is ErrorCode.PACKET_UNKNOWN_KIND
    assert error.message.startswith("the packet has no kind")


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
