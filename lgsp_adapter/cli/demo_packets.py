"""The packets of the demo exchange in Thanh Hóa, made with the codecs as an agency system would.

All codes, names and numbers are illustrative; the tax office code in particular is made up.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime

from lgsp_adapter.packets.attachment import Attachment
from lgsp_adapter.packets.edxml_codec import render_edxml
from lgsp_adapter.packets.edxml_model import (
    Body,
    Business,
    DocumentCode,
    DocumentEnvelope,
    DocumentHeader,
    DocumentMessageHeader,
    DocumentType,
    EdocPacket,
    Manifest,
    ManifestReference,
    Organization,
    PromulgationInfo,
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

PROVINCE = "000.00.00.H56"
DEPARTMENT = "000.00.12.H56"
COMMUNES = ("000.21.00.H56", "000.22.00.H56")
TAX_OFFICE = "000.56.20.G12"
NEW_COMMUNE = "000.23.00.H56"  # not served at start: an integrator registers it live
AXIS_COMMUNE = "000.24.00.H56"  # its document software speaks the national axis' protocol

NAMES = {
    PROVINCE: "Văn phòng UBND tỉnh Thanh Hóa",
    DEPARTMENT: "Sở Xây dựng tỉnh Thanh Hóa",
    COMMUNES[0]: "UBND xã Quảng Phú",
    COMMUNES[1]: "UBND xã Hoằng Hóa",
    TAX_OFFICE: "Thuế tỉnh Thanh Hóa",
    NEW_COMMUNE: "UBND xã Quảng Tâm",
    AXIS_COMMUNE: "UBND xã Quảng Yên",
}
DOCUMENT_ID = "000.00.00.H56,2026/11/20,1234/UBND-KSTTHC"
BADGE_REFERENCE = "SXD-TH-2026-11-000382"


def _org(code: str) -> Organization:
    return Organization(
        organ_id=code, organ_name=NAMES[code], organization_in_charge="UBND tỉnh Thanh Hóa"
    )


def document(recipients: tuple[str, ...] = (DEPARTMENT, *COMMUNES), number: str = "1234") -> bytes:
    """The provincial office's official letter (to the department and two communes)."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            f"cong-van-{number}.txt", f"Công văn số {number}/UBND-KSTTHC về liên thông văn bản.\n"
        )
    attachment = Attachment.from_bytes(
        archive.getvalue(),
        content_id="cid:1",
        name=f"cong-van-{number}.zip",
        content_type="application/zip",
    )
    now = datetime.now(UTC)
    packet = EdocPacket(
        envelope=DocumentEnvelope(
            header=DocumentHeader(
                message_header=DocumentMessageHeader(
                    sender=_org(PROVINCE),
                    recipients=[_org(code) for code in recipients],
                    document_id=DOCUMENT_ID.replace("1234", number),
                    code=DocumentCode(code_number=number, code_notation="UBND-KSTTHC"),
                    promulgation_info=PromulgationInfo(
                        place="Thanh Hóa", promulgation_date=EdxmlDate(text="2026/11/20")
                    ),
                    document_type=DocumentType(type="1", type_detail="0", type_name="Công văn"),
                    subject="V/v triển khai liên thông văn bản điện tử qua LGSP tỉnh",
                ),
                trace_header_list=TraceHeaderList(
                    trace_headers=[
                        TraceHeader(organ_id=PROVINCE, timestamp=EdxmlTimestamp.model_validate(now))
                    ],
                    business=Business(business_doc_type=BusinessDocType.NEW),
                ),
            ),
            body=Body(
                manifest=Manifest(
                    references=[
                        ManifestReference(
                            content_id="cid:1",
                            content_type="application/zip",
                            attachment_name=f"cong-van-{number}.zip",
                        )
                    ]
                )
            ),
        ),
        attachments=[attachment],
    )
    return render_edxml(packet)


def accepted_status(commune: str) -> bytes:
    """The commune's status 03: the letter is accepted and registered."""
    packet = StatusPacket(
        envelope=StatusEnvelope(
            header=StatusHeader(
                message_header=StatusMessageHeader(
                    sender=_org(commune),
                    response_for=ResponseFor(
                        organ_id=PROVINCE,
                        code="1234/UBND-KSTTHC",
                        promulgation_date=EdxmlDate(text="2026/11/20"),
                        document_id=DOCUMENT_ID,
                    ),
                    staff_info=StaffInfo(department="Văn phòng", staff="Trần Văn C"),
                    status_code="03",
                    description="Đã tiếp nhận, vào sổ văn bản đến",
                    timestamp=EdxmlTimestamp.model_validate(datetime.now(UTC)),
                )
            )
        )
    )
    return render_edxml(packet)


def badges() -> bytes:
    """The transport side's vehicle badges for the tax office."""
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {
            "kind": "tax-transport/vehicle-badge",
            "schema_version": 1,
            "sender": DEPARTMENT,
            "recipients": [TAX_OFFICE],
            "reference": BADGE_REFERENCE,
            "created_at": now,
            "records": [
                {
                    "record_id": "PH-36-2026-004512-I",
                    "event": "issued",
                    "event_on": "2026-11-20",
                    "badge_number": "PH-36-2026-004512",
                    "plate": "36B-123.45",
                    "plate_colour": "yellow",
                    "badge_type": "contract",
                    "valid_from": "2026-11-20",
                    "holder_tax_code": "0101248141",
                    "seats": 29,
                    "legal_basis": "Nghị định 10/2020/NĐ-CP, Điều 20",
                    "source_agency": DEPARTMENT,
                }
            ],
        },
        ensure_ascii=False,
    ).encode()


def tax_status() -> bytes:
    """The tax office's answer about the badge holder."""
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {
            "kind": "tax-transport/tax-status-reply",
            "schema_version": 1,
            "sender": TAX_OFFICE,
            "recipients": [DEPARTMENT],
            "reference": "THUE-TH-R-2026-11-0042",
            "in_reply_to": BADGE_REFERENCE,
            "created_at": now,
            "results": [
                {
                    "tax_code": "0101248141",
                    "registered": True,
                    "status": "active",
                    "compliant": True,
                    "checked_at": now,
                    "legal_basis": "Luật Quản lý thuế 2019, Điều 99",
                    "source_agency": TAX_OFFICE,
                }
            ],
        },
        ensure_ascii=False,
    ).encode()
