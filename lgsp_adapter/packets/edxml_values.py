"""The leaf values of edXML: dates, timestamps, codes and text, each lenient on reading.

Every value keeps the text exactly as the packet carried it, so rendering gives back what came in;
the typed reading (a ``date``, an agency code) is derived from that text. The ``check_*`` functions
say what deviates from QCVN 102:2016 without rejecting it; they run while a packet is read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from enum import IntEnum, StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, computed_field, model_validator

from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.packets.diagnostics import WarningCode

VIETNAM_TZ = timezone(timedelta(hours=7), "ICT")

DATE_FORMAT = "%Y/%m/%d"
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M:%S"


def to_nfc(text: str) -> str:
    """Vietnamese text arrives in NFC and NFD alike; we compare and store NFC."""
    if text.isascii() or unicodedata.is_normalized("NFC", text):
        return text
    return unicodedata.normalize("NFC", text)


# Characters XML 1.0 cannot carry: C0 controls but tab, LF and CR; surrogates; U+FFFE, U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_chars(text: str) -> str:
    """Refuse text that no XML document can carry, so every valid model can be written."""
    bad = _NOT_XML.search(text)
    if bad is not None:
        raise ValueError(f"U+{ord(bad.group()):04X} at position {bad.start()} cannot appear in XML")
    return text


Token = Annotated[str, AfterValidator(xml_chars)]
"""Text of a packet kept exactly as written: codes, ids, numbers."""

Text = Annotated[str, AfterValidator(xml_chars), AfterValidator(to_nfc)]
"""Free text of a packet, normalised to NFC."""


class BusinessDocType(IntEnum):
    """``BussinessDocType``: what a document packet does to the document it carries."""

    NEW = 0
    REVOKE = 1
    UPDATE = 2
    REPLACE = 3


class StatusCode(StrEnum):
    """Business status codes of QCVN 102:2016 in use (07–12 and 14 are defined by no one)."""

    ARRIVED = "01"
    REFUSED = "02"
    ACCEPTED = "03"
    ASSIGNED = "04"
    PROCESSING = "05"
    DONE = "06"
    TAKE_BACK_REQUESTED = "13"
    CHANGE_AGREED = "15"
    CHANGE_REFUSED = "16"


STATUS_MEANINGS = {
    StatusCode.ARRIVED: "arrived (Đã đến)",
    StatusCode.REFUSED: "refused (Từ chối tiếp nhận)",
    StatusCode.ACCEPTED: "accepted (Đã tiếp nhận)",
    StatusCode.ASSIGNED: "assigned (Phân công)",
    StatusCode.PROCESSING: "being handled (Đang xử lý)",
    StatusCode.DONE: "done (Hoàn thành)",
    StatusCode.TAKE_BACK_REQUESTED: "take-back requested (Yêu cầu lấy lại)",
    StatusCode.CHANGE_AGREED: "update or take-back agreed (Đồng ý cập nhật / lấy lại)",
    StatusCode.CHANGE_REFUSED: "update or take-back refused (Từ chối cập nhật / lấy lại)",
}


def _status_number(text: str) -> str:
    stripped = text.strip()
    if not re.fullmatch(r"[0-9]{1,2}", stripped) or not 1 <= int(stripped) <= 99:
        raise ValueError(f"status code {text!r} is not a number from 01 to 99")
    return text


StatusCodeText = Annotated[str, AfterValidator(_status_number)]
"""A status code as written ("01", or " 1 " from a sloppy sender); ``status_code_of`` reads it.
Codes outside ``StatusCode`` are kept and warned about."""


def status_code_of(text: str) -> str:
    """The two-digit form of a status code as written: " 1 " is "01"."""
    return f"{int(text.strip()):02d}"


def _parse_date(text: str) -> tuple[date | None, WarningCode | None]:
    """Read a date in the standard form or a known variant; say how it deviates."""
    stripped = text.strip()
    for pattern, order, deviation in _DATE_SHAPES:
        match = pattern.fullmatch(stripped)
        if match is None:
            continue
        parts = dict(zip(order, map(int, match.groups()), strict=True))
        try:
            value = date(parts["y"], parts["m"], parts["d"])
        except ValueError:
            return None, WarningCode.IMPOSSIBLE_DATE
        return value, deviation
    return None, WarningCode.UNREADABLE_DATE


_DATE_SHAPES = (
    (re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})", re.ASCII), "ymd", None),
    (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})", re.ASCII), "dmy", WarningCode.DATE_FORMAT),
    (re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})", re.ASCII), "ymd", WarningCode.DATE_FORMAT),
)


class _AsWritten(BaseModel):
    """A value kept as the packet wrote it, with its typed reading derived from the text."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    text: str

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"text": data}
        if isinstance(data, date):
            return {"text": cls._write(data)}
        return data

    @classmethod
    def _write(cls, value: date) -> str:
        raise NotImplementedError

    @property
    def value(self) -> date | None:
        """The typed reading, or None when the text cannot be read as one."""
        raise NotImplementedError

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented way to export it
    @property
    def iso(self) -> str | None:
        """ISO 8601 form for JSON consumers."""
        value = self.value
        return value.isoformat() if value else None

    def __str__(self) -> str:
        return self.text


