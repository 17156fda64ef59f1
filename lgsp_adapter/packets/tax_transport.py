"""Packets of the tax–transport exchange, version 1 (JSON, published as JSON Schema).

No national field list exists, so this schema is ours: it is documented in
``docs/tax-transport.md``, published in ``docs/schema/tax-transport-v1.schema.json`` (regenerate
with ``make schema``) and exemplified under ``examples/``. The transport side sends events about
licences, badges, vehicles and tracking aggregates; the tax side answers status queries and asks
for records. Requests and replies are correlated by ``reference`` / ``in_reply_to``, and every
record names its legal basis and its source agency.

Reading is strict, like the schema: no type coercion, no unknown fields, identifiers in their
written forms. So any change to the packets, even an added optional field or enum value, is a new
``schema_version``, which readers of version 1 refuse by name rather than misread.
"""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.packets.tax_ids import TaxCode
from lgsp_adapter.packets.tax_records import (
    BadgeRecord,
    LegalBasis,
    LicenceRecord,
    LongText,
    Reference,
    Strict,
    TaxStatusResult,
    TrackingRecord,
    VehicleRecord,
)

SCHEMA_VERSION: Literal[1] = 1
MAX_RECORDS = 10_000


class PacketBase(Strict):
    """What every tax–transport packet carries besides its content."""

    schema_version: Literal[1]
    sender: AgencyCode
    recipients: list[AgencyCode] = Field(min_length=1, max_length=100)
    reference: Reference = Field(
        description="The sender's own id for this packet; replies quote it in in_reply_to."
    )
    in_reply_to: Reference | None = None
    created_at: AwareDatetime


