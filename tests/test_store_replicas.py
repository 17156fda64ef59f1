"""What replicas sharing one PostgreSQL database rely on: two handles on one schema stand for
two daemons (each has its own pool and its own session)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from lgsp_adapter.audit import AuditEvent
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.audit.verify import verify_log
from lgsp_adapter.errors import FatalError
from lgsp_adapter.store import DeliveryState
from lgsp_adapter.store.postgres import PostgresStore
from tests.exchange_stores import fresh_schema
from tests.test_store import RECIPIENTS, entry, packet, received

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def replicas(postgres_database: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    dsn = await fresh_schema(postgres_database)
    async with await PostgresStore.open(dsn) as one, await PostgresStore.open(dsn) as two:
        yield one, two


async def test_one_delivery_is_handled_by_one_replica_at_a_time(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    one, two = replicas
    p = packet()
    order: list[str] = []

    async def handle(store: PostgresStore, name: str, hold_s: float) -> None:
        async with store.exclusive(p.id, RECIPIENTS[0]):
            order.append(f"{name} in")
            await asyncio.sleep(hold_s)
            order.append(f"{name} out")

    first = asyncio.create_task(handle(one, "one", 0.3))
    await asyncio.sleep(0.05)
    await handle(two, "two", 0)
    await first
    assert order == ["one in", "one out", "two in", "two out"]
    # Another delivery is not held up by it.
    async with one.exclusive(p.id, RECIPIENTS[0]):
        async with asyncio.timeout(1):
            async with two.exclusive(p.id, RECIPIENTS[1]):
                pass


async def test_a_replica_that_dies_frees_its_deliveries_and_roles(postgres_database: str) -> None:
    dsn = await fresh_schema(postgres_database)
    p = packet()
    async with await PostgresStore.open(dsn) as survivor:
        doomed = await PostgresStore.open(dsn)
        assert await doomed.take_role("relay")
        assert not await survivor.take_role("relay")
        held = doomed.exclusive(p.id, RECIPIENTS[0])
        await held.__aenter__()
        waiting = asyncio.create_task(survivor.exclusive(p.id, RECIPIENTS[0]).__aenter__())
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await doomed.close()  # its session ends, as a killed process's does
        async with asyncio.timeout(2):
            await waiting
        await held.__aexit__(None, None, None)  # nothing left to release, nothing reopened
        assert await survivor.take_role("relay")
        assert await survivor.take_role("relay")  # held: asking again is cheap and true


async def test_an_outbox_filled_by_one_replica_wakes_the_other(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    one, two = replicas
    woken = asyncio.Event()
    await two.on_outbox(woken.set)
    p = packet()
    await one.accept(p, [received(p)])
    async with asyncio.timeout(2):
        await woken.wait()
    woken.clear()
    await one.update_delivery(
        p.id, RECIPIENTS[0], DeliveryState.DEAD_LETTERED, entries=[], detail="gave up"
    )
    await one.leave_dead_letters(p.id, RECIPIENTS[0], DeliveryState.ACCEPTED, [])
    async with asyncio.timeout(2):
        await woken.wait()  # a replay fills the outbox too


async def test_replicas_writing_at_once_keep_one_linear_log(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    one, two = replicas
    packets = [packet(f"<edXML>{i}</edXML>".encode()) for i in range(40)]
    await asyncio.gather(
        *((one if i % 2 else two).accept(p, [received(p)]) for i, p in enumerate(packets))
    )
    await asyncio.gather(
        *(
            (two if i % 2 else one).update_delivery(
                p.id,
                r,
                DeliveryState.DELIVERED,
                entries=[entry(p, AuditEvent.DELIVERED, r)],
                attempted=True,
            )
            for i, p in enumerate(packets)
            for r in RECIPIENTS
        )
    )
    key = LogKey.generate("lgsp-adapter/test")
    signed = await asyncio.gather(one.audit.checkpoint(key), two.audit.checkpoint(key))
    assert {s.size for s in signed if s} == {len(packets) * 3}
    report = await verify_log(two.audit, key.verifier)
    assert report.ok, report
    indexes = [e.index for e in await one.audit.entries(0, len(packets) * 3)]
    assert indexes == list(range(len(packets) * 3))


async def test_a_database_serves_the_replicas_of_one_daemon_only(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    one, two = replicas
    await one.claim_for("broker account lgsp-province on exchange lgsp.packets")
    await two.claim_for("broker account lgsp-province on exchange lgsp.packets")  # a replica
    with pytest.raises(FatalError, match="the store of the daemons of broker account lgsp-prov"):
        await two.claim_for("broker account lgsp-commune on exchange lgsp.packets")
