"""The records the tax–transport packets carry: licences, badges, vehicles, tracking aggregates and
taxpayer statuses, each naming its legal basis and source agency (see ``tax_transport``).

Apart from the packets so a record's fields, and the strict reading they share with the
published schema, read on one page.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.packets.edxml_values import to_nfc
from lgsp_adapter.packets.tax_ids import Plate, PlateColour, TaxCode

REFERENCE_PATTERN = r"^[A-Za-z0-9._:/-]{1,64}$"


# Free text: NFC, not blank, bounded.
ShortText = Annotated[
    str, Field(min_length=1, max_length=300, pattern=r"\S"), AfterValidator(to_nfc)
]
LongText = Annotated[
    str, Field(min_length=1, max_length=500, pattern=r"\S"), AfterValidator(to_nfc)
]


# An identifier some authority wrote (a licence or badge number): no blanks around it.
Number = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$")]
Reference = Annotated[str, Field(pattern=REFERENCE_PATTERN)]
LegalBasis = LongText


class Strict(BaseModel):
    # As strict as the published schema: no coercion ("29" is not 29), no unknown fields (a
    # misspelt field silently ignored would be a lost fact).
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def _not_before(earlier: str) -> Any:
    """A validator that the field's date is not before the field ``earlier``."""

    def check(value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get(earlier)
        if value is not None and start is not None and value < start:
            raise ValueError(f"is before {earlier} ({start.isoformat()})")
        return value

    return check


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


class Provenance(Strict):
    """Where a record comes from and under what law it is shared."""

    legal_basis: LegalBasis = Field(examples=["Nghị định 10/2020/NĐ-CP, Điều 12"])
    source_agency: AgencyCode


class Event(Provenance):
    """Something that happened to a licence, badge or vehicle: identified, so that the receiver
    can drop a record it already has, and dated, so that it can order them."""

    record_id: Reference = Field(
        description="Unique at the source agency; a record sent again keeps its id."
    )
    event: RecordEvent
    event_on: date = Field(description="When the event took effect.")
    reason: LongText | None = None


class LicenceRecord(Event):
    """A transport business licence (giấy phép kinh doanh vận tải) event."""

    licence_number: Number
    holder_name: ShortText
    holder_address: LongText | None = None
    holder_tax_code: TaxCode
    business_types: list[BusinessType] = Field(min_length=1)
    issued_on: date
    expires_on: date | None = None
    issuing_agency: AgencyCode

    _expires_after_issue = field_validator("expires_on")(_not_before("issued_on"))


class BadgeRecord(Event):
    """A vehicle badge (phù hiệu / biển hiệu) event."""

    badge_number: Number
    plate: Plate
    plate_colour: PlateColour | None = None
    badge_type: BadgeType
    valid_from: date
    valid_until: date | None = None
    holder_tax_code: TaxCode
    seats: int | None = Field(None, ge=1, le=100)
    payload_kg: int | None = Field(None, ge=1, le=100_000)

    _valid_after_start = field_validator("valid_until")(_not_before("valid_from"))


class VehicleRecord(Event):
    """Vehicle and inspection facts (đăng kiểm) where the transport side has them."""

    plate: Plate
    plate_colour: PlateColour | None = None
    vin: str | None = Field(None, pattern=r"^[A-HJ-NPR-Z0-9]{17}$")
    holder_tax_code: TaxCode | None = None
    inspection_certificate: Number | None = None
    inspection_expires_on: date | None = None


class TrackingRecord(Provenance):
    """Per vehicle and period, what its tracking device recorded (Decree 10/2020, art. 12)."""

    record_id: Reference
    plate: Plate
    holder_tax_code: TaxCode | None = None
    period_start: date
    period_end: date
    distance_km: float = Field(ge=0, le=1_000_000)
    trips: int = Field(ge=0)

    _period_in_order = field_validator("period_end")(_not_before("period_start"))


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
    status_since: date | None = None
    taxpayer_name: ShortText | None = None
    tax_office: AgencyCode | None = Field(None, description="The tax office managing it.")
    compliant: bool | None = Field(
        None,
        description="False when the taxpayer has overdue declarations or tax debts; absent when "
        "the tax office cannot say.",
    )
    checked_at: AwareDatetime

    @field_validator("status")
    @classmethod
    def _agrees_with_registered(cls, value: TaxpayerStatus, info: ValidationInfo) -> TaxpayerStatus:
        registered = info.data.get("registered")
        if registered is not None and registered == (value is TaxpayerStatus.NOT_REGISTERED):
            raise ValueError(f"{value} disagrees with registered={str(registered).lower()}")
        return value
