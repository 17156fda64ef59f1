"""``vn-document-json``: a document as simpler document systems write it, in JSON with
Vietnamese field names, to and from an edXML document packet (QCVN 102:2016).

    {
      "loai": "moi",                              moi | thu_hoi | cap_nhat | thay_the
      "ma_van_ban": "000.00.00.H56,2026/11/20,1234/UBND-KSTTHC",
      "so": "1234", "ky_hieu": "UBND-KSTTHC",
      "noi_ban_hanh": "Thanh Hóa", "ngay_ban_hanh": "2026-11-20",
      "trich_yeu": "V/v …",
      "co_quan_gui": {"ma": "000.00.00.H56", "ten": "…", "co_quan_chu_quan": "…"},
      "noi_nhan": [{"ma": "000.21.00.H56", "ten": "…"}],
      "tep_dinh_kem": [{"ten_tep": "cv.pdf", "kieu": "application/pdf", "noi_dung_base64": "…"}]
    }

Every field but ``co_quan_gui`` and ``noi_nhan`` may be left out. Errors name the field as the
agency's JSON spells it (``noi_nhan.1.ma``). A document read back gives the same JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lgsp_adapter.packets.attachment import Attachment
from lgsp_adapter.packets.edxml_codec import parse_edxml, render_edxml
from lgsp_adapter.packets.edxml_model import (
    Body,
    Business,
    DocumentCode,
    DocumentEnvelope,
    DocumentHeader,
    DocumentMessageHeader,
    EdocPacket,
    Manifest,
    ManifestReference,
    Organization,
    PromulgationInfo,
    TraceHeader,
    TraceHeaderList,
)
from lgsp_adapter.packets.edxml_values import BusinessDocType, EdxmlDate, EdxmlTimestamp
from lgsp_adapter.translators.base import Envelope, TranslationError

KINDS = {
    "moi": BusinessDocType.NEW,
    "thu_hoi": BusinessDocType.REVOKE,
    "cap_nhat": BusinessDocType.UPDATE,
    "thay_the": BusinessDocType.REPLACE,
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CoQuan(_Strict):
    """An organisation: its code, name and the body above it."""

    ma: str = Field(min_length=1, max_length=64)
    ten: str | None = Field(None, max_length=300)
    co_quan_chu_quan: str | None = Field(None, max_length=300)


class TepDinhKem(_Strict):
    """An attached file."""

    ten_tep: str = Field(min_length=1, max_length=255)
    kieu: str = Field("application/octet-stream", max_length=100)
    noi_dung_base64: str


class VanBan(_Strict):
    """The document, as the agency system writes it."""

    loai: str = "moi"
    ma_van_ban: str | None = Field(None, max_length=200)
    so: str | None = Field(None, max_length=50)
    ky_hieu: str | None = Field(None, max_length=100)
    noi_ban_hanh: str | None = Field(None, max_length=200)
    ngay_ban_hanh: date | None = Field(None, strict=False)
    trich_yeu: str | None = Field(None, max_length=2000)
    co_quan_gui: CoQuan
    noi_nhan: list[CoQuan] = Field(min_length=1, max_length=500)
    tep_dinh_kem: list[TepDinhKem] = Field(default_factory=list, max_length=100)


class VnDocumentJson:
    """The ``vn-document-json`` translator."""

    name = "vn-document-json"
    media_type = "application/json"
    description = "a document in JSON with Vietnamese field names (simple document systems)"

    def to_packet(self, data: bytes, envelope: Envelope) -> bytes:
        """The document as an edXML document packet."""
        document = _read(data)
        attachments = _attachments(document)
        packet = EdocPacket(
            envelope=DocumentEnvelope(
                header=_header(document, envelope),
                body=Body(
                    manifest=Manifest(
                        references=[
                            ManifestReference(
                                content_id=a.content_id,
                                content_type=a.content_type,
                                attachment_name=a.attachment_name,
                            )
                            for a in attachments
                        ]
                    )
                )
                if attachments
                else None,
            ),
            attachments=attachments,
        )
        return render_edxml(packet)

    def from_packet(self, packet: bytes) -> bytes:
        """An edXML document packet as the agency system's JSON."""
        parsed = parse_edxml(packet).packet
        if not isinstance(parsed, EdocPacket):
            raise TranslationError("vn-document-json writes documents, not status packets")
        header = parsed.envelope.header
        message = header.message_header
        business = header.trace_header_list.business if header.trace_header_list else None
        kind = business.business_doc_type if business else BusinessDocType.NEW
        document: dict[str, Any] = {
            "loai": {v: k for k, v in KINDS.items()}.get(kind, "moi"),
            "ma_van_ban": message.document_id,
            "so": message.code.code_number if message.code else None,
            "ky_hieu": message.code.code_notation if message.code else None,
            "noi_ban_hanh": message.promulgation_info.place if message.promulgation_info else None,
            "ngay_ban_hanh": _date(message.promulgation_info),
            "trich_yeu": message.subject,
            "co_quan_gui": _co_quan(message.sender),
            "noi_nhan": [_co_quan(o) for o in message.recipients],
            "tep_dinh_kem": [
                {
                    "ten_tep": a.attachment_name or a.content_id,
                    "kieu": a.content_type or "application/octet-stream",
                    "noi_dung_base64": base64.b64encode(a.read_bytes()).decode(),
                }
                for a in parsed.attachments
            ],
        }
        cleaned = {k: v for k, v in document.items() if v not in (None, [])}
        return json.dumps(cleaned, ensure_ascii=False, indent=2).encode() + b"\n"


