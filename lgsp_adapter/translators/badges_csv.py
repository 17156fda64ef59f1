"""``badges-csv``: vehicle badges as a transport department's system exports them, in CSV.

The export is what the department's staff see in their spreadsheet: UTF-8 (with or without the
byte-order mark Excel writes), comma-separated, one header row of Vietnamese column names, dates
written ``dd/mm/yyyy``, events, badge types and plate colours in Vietnamese. Each row is one
badge event; the rows become one ``tax-transport/vehicle-badge`` packet, with the sender,
recipients and reference from the envelope. Errors name the row as the spreadsheet numbers it
(the header is row 1) and the column by its header.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from datetime import date
from typing import Any

from lgsp_adapter.errors import InvalidPacket
from lgsp_adapter.packets.tax_transport import (
    BadgePacket,
    parse_tax_transport,
    render_tax_transport,
)
from lgsp_adapter.translators.base import Envelope, TranslationError

# Column header -> field of a badge record, in the export's order.
COLUMNS = {
    "Mã bản ghi": "record_id",
    "Sự kiện": "event",
    "Ngày sự kiện": "event_on",
    "Lý do": "reason",
    "Số phù hiệu": "badge_number",
    "Biển số": "plate",
    "Màu biển": "plate_colour",
    "Loại phù hiệu": "badge_type",
    "Hiệu lực từ": "valid_from",
    "Hiệu lực đến": "valid_until",
    "Mã số thuế": "holder_tax_code",
    "Số chỗ": "seats",
    "Tải trọng (kg)": "payload_kg",
    "Căn cứ pháp lý": "legal_basis",
}
FIELD_COLUMNS = {field: column for column, field in COLUMNS.items()}
WORDS = {
    "event": {
        "Cấp mới": "issued",
        "Gia hạn": "renewed",
        "Thu hồi": "revoked",
        "Hết hạn": "expired",
    },
    "badge_type": {
        "Tuyến cố định": "fixed_route",
        "Xe buýt": "bus",
        "Taxi": "taxi",
        "Hợp đồng": "contract",
        "Du lịch": "tourist",
        "Xe tải": "truck",
        "Container": "container",
        "Đầu kéo": "tractor",
        "Trung chuyển": "shuttle",
    },
    "plate_colour": {"Trắng": "white", "Vàng": "yellow", "Xanh": "blue", "Đỏ": "red"},
}
DATES = ("event_on", "valid_from", "valid_until")
NUMBERS = ("seats", "payload_kg")
MAX_ROWS = 10_000


class BadgesCsv:
    """The ``badges-csv`` translator."""

    name = "badges-csv"
    media_type = "text/csv"
    description = "vehicle badges as a transport department's system exports them (CSV)"

    def to_packet(self, data: bytes, envelope: Envelope) -> bytes:
        """One vehicle-badge packet of the CSV's rows."""
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise TranslationError(
                f"the CSV is not UTF-8 (byte {exc.start})", details={"byte": exc.start}
            ) from exc
        try:
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error as exc:
            raise TranslationError(f"not a CSV the adapter can read: {exc}") from exc
        if not rows:
            raise TranslationError("the CSV is empty")
        header = [unicodedata.normalize("NFC", cell.strip()) for cell in rows[0]]
        while header and not header[-1]:  # the empty last column spreadsheets often add
            header.pop()
        unknown = [cell for cell in header if cell not in COLUMNS]
        if unknown:
            raise TranslationError(
                f"row 1: unknown columns {', '.join(repr(c) for c in unknown)}",
                details={"row": 1, "columns": unknown},
            )
        twice = sorted({cell for cell in header if header.count(cell) > 1})
        if twice:
            raise TranslationError(
                f"row 1: columns given twice: {', '.join(twice)}",
                details={"row": 1, "columns": twice},
            )
        body = [(number, row) for number, row in enumerate(rows[1:], start=2) if any(row)]
        if not body:
            raise TranslationError("the CSV has no rows of badges", details={"row": 2})
        if len(body) > MAX_ROWS:
            raise TranslationError(f"more than {MAX_ROWS:,} rows: split the export")
        records = [_record(number, header, row, envelope) for number, row in body]
        packet = {
            "kind": "tax-transport/vehicle-badge",
            "schema_version": 1,
            "sender": envelope.sender,
            "recipients": envelope.recipients,
            "reference": envelope.reference or f"CSV-{hashlib.sha256(data).hexdigest()[:24]}",
            "created_at": envelope.created_at.isoformat(),
            "records": records,
        }
        encoded = json.dumps(packet, ensure_ascii=False).encode()
        try:
            parsed = parse_tax_transport(encoded)
        except InvalidPacket as exc:
            raise _located(exc, [number for number, _ in body]) from exc
        return render_tax_transport(parsed)

    def from_packet(self, packet: bytes) -> bytes:
        """The badge records of a vehicle-badge packet, as the department's CSV."""
        parsed = parse_tax_transport(packet)
        if not isinstance(parsed, BadgePacket):
            raise TranslationError(f"badges-csv writes vehicle-badge packets, not {parsed.kind}")
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(list(COLUMNS))
        for record in parsed.records:
            values = record.model_dump(mode="json")
            writer.writerow(
                [_guarded(_cell(field, values.get(field))) for field in COLUMNS.values()]
            )
        return ("\ufeff" + out.getvalue()).encode()


