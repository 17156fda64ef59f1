"""Routes: a range of agency codes reached through one endpoint. Patterns and their checks, the
directory's answers, and a real exchange to codes of a range on the embedded bus and on
RabbitMQ (one queue for the range, bound by its patterns), retried through the range's own
retry queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
from pydantic import ValidationError

from lgsp_adapter.cli.demo_packets import COMMUNES, DEPARTMENT, document
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.errors import ErrorCode, LgspError
from lgsp_adapter.packets.agency_code import AgencyCode
from lgsp_adapter.registry.routes import check_pattern, matches, overlap
from lgsp_adapter.registry.service import Registry
from lgsp_adapter.store.sqlite import SqliteStore
from tests.agency_server import AgencyServer, agency_server
from tests.cli_process import lgsp_adapter
from tests.test_axis_client import SECRET, SYSTEM, LoopbackAxis, axis
from tests.test_exchange_embedded import settled, submit
from tests.test_exchange_rabbitmq import BROKER, daemon, remove_topology

PROVINCE = "000.00.00.H56"
TOKEN = "province-office-token-0123456789"
AUDITOR = "state-audit-office-token-0123456789"
INTEGRATOR = "integrator-of-the-province-0123456789"
__all__ = ["axis"]
GOVERNMENT = ["000.00.00.G22", "000.01.00.G22"]  # the Government Office and one of its units
OUTSIDE = "000.00.00.G10"  # in no route, served nowhere


def letter(to: tuple[str, ...], number: str) -> bytes:
    """The province's letter to ``to`` (the demo's letter, readdressed)."""
    placeholders = [DEPARTMENT, *COMMUNES][: len(to)]
    text = document(tuple(placeholders), number)
    for placeholder, code in zip(placeholders, to, strict=True):
        text = text.replace(placeholder.encode(), code.encode())
    return text


def route(url: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "government-office",
        "codes": ["*.*.*.G22"],
        "label": "Văn phòng Chính phủ",
        "endpoint": {"url": url, "timeout_s": 2},
        **fields,
    }


CLIENTS = [
    {"name": "province", "token": TOKEN, "agencies": [PROVINCE]},
    {"name": "kiem-toan", "token": AUDITOR, "role": "auditor"},
    {"name": "integrator", "token": INTEGRATOR, "role": "integrator"},
]


def settings(
    tmp_path: Path,
    province: str,
    routes: list[dict[str, Any]],
    agencies: tuple[dict[str, Any], ...] = (),
    **more: Any,
) -> Settings:
    served = {"code": PROVINCE, "name": "UBND tỉnh", "endpoint": {"url": province}}
    return Settings.model_validate(
        {
            "http": {"port": 0},
            "store": {"path": str(tmp_path / "store.sqlite3")},
            "delivery": {"quick_retries": 0, "retry_delays_s": [0.3, 0.3]},
            "daemon": {"drain_s": 5},
            "agencies": [served, *agencies],
            "clients": CLIENTS,
            "routes": routes,
            **more,
        }
    )


def test_patterns_are_codes_with_wildcard_words() -> None:
    assert check_pattern("*.*.*.G22") == "*.*.*.G22"
    assert check_pattern("000.*.*.H40") == "000.*.*.H40"
    for bad in ("*.*.G22", "*.*.*.g22", "#.G22", "*.*.*.*", "000.00.00.G2*", "a.b.c.d.e"):
        with pytest.raises(ValueError, match=r"pattern|every code"):
            check_pattern(bad)
    assert matches("*.*.*.G22", "000.01.00.G22")
    assert not matches("*.*.*.G22", "000.01.00.G23")
    assert not matches("*.*.*.G22", "28.22.H17")
    assert overlap("*.*.*.G22", "000.01.*.*")
    assert not overlap("*.*.*.G22", "*.*.*.H40")


def test_settings_refuse_ranges_that_would_deliver_twice(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/"
    cases = [
        ([route(url), route(url, name="other", codes=["000.01.*.*"])], "overlap"),
        ([route(url, codes=["*.*.*.H56"])], "in route government-office's range"),
        ([route(url), route(url)], "share a name"),
        ([route(url, endpoint={"mode": "pull"})], "pushed or sent to an axis"),
    ]
    for routes, words in cases:
        with pytest.raises(ValidationError, match=words):
            settings(tmp_path, url, routes)
    with pytest.raises(ValidationError, match="in route government-office's range"):
        settings(tmp_path, url, [route(url)], known_agencies=[{"code": GOVERNMENT[1]}])
    with_receipts = route(url, endpoint={"url": url, "receipts_url": url})
    with pytest.raises(ValidationError, match="no receipts_url"):
        settings(tmp_path, url, [with_receipts])
    with pytest.raises(ValidationError, match="ranges no route has"):
        settings(
            tmp_path,
            url,
            [route(url)],
            clients=[{"name": "gateway", "token": "t" * 30, "ranges": ["*.*.*.H40"]}],
        )


@pytest.mark.asyncio
async def test_the_directory_serves_a_range_and_the_registry_keeps_out_of_it(
    tmp_path: Path,
) -> None:
    config = settings(tmp_path, "http://127.0.0.1:9/", [route("http://127.0.0.1:8/")])
    directory = config.directory()
    unit = directory.served(AgencyCode.parse(GOVERNMENT[1]))
    assert unit is not None
    assert (str(unit.endpoint.url), unit.enabled) == ("http://127.0.0.1:8/", True)
    assert directory.is_known(AgencyCode.parse(GOVERNMENT[0]))
    assert not directory.is_known(AgencyCode.parse(OUTSIDE))
    assert directory.queue_key(GOVERNMENT[1]) == "route-government-office"
    assert directory.queue_key(PROVINCE) == PROVINCE
    async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
        registry = Registry(store.registry, directory)
        body = {"code": GOVERNMENT[1], "name": "Vụ", "endpoint": {"mode": "pull"}}
        with pytest.raises(LgspError) as refused:
            await registry.create(body, actor="integrator", issue_token=False)
        assert refused.value.code is ErrorCode.REGISTRY_DUPLICATE
        assert "route government-office" in refused.value.message


@asynccontextmanager
async def ranged(
    tmp_path: Path, script: list[int], bus: dict[str, Any] | None = None
) -> AsyncIterator[tuple[str, AgencyServer]]:
    """A daemon serving the province by name and the Government Office's codes by a route to
    one endpoint, which answers as ``script`` says."""
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        office = await stack.enter_async_context(agency_server(AgencyServer(script=script)))
        extra: dict[str, Any] = {"bus": bus} if bus else {}
        config = settings(tmp_path, province.url, [route(office.url)], **extra)
        yield await stack.enter_async_context(daemon(config)), office


async def exchange_with_the_range(url: str, office: AgencyServer) -> None:
    sent = letter(tuple(GOVERNMENT), "2201")
    state = await settled(url, await submit(url, sent), timeout_s=20)
    assert {d["recipient"]: d["state"] for d in state["deliveries"]} == dict.fromkeys(
        GOVERNMENT, "delivered"
    )
    retried = [e for e in state["history"] if e["event"] == "retried"]
    assert len(retried) == 1  # the range's endpoint failed once: retried on the schedule
    assert [r.body == sent for r in office.received] == [True, True, True]
    # A code in no route is not routable: refused at once, nothing kept.
    async with aiohttp.ClientSession() as session:
        answer = await session.post(
            f"{url}/v1/packets",
            data=letter((OUTSIDE,), "2202"),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"},
        )
        assert answer.status == 422, await answer.text()
        assert (await answer.json())["error"]["code"] == "packet.unknown_recipient"


@pytest.mark.asyncio
async def test_a_range_is_delivered_through_its_endpoint_on_the_embedded_bus(
    tmp_path: Path,
) -> None:
    async with ranged(tmp_path, [503]) as (url, office):
        await exchange_with_the_range(url, office)


@pytest.mark.asyncio
async def test_a_range_is_one_queue_on_rabbitmq(tmp_path: Path) -> None:
    exchange = f"lgsp-test-routes-{uuid.uuid4().hex[:8]}"
    try:
        async with ranged(tmp_path, [503], {"url": BROKER, "exchange": exchange}) as (url, office):
            await exchange_with_the_range(url, office)
    finally:
        await remove_topology(exchange, [PROVINCE, "route-government-office"], [0.3])


@pytest.mark.asyncio
async def test_a_range_reached_through_an_axis_is_sent_there(
    axis: tuple[LoopbackAxis, str], tmp_path: Path
) -> None:
    state, axis_url = axis
    auth = {"kind": "axis", "system_id": SYSTEM, "secret": SECRET}
    national = route(axis_url, endpoint={"mode": "axis", "url": axis_url, "auth": auth})
    async with AsyncExitStack() as stack:
        province = await stack.enter_async_context(agency_server(AgencyServer()))
        config = settings(tmp_path, province.url, [national], axis={"poll_s": 3600})
        url = await stack.enter_async_context(daemon(config))
        sent = letter((GOVERNMENT[1],), "2203")
        state_of = await settled(url, await submit(url, sent), timeout_s=20)
    [delivery] = state_of["deliveries"]
    assert (delivery["recipient"], delivery["state"]) == (GOVERNMENT[1], "delivered")
    assert list(state.documents.values()) == [sent]  # sendEdoc, byte for byte
    sends = [seen for seen in state.seen if seen["operation"] == "sendEdoc"]
    assert [(s["from"], json.loads(s["to"])) for s in sends] == [(PROVINCE, GOVERNMENT[1])]


@pytest.mark.asyncio
async def test_lgsp_adapter_declare_binds_a_routes_queue_by_its_patterns(tmp_path: Path) -> None:
    # What an administrator declares for locked-down daemons: the route's queues, bound so
    # that a packet for any code of the range lands in its one queue, and no other's.
    exchange = f"lgsp-test-declare-routes-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "lgsp.toml"
    config.write_text(
        f'[bus]\nurl = "{BROKER}"\nexchange = "{exchange}"\n'
        f'[[routes]]\nname = "national"\ncodes = ["*.*.*.G22", "*.*.*.H40"]\n'
        '[routes.endpoint]\nurl = "http://127.0.0.1:9/"\n'
    )
    try:
        status, out, err = await lgsp_adapter("declare", "--config", str(config))
        assert status == 0, err
        assert f"{exchange}.agency.route-national" in out.split()
        connection = await aio_pika.connect(BROKER)
        async with connection:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            target = await channel.get_exchange(exchange)
            for key in ("edoc.000.05.00.G22", "status.000.00.03.H40"):
                await target.publish(aio_pika.Message(b"x"), routing_key=key, mandatory=True)
            with pytest.raises(aio_pika.exceptions.DeliveryError):  # in no range: returned
                await target.publish(aio_pika.Message(b"x"), "edoc.000.00.00.G10", mandatory=True)
            queue = await channel.declare_queue(f"{exchange}.agency.route-national", passive=True)
            assert queue.declaration_result.message_count == 2
        permissions = await lgsp_adapter("broker-permissions", "lgsp-h56", "--config", str(config))
        assert r"agency|dead|retry)\.(route\-national)" in permissions[1]
    finally:
        await remove_topology(exchange, ["route-national"], [])


async def queue_depth(exchange: str, key: str) -> int:
    connection = await aio_pika.connect(BROKER)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"{exchange}.agency.{key}", passive=True)
        return int(queue.declaration_result.message_count or 0)


async def forged_entries(url: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        answer = await session.get(
            f"{url}/v1/audit/entries",
            params={"outcome": "bus.forged"},
            headers={"Authorization": f"Bearer {AUDITOR}"},
        )
        entries: list[dict[str, Any]] = (await answer.json())["entries"]
        return entries


@pytest.mark.asyncio
async def test_a_range_changed_between_starts_delivers_once_and_leaves_no_stale_binding(
    tmp_path: Path,
) -> None:
    exchange = f"lgsp-test-reroutes-{uuid.uuid4().hex[:8]}"
    bus = {"url": BROKER, "exchange": exchange}
    try:
        async with AsyncExitStack() as stack:
            province = await stack.enter_async_context(agency_server(AgencyServer()))
            office = await stack.enter_async_context(agency_server(AgencyServer()))
            unit = await stack.enter_async_context(agency_server(AgencyServer()))
            by_name = {"code": GOVERNMENT[1], "name": "Vụ", "endpoint": {"url": unit.url}}

            def config(routes: list[dict[str, Any]], *agencies: dict[str, Any]) -> Settings:
                return settings(tmp_path, province.url, routes, agencies, bus=bus)

            # Before any route: the unit is registered by name, and served so (its queues).
            async with daemon(config([])) as url, aiohttp.ClientSession() as session:
                answer = await session.post(
                    f"{url}/v1/endpoints",
                    json=by_name,
                    headers={"Authorization": f"Bearer {INTEGRATOR}"},
                )
                assert answer.status == 201, await answer.text()
            # The route comes, taking the unit's code: the route serves it, once, and the
            # unit's own queue is unbound (no copy parked there for nobody).
            async with daemon(config([route(office.url)])) as url:
                state = await settled(url, await submit(url, letter((GOVERNMENT[1],), "2204")))
                assert [d["state"] for d in state["deliveries"]] == ["delivered"]
                assert await forged_entries(url) == []
            assert (len(office.received), len(unit.received)) == (1, 0)
            assert await queue_depth(exchange, GOVERNMENT[1]) == 0
            # Narrowed, the unit in the settings by name: once, and no copy into the route.
            narrow = [route(office.url, codes=["000.00.*.G22"])]
            async with daemon(config(narrow, by_name)) as url:
                state = await settled(url, await submit(url, letter((GOVERNMENT[1],), "2205")))
                assert [d["state"] for d in state["deliveries"]] == ["delivered"]
                assert await forged_entries(url) == []
            assert (len(office.received), len(unit.received)) == (1, 1)
            # The bindings as they stand: the unit's code reaches its own queue only.
            connection = await aio_pika.connect(BROKER)
            async with connection:
                channel = await connection.channel(publisher_confirms=True)
                target = await channel.get_exchange(exchange)
                await target.publish(aio_pika.Message(b"x"), routing_key=f"edoc.{GOVERNMENT[1]}")
            assert await queue_depth(exchange, "route-government-office") == 0
            assert await queue_depth(exchange, GOVERNMENT[1]) == 1
    finally:
        codes = [PROVINCE, GOVERNMENT[1], "route-government-office"]
        await remove_topology(exchange, codes, [0.3])