class LicencePacket(PacketBase):
    """Transport → tax: licence events."""

    kind: Literal["tax-transport/licence"]
    records: list[LicenceRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class BadgePacket(PacketBase):
    """Transport → tax: vehicle badge events."""

    kind: Literal["tax-transport/vehicle-badge"]
    records: list[BadgeRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class VehiclePacket(PacketBase):
    """Transport → tax: vehicle and inspection facts."""

    kind: Literal["tax-transport/vehicle"]
    records: list[VehicleRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class TrackingPacket(PacketBase):
    """Transport → tax: tracking aggregates."""

    kind: Literal["tax-transport/tracking"]
    records: list[TrackingRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class TaxStatusQuery(PacketBase):
    """Transport → tax: what is the standing of these tax codes? (The sender is the source.)"""

    kind: Literal["tax-transport/tax-status-query"]
    tax_codes: list[TaxCode] = Field(min_length=1, max_length=MAX_RECORDS)
    legal_basis: LegalBasis


class TaxStatusReply(PacketBase):
    """Tax → transport: the answer to a ``TaxStatusQuery`` (``in_reply_to`` is required)."""

    kind: Literal["tax-transport/tax-status-reply"]
    in_reply_to: Reference
    results: list[TaxStatusResult] = Field(min_length=1, max_length=MAX_RECORDS)


RecordKind = Literal["licence", "vehicle-badge", "vehicle", "tracking"]


class RecordRequest(PacketBase):
    """Tax → transport: send me the records of this holder (e.g. all badges of one operator)."""

    kind: Literal["tax-transport/record-request"]
    holder_tax_code: TaxCode
    record_kinds: list[RecordKind] = Field(min_length=1)
    since: date | None = None
    legal_basis: LegalBasis


class RequestOutcome(StrEnum):
    """How a record request was answered."""

    RECORDS_FOLLOW = "records_follow"
    NO_RECORDS = "no_records"
    REFUSED = "refused"
    FAILED = "failed"


class RecordReply(PacketBase):
    """Transport → tax: the answer to a ``RecordRequest``. When records exist they follow in
    ``packets`` record packets, each with the same ``in_reply_to``; an empty answer, a refusal
    (say, an insufficient legal basis) or a failure is said here, with the reason."""

    kind: Literal["tax-transport/record-reply"]
    in_reply_to: Reference
    outcome: RequestOutcome
    packets: int = Field(0, ge=0, description="How many record packets follow.")
    reason: LongText | None = None

    @field_validator("packets")
    @classmethod
    def _packets_only_when_records_follow(cls, value: int, info: ValidationInfo) -> int:
        follow = info.data.get("outcome") is RequestOutcome.RECORDS_FOLLOW
        if follow != (value > 0):
            raise ValueError("is above 0 exactly when the outcome is records_follow")
        return value


TaxTransportPacket = Annotated[
    LicencePacket
    | BadgePacket
    | VehiclePacket
    | TrackingPacket
    | TaxStatusQuery
    | TaxStatusReply
    | RecordRequest
    | RecordReply,
    Field(discriminator="kind"),
]

KINDS = (
    "tax-transport/licence",
    "tax-transport/vehicle-badge",
    "tax-transport/vehicle",
    "tax-transport/tracking",
    "tax-transport/tax-status-query",
    "tax-transport/tax-status-reply",
    "tax-transport/record-request",
    "tax-transport/record-reply",
)

_ADAPTER: TypeAdapter[TaxTransportPacket] = TypeAdapter(TaxTransportPacket)


def parse_tax_transport(data: bytes) -> TaxTransportPacket:
    """Read a packet from JSON; raises ``InvalidPacket`` naming the first faulty field."""
    try:
        return _ADAPTER.validate_json(data)
    except ValidationError as exc:
        raise _translate(exc) from exc


def _translate(exc: ValidationError) -> InvalidPacket:
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return InvalidPacket(ErrorCode.JSON_MALFORMED, f"not valid JSON: {first['msg']}")
    if first["type"] == "union_tag_not_found":
        return InvalidPacket(
            ErrorCode.PACKET_UNKNOWN_KIND,
            f"the packet has no kind; expected one of {', '.join(KINDS)}",
            details={"kinds": list(KINDS)},
        )
    if first["type"] == "union_tag_invalid":
        given = first.get("ctx", {}).get("tag")
        return InvalidPacket(
            ErrorCode.PACKET_UNKNOWN_KIND,
            f"kind {given!r} is unknown; expected one of {', '.join(KINDS)}",
            details={"kind": given, "kinds": list(KINDS)},
        )
    if first["loc"][-1:] == ("schema_version",) and first["type"] == "literal_error":
        return InvalidPacket(
            ErrorCode.TAX_TRANSPORT_UNSUPPORTED_VERSION,
            f"schema_version {first.get('input')!r} is not supported; this adapter reads "
            f"version {SCHEMA_VERSION}",
            details={"supported": [SCHEMA_VERSION]},
        )
    if not first["loc"]:
        return InvalidPacket(
            ErrorCode.TAX_TRANSPORT_INVALID,
            "a tax–transport packet is a JSON object with a kind",
            details=[{"field": "", "message": first["msg"]}],
        )
    faults = [{"field": _field(e["loc"]), "message": _message(e)} for e in errors[:20]]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return InvalidPacket(
        ErrorCode.TAX_TRANSPORT_INVALID,
        f"{faults[0]['field']}: {faults[0]['message']}{more}",
        details=faults,
    )


def _field(loc: tuple[int | str, ...]) -> str:
    # The first part of a location is the kind that the discriminator chose: not a field.
    return ".".join(str(part) for part in loc[1:])


def _message(error: Any) -> str:
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def render_tax_transport(packet: TaxTransportPacket) -> bytes:
    """The packet as canonical JSON (UTF-8, fields in schema order, no nulls)."""
    return packet.model_dump_json(exclude_none=True, indent=2).encode()


def json_schema(ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The published JSON Schema of version 1; ``ref_template`` places its definitions
    elsewhere (the OpenAPI document keeps them under components)."""
    schema = _ADAPTER.json_schema(ref_template=ref_template)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:lgsp-adapter:schema:tax-transport:v1",
        "title": "Tax–transport exchange packet, version 1",
        **schema,
    }


if __name__ == "__main__":  # `make schema`
    print(json.dumps(json_schema(), ensure_ascii=False, indent=2))  # noqa: T201
