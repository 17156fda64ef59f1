"""What the adapter writes itself (the status 01 on delivery) takes its own path into the
store: no client speaks for it, yet it is read, checked and audited as a submission is."""

from __future__ import annotations

from pathlib import Path

import pytest

from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.errors import ErrorCode, InvalidPacket
from lgsp_adapter.exchange.intake import GENERATED_BY, Intake
from lgsp_adapter.store.sqlite import SqliteStore
from tests.test_exchange_rabbitmq import COMMUNE, PROVINCE, letter_to
from tests.test_web import settings


@pytest.mark.asyncio
async def test_a_generated_packet_is_kept_as_the_adapters_with_its_deliveries(
    tmp_path: Path,
) -> None:
    config = settings(tmp_path)
    async with await SqliteStore.open(config.store.path) as store:
        woken: list[bool] = []
        intake = Intake(
            store=store,
            directory=config.directory(),
            limits=config.limits,
            on_accept=lambda: woken.append(True),
            outbox_budget_bytes=1,  # a submission would be refused: this charges nothing
        )
        accepted = await intake.accept_generated(letter_to(COMMUNE), sender=PROVINCE)
        assert accepted.packet.client == GENERATED_BY
        assert [d.recipient for d in accepted.deliveries] == [COMMUNE]
        assert woken == [True]
        (received,) = await store.audit.query(AuditQuery(packet_id=accepted.packet.id))
        assert (received.event, received.recipient) == ("received", COMMUNE)


@pytest.mark.asyncio
async def test_a_generated_packet_naming_another_sender_is_refused_and_audited(
    tmp_path: Path,
) -> None:
    config = settings(tmp_path)
    async with await SqliteStore.open(config.store.path) as store:
        intake = Intake(store=store, directory=config.directory(), limits=config.limits)
        with pytest.raises(InvalidPacket) as refused:
            await intake.accept_generated(letter_to(COMMUNE), sender="000.00.12.H56")
        assert refused.value.code is ErrorCode.PACKET_FORGED_SENDER
        (rejection,) = await store.audit.query(AuditQuery(outcome="packet.forged_sender"))
        assert GENERATED_BY in (rejection.detail or "")
        assert await store.outbox(10) == []


@pytest.mark.asyncio
async def test_a_generated_packet_for_an_unknown_agency_is_refused(tmp_path: Path) -> None:
    config = settings(tmp_path)
    async with await SqliteStore.open(config.store.path) as store:
        intake = Intake(store=store, directory=config.directory(), limits=config.limits)
        with pytest.raises(InvalidPacket) as refused:
            await intake.accept_generated(letter_to("000.99.99.H56"), sender=PROVINCE)
        assert refused.value.code is ErrorCode.PACKET_UNKNOWN_RECIPIENT
        assert await store.outbox(10) == []
