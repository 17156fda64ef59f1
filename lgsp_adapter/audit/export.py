"""Exports of the log for spreadsheets (CSV) and programs (JSON Lines), streamed page by page so
millions of entries never sit in memory at once.

JSON Lines are exact: each line is an entry's index and fields, from which its leaf can be
recomputed. CSV is for reading: a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading ``'`` so a spreadsheet shows it instead of running it as a
formula.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator

from lgsp_adapter.audit.entry import FIELDS, AuditEntry
from lgsp_adapter.audit.query import MAX_PAGE, AuditQuery
from lgsp_adapter.audit.store import AuditStore

FORMATS = ("csv", "jsonl")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


async def matching(store: AuditStore, query: AuditQuery) -> AsyncIterator[AuditEntry]:
    """Every entry matching ``query`` from its ``after`` on, whatever its page size."""
    page = query.model_copy(update={"limit": MAX_PAGE})
    while True:
        entries = await store.query(page)
        for entry in entries:
            yield entry
        if len(entries) < MAX_PAGE:
            return
        page = page.next_page(entries[-1].index or 0)


async def gather(store: AuditStore, query: AuditQuery, at_most: int) -> list[AuditEntry]:
    """The matching entries, reading no more than ``at_most`` + 1 (so a caller can tell that
    there were too many without holding them all)."""
    found: list[AuditEntry] = []
    async for entry in matching(store, query):
        found.append(entry)
        if len(found) > at_most:
            break
    return found


def header(kind: str) -> str:
    """What a file of ``kind`` starts with."""
    return _csv_line(["index", *FIELDS]) if kind == "csv" else ""


def line(kind: str, entry: AuditEntry) -> str:
    """One entry as a line of ``kind``."""
    fields = entry.fields()
    if kind == "csv":
        return _csv_line([str(entry.index), *(_cell(fields[name]) for name in FIELDS)])
    document = {"index": entry.index, **{k: v for k, v in fields.items() if v is not None}}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n"


def _cell(value: str | None) -> str:
    if value is None:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv_line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue()
