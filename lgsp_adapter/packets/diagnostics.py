"""Warnings about input we accepted but that deviates from the standard.

Real packets are messy (see ``docs/edxml.md``): we accept what can be understood, keep the original
text, and report every deviation with its location, so that an operator can tell a sender what to
fix without us ever dropping a packet over a cosmetic fault.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class WarningCode(StrEnum):
    """Stable warning codes: reports and tests match on them."""

    AGENCY_CODE_SHAPE = "agency_code.shape"
    DATE_FORMAT = "date.format"
    IMPOSSIBLE_DATE = "date.impossible"
    UNREADABLE_DATE = "date.unreadable"
    DOCUMENT_ID_SHAPE = "edxml.document_id_shape"
    UNKNOWN_ELEMENT = "edxml.unknown_element"
    UNEXPECTED_STRUCTURE = "edxml.unexpected_structure"
    DUPLICATE_ELEMENT = "edxml.duplicate_element"
    SPELLING = "edxml.spelling"
    STRAY_TEXT = "edxml.stray_text"
    IGNORED_ATTRIBUTE = "edxml.ignored_attribute"
    FOREIGN_NAMESPACE = "edxml.foreign_namespace"
    TEXT_NOT_NFC = "text.not_nfc"
    VALUE_OUT_OF_RANGE = "edxml.value_out_of_range"
    UNUSED_STATUS_CODE = "edxml.unused_status_code"
    MISSING_RECOMMENDED = "edxml.missing_recommended"
    CONTENT_TYPE_MISMATCH = "edxml.content_type_mismatch"
    UNSAFE_ATTACHMENT_NAME = "edxml.unsafe_attachment_name"
    TOO_MANY_WARNINGS = "warnings.truncated"


class Diagnostic(BaseModel):
    """One deviation: what, where (element path and source line) and in words."""

    model_config = ConfigDict(frozen=True)

    code: WarningCode
    message: str
    path: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}, {self.path}" if self.line else self.path
        return f"{self.code} ({where}): {self.message}"


class Diagnostics:
    """Collects warnings while one packet is read, up to ``limit``: a hostile packet can make
    millions, and the first hundred say all a person needs."""

    def __init__(self, limit: int = 100) -> None:
        self._items: list[Diagnostic] = []
        self._limit = limit
        self._dropped = 0

    def warn(self, code: WarningCode, message: str, path: str, line: int | None = None) -> None:
        """Record a deviation at ``path``."""
        if len(self._items) < self._limit:
            self._items.append(Diagnostic(code=code, message=message, path=path, line=line))
        else:
            self._dropped += 1

    @property
    def items(self) -> list[Diagnostic]:
        """The warnings, with a last one counting those beyond the limit."""
        if not self._dropped:
            return list(self._items)
        summary = Diagnostic(
            code=WarningCode.TOO_MANY_WARNINGS,
            message=f"{self._dropped} more warnings not listed",
            path="/",
        )
        return [*self._items, summary]
