"""Packets of the tax–transport exchange, version 1 (JSON, published as JSON Schema).

No national field list exists, so this schema is ours: it is documented in
``docs/tax-transport.md``, published in ``docs/schema/tax-transport-v1.schema.json`` (regenerate
with ``make schema``) and exemplified under ``examples/``. The transport side sends events about
licences, badges, vehicles and tracking aggregates; the tax side answers status queries and asks
for records. Requests and replies are correlated by ``reference`` / ``in_reply_to``, and every
record names its legal basis and its source agency.

A change that old readers would misread gets a new ``schema_version``; adding an optional field
does not.
"""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from lgsp_adapter.agency_code import AgencyCode
from lgsp_adapter.edxml_values import Text
from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.tax_ids import Plate, TaxCode

SCHEMA_VERSION: Literal[1] = 1
MAX_RECORDS = 10_000


class _Strict(BaseModel):
    # Unknown fields are refused: a misspelt field silently ignored would be a lost fact.
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class RecordEvent(StrEnum):
    """What happened to a licence, badge or vehicle record."""

    ISSUED = "issued"
    RENEWED = "renewed"
    REVOKED = "revoked"
    EXPIRED = "expired"


class BusinessType(StrEnum):
    """Road transport businesses a licence covers (Decree 10/2020/NĐ-CP)."""

    FIXED_ROUTE = "fixed_route"
    BUS = "bus"
    TAXI = "taxi"
    CONTRACT = "contract"
    TOURIST = "tourist"
    FREIGHT = "freight"
    CONTAINER = "container"


class BadgeType(StrEnum):
    """Kinds of vehicle badge (phù hiệu / biển hiệu)."""

    FIXED_ROUTE = "fixed_route"
    BUS = "bus"
    TAXI = "taxi"
    CONTRACT = "contract"
    TOURIST = "tourist"
    TRUCK = "truck"
    CONTAINER = "container"
    TRACTOR = "tractor"
    SHUTTLE = "shuttle"


class Provenance(_Strict):
    """Where a record comes from and under what law it is shared."""

    legal_basis: Text = Field(min_length=1, max_length=500, examples=["Nghị định 10/2020/NĐ-CP"])
    source_agency: AgencyCode


class LicenceRecord(Provenance):
    """A transport business licence (giấy phép kinh doanh vận tải) event."""

    event: RecordEvent
    licence_number: str = Field(min_length=1, max_length=64)
    holder_name: Text = Field(min_length=1, max_length=300)
    holder_address: Text | None = Field(None, max_length=500)
    holder_tax_code: TaxCode
    business_types: list[BusinessType] = Field(min_length=1)
    issued_on: date
    expires_on: date | None = None
    issuing_agency: AgencyCode

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.expires_on is not None and self.expires_on < self.issued_on:
            raise ValueError("expires_on is before issued_on")
        return self


class BadgeRecord(Provenance):
    """A vehicle badge (phù hiệu / biển hiệu) event."""

    event: RecordEvent
    badge_number: str = Field(min_length=1, max_length=64)
    plate: Plate
    badge_type: BadgeType
    valid_from: date
    valid_until: date | None = None
    holder_tax_code: TaxCode
    seats: int | None = Field(None, ge=1, le=100)
    payload_kg: int | None = Field(None, ge=1, le=100_000)

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.valid_until is not None and self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")
        return self


class VehicleRecord(Provenance):
    """Vehicle and inspection facts (đăng kiểm) where the transport side has them."""

    event: RecordEvent
    plate: Plate
    vin: str | None = Field(None, pattern=r"^[A-HJ-NPR-Z0-9]{17}$")
    holder_tax_code: TaxCode | None = None
    inspection_certificate: str | None = Field(None, max_length=64)
    inspection_expires_on: date | None = None


class TrackingRecord(Provenance):
    """Per vehicle and period, what its tracking device recorded (Decree 10/2020, art. 12)."""

    plate: Plate
    holder_tax_code: TaxCode | None = None
    period_start: date
    period_end: date
    distance_km: float = Field(ge=0, le=1_000_000)
    trips: int = Field(ge=0)

    @model_validator(mode="after")
    def _period_in_order(self) -> Self:
        if self.period_end < self.period_start:
            raise ValueError("period_end is before period_start")
        return self


class TaxpayerStatus(StrEnum):
    """A taxpayer's standing with the tax authority."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"
    NOT_REGISTERED = "not_registered"


class TaxStatusResult(Provenance):
    """The tax side's answer about one tax code."""

    tax_code: TaxCode
    registered: bool
    status: TaxpayerStatus
    compliant: bool | None = Field(
        None, description="False when the taxpayer has overdue declarations or debts."
    )
    checked_at: AwareDatetime

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.registered == (self.status is TaxpayerStatus.NOT_REGISTERED):
            raise ValueError("registered and status disagree")
        return self


