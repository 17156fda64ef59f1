"""A search of the audit log: filters and a page, validated once for the CLI and HTTP alike.

Pages are keyed by index (``after``: the last index of the previous page), not by offset, so
paging through a log that grows underneath stays exact and each page is one index seek.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lgsp_adapter.audit.entry import AuditEvent
from lgsp_adapter.errors import ErrorCode, LgspError, PermanentError
from lgsp_adapter.packets.agency_code import AgencyCode

MAX_PAGE = 1000
MAX_INDEX = 10**18 - 1  # what a store's 64-bit integer holds, with room


class BadQuery(PermanentError):
    """A query the log cannot answer as asked (HTTP 400)."""

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(ErrorCode.AUDIT_BAD_QUERY, message, details=details)


class AuditQuery(BaseModel):
    """Which entries: all filters must hold; times are [since, until)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    since: datetime | None = None
    until: datetime | None = None
    agency: str | None = Field(None, description="Sender or recipient.")
    kind: str | None = Field(None, max_length=200)
    document_id: str | None = Field(None, max_length=500)
    outcome: str | None = Field(None, max_length=200)
    event: AuditEvent | None = None
    packet_id: UUID | None = None
    after: int | None = Field(None, ge=-1, le=MAX_INDEX, description="Entries after this index.")
    before: int | None = Field(None, ge=0, le=MAX_INDEX, description="Entries before this index.")
    newest_first: bool = False
    limit: int = Field(100, ge=1, le=MAX_PAGE)

    @field_validator("after", "before", "limit", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        # As written in a URL or on a command line: lax pydantic would also read " 12" or
        # "1_0" as numbers.
        if isinstance(value, str) and not re.fullmatch(r"-?[0-9]{1,18}", value):
            raise ValueError(f"{value[:40]!r} is not a whole number")
        return value

    @field_validator("since", "until", mode="before")
    @classmethod
    def _iso_8601(cls, value: Any) -> Any:
        # Lax pydantic would read "0.5" or 1700000000 as seconds since 1970: a typo would
        # become a search of 1970 rather than an error.
        if isinstance(value, datetime):
            return value
        if not isinstance(value, str):
            raise ValueError("a time is ISO 8601 text, e.g. 2026-11-27T08:00:00+07:00")
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value[:40]!r} is not an ISO 8601 time, e.g. 2026-11-27T08:00:00+07:00"
            ) from None

    @field_validator("since", "until")
    @classmethod
    def _zoned(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("a time must carry its zone, e.g. 2026-11-27T08:00:00+07:00")
        return value

    @field_validator("agency")
    @classmethod
    def _agency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(AgencyCode.parse(value))
        except LgspError as exc:
            raise ValueError(exc.message) from exc

    @model_validator(mode="after")
    def _range(self) -> AuditQuery:
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> AuditQuery:
        """Build from user input (query parameters, options); ``BadQuery`` naming each fault."""
        try:
            return cls.model_validate({k: v for k, v in values.items() if v not in (None, "")})
        except ValidationError as exc:
            problems = [
                {"field": ".".join(str(p) for p in e["loc"]) or "query", "problem": e["msg"]}
                for e in exc.errors()
            ]
            text = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
            raise BadQuery(f"bad audit query ({text})", details=problems) from exc

    def next_page(self, last_index: int) -> AuditQuery:
        """The same query, for the page that follows the entry ``last_index``."""
        key = "before" if self.newest_first else "after"
        return self.model_copy(update={key: last_index})
