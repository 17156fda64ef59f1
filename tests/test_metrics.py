"""/metrics after a known exchange: the series say what happened, on both buses."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.daemon.metrics import Metrics
from lgsp_adapter.store import DeliveryState
from lgsp_adapter.store.sqlite import SqliteStore
from tests.agency_server import AgencyServer, agency_server
from tests.test_exchange_rabbitmq import (
    BROKER,
    COMMUNE,
    PROVINCE,
    daemon,
    letter_to,
    remove_topology,
)
from tests.test_registry_web import PROVINCE_TOKEN
from tests.test_store import RECIPIENTS, packet, received

ELSEWHERE = "000.22.00.H56"  # the commune whose system is down: its letter is dead-lettered
RETRY_DELAYS = [0.1]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.asyncio
@pytest.mark.parametrize("bus", ["embedded", "rabbitmq"])
async def test_the_series_tell_the_exchange_that_happened(tmp_path: Path, bus: str) -> None:
    exchange = f"lgsp.test.{uuid.uuid4().hex[:12]}"
    up, down = AgencyServer(), AgencyServer(then=503)
    try:
        async with agency_server(up), agency_server(down):
            config = Settings.model_validate(
                {
                    "bus": {"url": BROKER, "exchange": exchange} if bus == "rabbitmq" else {},
                    "http": {"port": 0},
                    "store": {"path": str(tmp_path / "store.sqlite3")},
                    "delivery": {"quick_retries": 0, "retry_delays_s": RETRY_DELAYS},
                    "agencies": [
                        {"code": PROVINCE, "name": "tỉnh", "endpoint": {"mode": "pull"}},
                        {"code": COMMUNE, "name": "xã", "endpoint": {"url": up.url}},
                        {"code": ELSEWHERE, "name": "xã 2", "endpoint": {"url": down.url}},
                    ],
                    "clients": [
                        {"name": "province", "token": PROVINCE_TOKEN, "agencies": [PROVINCE]}
                    ],
                }
            )
            async with daemon(config) as url, aiohttp.ClientSession() as session:
                headers = {
                    "Authorization": f"Bearer {PROVINCE_TOKEN}",
                    "Content-Type": "application/xml",
                }
                letters = [letter_to(COMMUNE, number=n) for n in (1, 2, 3)]
                for body in [*letters, letter_to(ELSEWHERE), b"<edXML"]:
                    async with session.post(f"{url}/v1/packets", data=body, headers=headers):
                        pass

                async def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
                    async with session.get(f"{url}/metrics") as response:
                        assert response.status == 200
                        assert response.content_type == "text/plain"
                        return samples(await response.text())

                deadline = time.monotonic() + 20
                found = await scrape()
                while time.monotonic() < deadline and not (
                    value(found, "lgsp_deliveries", state="delivered") == 3
                    and value(found, "lgsp_deliveries", state="dead_lettered") == 1
                    and (
                        bus == "embedded"
                        or value(found, "lgsp_queue_messages", queue="dead", agency=ELSEWHERE) == 1
                    )
                ):
                    await asyncio.sleep(0.1)
                    found = await scrape()
    finally:
        if bus == "rabbitmq":
            await remove_topology(exchange, [PROVINCE, COMMUNE, ELSEWHERE], RETRY_DELAYS)

    def count(event: str) -> float:
        return value(found, "lgsp_packet_events_total", event=event, kind="edoc")

    assert (count("received"), count("delivered"), count("dead_lettered")) == (4, 3, 1)
    assert count("retried") == len(RETRY_DELAYS)
    assert value(found, "lgsp_rejections_total", code="xml.malformed") == 1
    assert value(found, "lgsp_delivery_latency_seconds_count") == 3
    assert value(found, "lgsp_delivery_latency_seconds_sum") > 0
    assert value(found, "lgsp_deliveries", state="delivered") == 3
    assert value(found, "lgsp_deliveries", state="dead_lettered") == 1
    assert value(found, "lgsp_outbox_packets") == 0
    assert value(found, "lgsp_bus_connected") == 1
    assert value(found, "lgsp_audit_append_seconds_count") >= 5  # one write per submission at least
    if bus == "rabbitmq":
        assert value(found, "lgsp_queue_messages", queue="dead", agency=ELSEWHERE) == 1
        assert value(found, "lgsp_queue_messages", queue="agency", agency=COMMUNE) == 0
    else:  # the embedded bus has no queues of its own: the deliveries' states say it
        assert not any(name == "lgsp_queue_messages" for name, _ in found)


@pytest.mark.asyncio
async def test_a_forged_kind_is_no_series_of_its_own_and_a_repeat_receipt_is_timed_once(
    tmp_path: Path,
) -> None:
    async with await SqliteStore.open(tmp_path / "s.sqlite3") as store:
        metrics = Metrics(store)
        forged = [
            AuditEntry(event=AuditEvent.REJECTED, kind=f"evil-{n}", outcome="bus.forged")
            for n in range(50)
        ]
        metrics.committed(forged, 0.001)
        p = packet()
        await store.accept(p, [received(p)])
        for _ in range(2):  # a receipt sent again
            await store.update_delivery(
                p.id, RECIPIENTS[0], DeliveryState.DELIVERED, entries=[], attempted=True
            )
            await metrics.ended(p.id, RECIPIENTS[0])
        found = samples(metrics.text().decode())
    kinds = {
        dict(labels).get("kind") for name, labels in found if name == "lgsp_packet_events_total"
    }
    assert kinds == {"other"}
    assert value(found, "lgsp_delivery_latency_seconds_count") == 1


@pytest.mark.asyncio
async def test_an_observer_that_fails_does_not_undo_a_committed_write(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "s.sqlite3") as store:

        def broken(entries: Sequence[AuditEntry], seconds: float) -> None:
            raise RuntimeError("a metric's bug")

        store.observe(broken)
        p = packet()
        await store.accept(p, [received(p)])  # no error for the caller
        assert await store.packet(p.id) == p


@pytest.mark.asyncio
async def test_signature_verdicts_are_counted_and_a_strange_outcome_makes_no_series(
    tmp_path: Path,
) -> None:
    async with await SqliteStore.open(tmp_path / "s.sqlite3") as store:
        metrics = Metrics(store)
        verdicts = ["valid", "valid", "invalid", "made-up"]
        metrics.committed(
            [AuditEntry(event=AuditEvent.SIGNATURE, kind="edoc", outcome=v) for v in verdicts],
            0.001,
        )
        found = samples(metrics.text().decode())
    assert value(found, "lgsp_signature_verdicts_total", verdict="valid") == 2
    assert value(found, "lgsp_signature_verdicts_total", verdict="invalid") == 1
    seen = {dict(labels).get("verdict") for name, labels in found if "signature" in name}
    assert "made-up" not in seen