class PacketBase(_Strict):
    """What every tax–transport packet carries besides its records."""

    schema_version: Literal[1] = SCHEMA_VERSION
    sender: AgencyCode
    recipients: list[AgencyCode] = Field(min_length=1, max_length=100)
    reference: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:/-]+$",
        description="The sender's own id for this packet; replies quote it in in_reply_to.",
    )
    in_reply_to: str | None = Field(None, max_length=64)
    created_at: AwareDatetime


class LicencePacket(PacketBase):
    """Transport → tax: licence events."""

    kind: Literal["tax-transport/licence"] = "tax-transport/licence"
    records: list[LicenceRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class BadgePacket(PacketBase):
    """Transport → tax: vehicle badge events."""

    kind: Literal["tax-transport/vehicle-badge"] = "tax-transport/vehicle-badge"
    records: list[BadgeRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class VehiclePacket(PacketBase):
    """Transport → tax: vehicle and inspection facts."""

    kind: Literal["tax-transport/vehicle"] = "tax-transport/vehicle"
    records: list[VehicleRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class TrackingPacket(PacketBase):
    """Transport → tax: tracking aggregates."""

    kind: Literal["tax-transport/tracking"] = "tax-transport/tracking"
    records: list[TrackingRecord] = Field(min_length=1, max_length=MAX_RECORDS)


class TaxStatusQuery(PacketBase):
    """Transport → tax: what is the standing of these tax codes?"""

    kind: Literal["tax-transport/tax-status-query"] = "tax-transport/tax-status-query"
    tax_codes: list[TaxCode] = Field(min_length=1, max_length=MAX_RECORDS)
    legal_basis: Text = Field(min_length=1, max_length=500)


class RecordRequest(PacketBase):
    """Tax → transport: send me the records of this holder (e.g. all badges of one operator)."""

    kind: Literal["tax-transport/record-request"] = "tax-transport/record-request"
    holder_tax_code: TaxCode
    record_kinds: list[Literal["licence", "vehicle-badge", "vehicle", "tracking"]] = Field(
        min_length=1
    )
    since: date | None = None
    legal_basis: Text = Field(min_length=1, max_length=500)


class TaxStatusReply(PacketBase):
    """Tax → transport: the answer to a ``TaxStatusQuery`` (``in_reply_to`` is required)."""

    kind: Literal["tax-transport/tax-status-reply"] = "tax-transport/tax-status-reply"
    in_reply_to: str = Field(min_length=1, max_length=64)
    results: list[TaxStatusResult] = Field(min_length=1, max_length=MAX_RECORDS)


TaxTransportPacket = Annotated[
    LicencePacket
    | BadgePacket
    | VehiclePacket
    | TrackingPacket
    | TaxStatusQuery
    | RecordRequest
    | TaxStatusReply,
    Field(discriminator="kind"),
]

KINDS = (
    "tax-transport/licence",
    "tax-transport/vehicle-badge",
    "tax-transport/vehicle",
    "tax-transport/tracking",
    "tax-transport/tax-status-query",
    "tax-transport/record-request",
    "tax-transport/tax-status-reply",
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
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "json_invalid":
        return InvalidPacket(ErrorCode.JSON_MALFORMED, f"not valid JSON: {first['msg']}")
    if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return InvalidPacket(
            ErrorCode.PACKET_UNKNOWN_KIND,
            f"unknown packet kind; expected one of {', '.join(KINDS)}",
            details={"kinds": list(KINDS)},
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
    # The discriminator is the first element of each location: drop it for readability.
    field = ".".join(str(part) for part in first["loc"][1:]) or where
    return InvalidPacket(
        ErrorCode.TAX_TRANSPORT_INVALID,
        f"{field}: {first['msg']}" + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
        details=[
            {"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]}
            for e in errors[:20]
        ],
    )


def render_tax_transport(packet: TaxTransportPacket) -> bytes:
    """The packet as canonical JSON (UTF-8, fields in schema order, no nulls)."""
    return packet.model_dump_json(exclude_none=True, indent=2).encode()


def json_schema() -> dict[str, object]:
    """The published JSON Schema of version 1."""
    schema = _ADAPTER.json_schema(ref_template="#/$defs/{model}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:lgsp-adapter:schema:tax-transport:v1",
        "title": "Tax–transport exchange packet, version 1",
        **schema,
    }


if __name__ == "__main__":  # `make schema`
    print(json.dumps(json_schema(), ensure_ascii=False, indent=2))  # noqa: T201