def _organization(co_quan: CoQuan) -> Organization:
    return Organization(
        organ_id=co_quan.ma,
        organ_name=co_quan.ten,
        organization_in_charge=co_quan.co_quan_chu_quan,
    )


def _co_quan(organization: Organization) -> dict[str, str]:
    found = {
        "ma": organization.organ_id,
        "ten": organization.organ_name,
        "co_quan_chu_quan": organization.organization_in_charge,
    }
    return {k: v for k, v in found.items() if v is not None}


def _date(info: PromulgationInfo | None) -> str | None:
    if info is None or info.promulgation_date is None or info.promulgation_date.value is None:
        return None
    return info.promulgation_date.value.isoformat()


def _read(data: bytes) -> VanBan:
    """The agency's JSON as our model, the first problem named at its field."""
    try:
        document = VanBan.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "(the document)"
        raise TranslationError(
            f"{where}: {first['msg']}", details={"field": where, "problem": first["msg"]}
        ) from exc
    if document.loai not in KINDS:
        raise TranslationError(
            f"loai: {document.loai!r} is not one of {', '.join(KINDS)}",
            details={"field": "loai"},
        )
    return document


def _attachments(document: VanBan) -> list[Attachment]:
    attachments = []
    for number, tep in enumerate(document.tep_dinh_kem):
        try:
            content = base64.b64decode(tep.noi_dung_base64, validate=True)
        except binascii.Error as exc:
            raise TranslationError(
                f"tep_dinh_kem.{number}.noi_dung_base64: not base64",
                details={"field": f"tep_dinh_kem.{number}.noi_dung_base64"},
            ) from exc
        attachments.append(
            Attachment.from_bytes(
                content, content_id=f"cid:{number + 1}", name=tep.ten_tep, content_type=tep.kieu
            )
        )
    return attachments


def _header(document: VanBan, envelope: Envelope) -> DocumentHeader:
    return DocumentHeader(
        message_header=DocumentMessageHeader(
            sender=_organization(document.co_quan_gui),
            recipients=[_organization(o) for o in document.noi_nhan],
            document_id=document.ma_van_ban,
            code=DocumentCode(code_number=document.so, code_notation=document.ky_hieu)
            if document.so or document.ky_hieu
            else None,
            promulgation_info=PromulgationInfo(
                place=document.noi_ban_hanh,
                promulgation_date=EdxmlDate.model_validate(document.ngay_ban_hanh)
                if document.ngay_ban_hanh
                else None,
            )
            if document.noi_ban_hanh or document.ngay_ban_hanh
            else None,
            subject=document.trich_yeu,
        ),
        trace_header_list=TraceHeaderList(
            trace_headers=[
                TraceHeader(
                    organ_id=document.co_quan_gui.ma,
                    timestamp=EdxmlTimestamp.model_validate(envelope.created_at),
                )
            ],
            business=Business(business_doc_type=KINDS[document.loai]),
        ),
    )
