"""The daemon's log: text for people, JSON lines for machines, levels per module."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.daemon import logs
from lgsp_adapter.daemon.logs import JsonLines, LoggingSettings
from tests.agency_server import AgencyServer, agency_server
from tests.test_daemon_process import DOCUMENT, TOKEN, config, log_of, start


@pytest.fixture
def restored() -> Iterator[None]:
    """Leave the root logger and the capped ones as the test found them."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    capped = logging.getLogger("aiormq").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiormq").setLevel(capped)
    logging.getLogger("lgsp_adapter.exchange.relay").setLevel(logging.NOTSET)


def test_an_event_line_in_json_carries_its_entry_as_fields() -> None:
    entry = AuditEntry(
        event=AuditEvent.DELIVERED,
        packet_id=uuid.uuid4(),
        sender="000.00.00.H56",
        recipient="000.21.00.H56",
        kind="edoc",
        document_id="000.00.00.H56,2026/11/20,1234/UBND",
        outcome="ok",
        detail="HTTP 200 on attempt 1",
    )
    record = logging.LogRecord(
        "lgsp_adapter.exchange.receiving", logging.INFO, "x", 1, entry.line(), None, None
    )
    record.audit_entry = entry
    line = json.loads(JsonLines().format(record))
    assert line["message"] == entry.line()
    assert (line["event"], line["packet_id"], line["recipient"]) == (
        "delivered",
        str(entry.packet_id),
        "000.21.00.H56",
    )
    assert "document_id" not in line  # as in the text line
    assert line["level"] == "INFO"
    assert line["at"].endswith("Z")  # as the API's and the audit log's times


def test_an_error_line_carries_its_traceback() -> None:
    try:
        raise ValueError("bad")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, "x", 1, "failed", None, sys.exc_info())
    line = json.loads(JsonLines().format(record))
    assert "ValueError: bad" in line["error"]


def test_levels_are_set_per_module_and_aiormq_stays_capped(restored: None) -> None:
    logs.configure(
        LoggingSettings(
            level="warning", levels={"lgsp_adapter.exchange.relay": "DEBUG", "aiormq": "DEBUG"}
        )
    )
    assert logging.getLogger().level == logging.WARNING
    assert logging.getLogger("lgsp_adapter.exchange.relay").level == logging.DEBUG
    assert logging.getLogger("aiormq").getEffectiveLevel() == logging.INFO  # bodies
    with pytest.raises(ValueError, match="not a log level"):
        LoggingSettings(level="loud")


@pytest.mark.asyncio
async def test_the_daemon_logs_json_lines_with_a_packets_id(tmp_path: Path) -> None:
    async with agency_server(AgencyServer()) as agency:
        path = config(tmp_path, agency.url)
        path.write_text(path.read_text() + '\n[log]\nformat = "json"\n')
        process, url = await start(path)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"{url}/v1/packets",
                    data=DOCUMENT,
                    headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"},
                ) as response,
            ):
                packet_id = (await response.json())["packet_id"]
            await asyncio.sleep(1)
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=20)
    lines = [json.loads(line) for line in log_of(path).read_text().splitlines()]
    events = [line["event"] for line in lines if line.get("packet_id") == packet_id]
    assert events[:2] == ["received", "published"]
    assert "delivered" in events