def _record(number: int, header: list[str], row: list[str], envelope: Envelope) -> dict[str, Any]:
    while len(row) > len(header) and not row[-1].strip():
        row = row[:-1]  # the empty last column spreadsheets often add
    if len(row) > len(header):
        raise TranslationError(
            f"row {number}: {len(row)} cells under {len(header)} columns", details={"row": number}
        )
    record: dict[str, Any] = {"source_agency": envelope.sender}
    for column, cell in zip(header, row, strict=False):
        field, value = COLUMNS[column], _unguarded(cell.strip())
        if not value:
            continue
        record[field] = _value(number, column, field, value)
    return record


def _value(number: int, column: str, field: str, value: str) -> Any:
    def fault(problem: str) -> TranslationError:
        return TranslationError(
            f"row {number}, {column}: {problem}",
            details={"row": number, "column": column, "field": field, "value": value},
        )

    if field in WORDS:
        if value not in WORDS[field]:
            raise fault(f"{value!r} is not one of {', '.join(WORDS[field])}")
        return WORDS[field][value]
    if field in DATES:
        try:
            day, month, year = (int(part) for part in value.split("/"))
            return date(year, month, day).isoformat()
        except ValueError as exc:
            raise fault(f"{value!r} is not a date written dd/mm/yyyy") from exc
    if field in NUMBERS:
        if not (value.isascii() and value.isdigit()) or len(value) > 9:
            raise fault(f"{value!r} is not a whole number of at most 9 digits")
        return int(value)
    return value


def _located(error: InvalidPacket, rows: list[int]) -> TranslationError:
    """The packet's complaint about ``records.N.field``, told as the CSV's row and column."""
    faults = error.details if isinstance(error.details, list) else []
    for fault in faults:
        parts = str(fault.get("field", "")).split(".")
        if len(parts) >= 2 and parts[0] == "records" and parts[1].isdigit():
            row = rows[int(parts[1])]
            field = parts[2] if len(parts) > 2 else ""
            column = FIELD_COLUMNS.get(field, field)
            return TranslationError(
                f"row {row}, {column}: {fault.get('message')}",
                details={"row": row, "column": column, "field": field},
            )
    return TranslationError(f"the rows do not make a badge packet: {error.message}")


# A cell a spreadsheet would run as a formula gets a leading apostrophe, which Excel shows as
# text and this translator removes again on the way in.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _guarded(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def _unguarded(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(_FORMULA_START) else cell


_PLATE = re.compile(r"(\d{2}[A-Z]{1,2})(\d{4,5})")


def _cell(field: str, value: Any) -> str:
    if value is None:
        return ""
    if field == "plate":  # stored bare (36B12345); the department writes 36B-123.45
        match = _PLATE.fullmatch(str(value))
        if match:
            series, number = match.groups()
            return (
                f"{series}-{number[:3]}.{number[3:]}" if len(number) == 5 else f"{series}-{number}"
            )
    if field in WORDS:
        return {english: word for word, english in WORDS[field].items()}[value]
    if field in DATES:
        year, month, day = str(value).split("-")
        return f"{day}/{month}/{year}"
    return str(value)