class EdxmlDate(_AsWritten):
    """A date as the packet wrote it (standard ``yyyy/MM/dd``); ``value`` when it is a real date."""

    @classmethod
    def _write(cls, value: date) -> str:
        return value.strftime(DATE_FORMAT)

    @property
    def value(self) -> date | None:
        """The calendar date, or None for an impossible or unreadable one."""
        return _parse_date(self.text)[0]


class EdxmlTimestamp(_AsWritten):
    """A time as the packet wrote it (``yyyy/MM/dd HH:mm:ss``, Vietnam time)."""

    @classmethod
    def _write(cls, value: date) -> str:
        if isinstance(value, datetime) and value.tzinfo:
            value = value.astimezone(VIETNAM_TZ)
        return value.strftime(TIMESTAMP_FORMAT)

    @property
    def value(self) -> datetime | None:
        """The moment in Vietnam time, or None when unreadable."""
        return _parse_timestamp(self.text)[0]


_TIME = re.compile(r"(.+?)[ T](\d{1,2}):(\d{2})(?::(\d{2}))?", re.ASCII)


def _parse_timestamp(text: str) -> tuple[datetime | None, WarningCode | None]:
    match = _TIME.fullmatch(text.strip())
    if match is None:
        day, deviation = _parse_date(text)
        if day is None:
            return None, deviation
        return datetime(day.year, day.month, day.day, tzinfo=VIETNAM_TZ), WarningCode.DATE_FORMAT
    day, deviation = _parse_date(match.group(1))
    if day is None:
        return None, deviation
    hour, minute, second = int(match.group(2)), int(match.group(3)), int(match.group(4) or 0)
    if hour > 23 or minute > 59 or second > 59:
        return None, WarningCode.IMPOSSIBLE_DATE
    stamp = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=VIETNAM_TZ)
    if deviation is None and (match.group(4) is None or "T" in text):
        deviation = WarningCode.DATE_FORMAT
    return stamp, deviation


# --- lenient checks, run while reading --------------------------------------------------------

Finding = tuple[WarningCode, str]
Check = Callable[[str], list[Finding]]


def check_agency_code(text: str) -> list[Finding]:
    """Warn about codes outside the standard shape; they are kept as written."""
    problem = AgencyCode.read(text).problem
    return [(WarningCode.AGENCY_CODE_SHAPE, problem)] if problem else []


def check_date(text: str) -> list[Finding]:
    """Warn about non-standard, impossible or unreadable dates."""
    _, deviation = _parse_date(text)
    return [(deviation, _DATE_MESSAGES[deviation].format(text=text))] if deviation else []


def check_timestamp(text: str) -> list[Finding]:
    """Warn about timestamps not written ``yyyy/MM/dd HH:mm:ss``."""
    _, deviation = _parse_timestamp(text)
    return [(deviation, _DATE_MESSAGES[deviation].format(text=text))] if deviation else []


_DATE_MESSAGES = {
    WarningCode.DATE_FORMAT: "{text!r} is not written as QCVN 102 expects (yyyy/MM/dd)",
    WarningCode.IMPOSSIBLE_DATE: "{text!r} is not a date that exists",
    WarningCode.UNREADABLE_DATE: "{text!r} cannot be read as a date",
}


def check_document_id(text: str) -> list[Finding]:
    """``DocumentId`` is ``OrganId,yyyy/MM/dd,Number/Notation``: check each part."""
    parts = text.split(",")
    if len(parts) != 3 or "/" not in parts[2]:
        return [
            (
                WarningCode.DOCUMENT_ID_SHAPE,
                f"{text!r} is not of the form OrganId,yyyy/MM/dd,Number/Notation",
            )
        ]
    return check_agency_code(parts[0]) + check_date(parts[1])


def check_range(low: int, high: int) -> Check:
    """A check that a small integer field lies in ``low..high``."""

    def check(text: str) -> list[Finding]:
        stripped = text.strip()
        # [0-9] and not isdigit(): "²" is a digit to Python but not a number to int().
        if re.fullmatch(r"[0-9]{1,9}", stripped) and low <= int(stripped) <= high:
            return []
        return [(WarningCode.VALUE_OUT_OF_RANGE, f"{text!r} is not a number from {low} to {high}")]

    return check
