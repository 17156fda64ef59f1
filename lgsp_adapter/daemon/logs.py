"""The daemon's log: one line per packet event, ids first; readable text for people, or JSON
lines for machines (a log shipper, journald's JSON, Loki), with levels set per module.

A packet event is logged with ``audit.log_event``, which carries the audit entry along with the
line, so the JSON form has its fields (packet id, event, parties, outcome) as fields, not as
text to parse again. Documents never reach the log (only their digests and ids do).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lgsp_adapter.audit import AuditEntry

# aiormq logs each frame at DEBUG (documents' bodies). No setting may open it below INFO
# (tests/test_no_secrets_in_logs.py).
_CAPPED = {"aiormq": logging.INFO}
# What an event's JSON line carries of its entry: ids, parties, outcome. Not the document id
# (a person's case number may be in it), as the text line does not have it either.
_EVENT_FIELDS = ("event", "packet_id", "sender", "recipient", "kind", "outcome", "detail", "actor")


class LogFormat(StrEnum):
    """How lines are written."""

    TEXT = "text"
    JSON = "json"


class LoggingSettings(BaseModel):
    """The daemon's log on stderr."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: LogFormat = Field(
        LogFormat.TEXT, description="text for people, json for machines (one object a line)."
    )
    level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    levels: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'Per module, e.g. {"aio_pika" = "WARNING", "lgsp_adapter.exchange.relay" = "DEBUG"}.'
        ),
    )

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        return _level_name(value)

    @field_validator("levels")
    @classmethod
    def _known_levels(cls, value: dict[str, str]) -> dict[str, str]:
        return {module: _level_name(level) for module, level in value.items()}


def _level_name(value: str) -> str:
    name = value.strip().upper()
    if name not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(f"{value!r} is not a log level (DEBUG, INFO, WARNING, ERROR)")
    return name


class JsonLines(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, an event's fields, and
    the traceback of an error."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            # RFC 3339 with Z, as everywhere the daemon writes a time (API, audit log).
            "at": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry = getattr(record, "audit_entry", None)
        if isinstance(entry, AuditEntry):
            fields = entry.fields()
            line.update({name: fields[name] for name in _EVENT_FIELDS if fields.get(name)})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(settings: LoggingSettings) -> None:
    """Set the root handler on stderr, its format and the levels."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.format is LogFormat.JSON:
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
    for module, level in settings.levels.items():
        logging.getLogger(module).setLevel(level)
    for module, floor in _CAPPED.items():
        capped = logging.getLogger(module)
        if capped.getEffectiveLevel() < floor:
            capped.setLevel(floor)
