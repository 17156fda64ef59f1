"""Contract tests of the store: what the exchange relies on, on a real SQLite file and on a real
PostgreSQL database (tests taking ``store`` run on both; the rest are about one of them)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.audit.merkle import leaf_hash, root
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.audit.tree import root_at
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.registry.agency_list import Agency
from lgsp_adapter.store import DeliveryState, PacketFacts, Store, StoredPacket
from lgsp_adapter.store.records import PacketIdTaken
from lgsp_adapter.store.sqlite import MIGRATIONS, SqliteStore
from tests.exchange_stores import BACKENDS, open_exchange_store

RECIPIENTS = ["000.00.12.H56", "000.21.00.H56"]


def packet(payload: bytes = b"<edXML/>") -> StoredPacket:
    return StoredPacket(
        id=uuid.uuid4(),
        kind="edoc",
        sender="000.00.00.H56",
        recipients=RECIPIENTS,
        document_id="000.00.00.H56,2026/11/20,1234/UBND-KSTTHC",
        content_type="application/xml",
        payload=payload,
        sha256=hashlib.sha256(payload).hexdigest(),
        client="qlvb",
    )


def received(p: StoredPacket) -> AuditEntry:
    return AuditEntry(
        event=AuditEvent.RECEIVED,
        packet_id=p.id,
        sender=p.sender,
        kind=p.kind,
        payload_sha256=p.sha256,
        outcome="ok",
    )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """Each contract test runs on both stores (PostgreSQL's database made only when needed)."""
    if request.param == "postgres":
        return request.param, request.getfixturevalue("postgres_database")
    return request.param, None


@pytest_asyncio.fixture
async def store(backend: tuple[str, str | None], tmp_path: Path) -> AsyncIterator[Store]:
    async with open_exchange_store(*backend[:1], tmp_path, backend[1]) as (opened, _):
        yield opened


@pytest.mark.asyncio
async def test_an_accepted_packet_comes_back_byte_for_byte(store: Store) -> None:
    p = packet(b"\xef\xbb\xbf<edXML>\r\n  H\xc3\xa0 N\xe1\xbb\x99i</edXML>")
    await store.accept(p, [received(p)])
    assert await store.packet(p.id) == p
    assert await store.packet(uuid.uuid4()) is None


@pytest.mark.asyncio
async def test_a_packets_facts_are_all_of_it_but_the_bytes(store: Store) -> None:
    p = packet(b"<edXML>" + b"x" * 100_000 + b"</edXML>")
    await store.accept(p, [received(p)])
    assert await store.facts(p.id) == PacketFacts(**p.model_dump(exclude={"payload"}))
    assert await store.facts(uuid.uuid4()) is None


@pytest.mark.asyncio
async def test_a_packet_id_taken_at_intake_keeps_nothing_of_the_second(store: Store) -> None:
    # Two requests keeping the same derived id at once (an axis send repeated before its first
    # answer): one is kept, the other refused inside the same write, not with a database error.
    p = packet(b"<edXML>the send</edXML>")
    again = p.model_copy(update={"recipients": RECIPIENTS[:1]})
    outcomes = await asyncio.gather(
        store.accept(p, [received(p)]),
        store.accept(again, [received(again)]),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["NoneType", "PacketIdTaken"]
    kept = await store.packet(p.id)
    assert kept in (p, again)  # whichever came first, whole: its payload and its deliveries
    assert kept is not None
    assert [d.recipient for d in await store.deliveries(p.id)] == kept.recipients
    assert len(await store.history(p.id)) == 1
    with pytest.raises(PacketIdTaken):
        await store.accept(again, [received(again)])


@pytest.mark.asyncio
async def test_each_recipient_gets_its_own_delivery(store: Store) -> None:
    p = packet()
    await store.accept(p, [received(p)])
    deliveries = await store.deliveries(p.id)
    assert [(d.recipient, d.state, d.attempts) for d in deliveries] == [
        (r, DeliveryState.ACCEPTED, 0) for r in RECIPIENTS
    ]


@pytest.mark.asyncio
async def test_a_receipt_brings_the_count_the_recipients_daemon_kept(store: Store) -> None:
    """The sender's daemon made no attempt itself; the receipt says how many there were, and
    a count never goes down (a late receipt with fewer is no news)."""
    p = packet()
    await store.accept(p, [received(p)])
    receipt = AuditEntry(event=AuditEvent.RECEIPT, packet_id=p.id, recipient=RECIPIENTS[0])
    record = await store.update_delivery(
        p.id, RECIPIENTS[0], DeliveryState.DELIVERED, entries=[receipt], attempts=3
    )
    assert (record.state, record.attempts) == (DeliveryState.DELIVERED, 3)
    again = await store.update_delivery(
        p.id, RECIPIENTS[1], DeliveryState.RETRYING, entries=[], attempted=True, attempts=0
    )
    assert again.attempts == 1


@pytest.mark.asyncio
async def test_a_delivery_moves_with_its_audit_entry(store: Store) -> None:
    p = packet()
    await store.accept(p, [received(p)])
    retried = AuditEntry(event=AuditEvent.RETRIED, packet_id=p.id, recipient=RECIPIENTS[0])
    record = await store.update_delivery(
        p.id, RECIPIENTS[0], DeliveryState.RETRYING, entries=[retried], detail="503", attempted=True
    )
    assert (record.state, record.attempts, record.detail) == (DeliveryState.RETRYING, 1, "503")
    history = await store.history(p.id)
    assert [e.event for e in history] == [AuditEvent.RECEIVED, AuditEvent.RETRIED]
    assert [e.index for e in history] == [0, 1]  # leaf indexes of the log's tree


@pytest.mark.asyncio
async def test_an_unknown_delivery_changes_nothing(store: Store) -> None:
    p = packet()
    await store.accept(p, [received(p)])
    stray = AuditEntry(event=AuditEvent.DELIVERED, packet_id=p.id, recipient="000.00.00.H41")
    with pytest.raises(KeyError):
        await store.update_delivery(p.id, "000.00.00.H41", DeliveryState.DELIVERED, entries=[stray])
    assert [e.event for e in await store.history(p.id)] == [AuditEvent.RECEIVED]


@pytest.mark.asyncio
async def test_the_audit_log_refuses_changes_even_to_us(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    async with await SqliteStore.open(path) as store:
        p = packet()
        await store.accept(p, [received(p)])
        await store.audit.checkpoint(LogKey.generate("lgsp-adapter/test"))  # builds the tree
    raw = sqlite3.connect(path)
    for sql in (
        "UPDATE audit_entries SET outcome = 'forged'",
        "UPDATE audit_tree SET hash = x'00'",
        "DELETE FROM audit_tree",
        "UPDATE audit_checkpoints SET size = 2",
        "DELETE FROM audit_checkpoints",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute(sql)
    with pytest.raises(sqlite3.IntegrityError, match="only archived"):
        raw.execute("DELETE FROM audit_entries")
    raw.close()


@pytest.mark.asyncio
async def test_a_plain_audit_log_moves_into_the_tree_in_order(tmp_path: Path) -> None:
    """A store made before the log was verifiable keeps every entry, now as leaves."""
    path = tmp_path / "old.sqlite3"
    raw = sqlite3.connect(path)
    raw.executescript(MIGRATIONS[0] + MIGRATIONS[1] + "PRAGMA user_version = 2;")  # type: ignore[operator]
    raw.executemany(
        "INSERT INTO audit_log (at, event, packet_id, outcome) VALUES (?, ?, ?, ?)",
        [
            ("2026-11-26T10:00:00.000001+00:00", "received", str(uuid.uuid4()), "ok"),
            ("2026-11-26T10:00:01+00:00", "rejected", None, "auth.invalid"),
        ],
    )
    raw.commit()
    raw.close()
    async with await SqliteStore.open(path) as store:
        moved = await store.audit.entries(0, 10)
        assert [(e.index, e.event, e.outcome) for e in moved] == [
            (0, AuditEvent.RECEIVED, "ok"),
            (1, AuditEvent.REJECTED, "auth.invalid"),
        ]
        assert moved[1].fields()["at"] == "2026-11-26T10:00:01.000000Z"
        assert await store.audit.tree_size() == 2
        signed = await store.audit.checkpoint(LogKey.generate("lgsp-adapter/test"))
        assert signed is not None
        assert signed.root == root([leaf_hash(e.canonical()) for e in moved])
        assert await root_at(store.audit, 2) == signed.root


@pytest.mark.asyncio
async def test_concurrent_writers_do_not_interleave(store: Store) -> None:
    packets = [packet(f"<edXML>{i}</edXML>".encode()) for i in range(50)]
    await asyncio.gather(*(store.accept(p, [received(p)]) for p in packets))
    await asyncio.gather(
        *(
            store.update_delivery(
                p.id,
                recipient,
                DeliveryState.DELIVERED,
                entries=[
                    AuditEntry(event=AuditEvent.DELIVERED, packet_id=p.id, recipient=recipient)
                ],
                attempted=True,
            )
            for p in packets
            for recipient in RECIPIENTS
        )
    )
    for p in packets:
        assert {d.state for d in await store.deliveries(p.id)} == {DeliveryState.DELIVERED}
        assert len(await store.history(p.id)) == 1 + len(RECIPIENTS)


@pytest.mark.asyncio
async def test_a_writer_cancelled_mid_transaction_leaves_the_store_writable(
    store: Store,
) -> None:
    # A consumer's task is cancelled when its broker connection drops; a driver's thread runs
    # a statement whether or not its caller still waits. Cancelled while BEGIN ran, a write
    # once left the connection inside a transaction: every later write failed ("cannot start
    # a transaction within a transaction") and intake answered 500 until a restart (seen in
    # the fault test dropping all connections). Cancelled at each step of a write in turn:
    first = packet(b"<edXML>0</edXML>")
    await store.accept(first, [received(first)])
    for steps in range(12):
        p = packet(f"<edXML>{steps + 1}</edXML>".encode())
        writer = asyncio.create_task(store.accept(p, [received(p)]))
        for _ in range(steps):
            await asyncio.sleep(0)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
        # Whatever the cancelled write left, it is all or nothing, and writes go on.
        kept = await store.packet(p.id)
        assert len(await store.history(p.id)) == (1 if kept else 0)
        retried = AuditEntry(event=AuditEvent.RETRIED, packet_id=first.id, recipient=RECIPIENTS[0])
        await store.update_delivery(
            first.id, RECIPIENTS[0], DeliveryState.RETRYING, entries=[retried], attempted=True
        )
    assert (await store.deliveries(first.id))[0].attempts == 12


@pytest.mark.asyncio
async def test_a_cancelled_write_waiting_on_a_locked_store_is_cancelled(tmp_path: Path) -> None:
    # Another process holds the write lock (the CLI, say); the writer gives up waiting. The
    # caller must see its cancellation (a timeout), not the lock error that follows it, and
    # nothing may be left half-done.
    path = tmp_path / "store.sqlite3"
    async with await SqliteStore.open(path) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        p = packet()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await store.accept(p, [received(p)])
        other.execute("ROLLBACK")
        other.close()
        await store.accept(p, [received(p)])
        assert len(await store.history(p.id)) == 1


@pytest.mark.asyncio
async def test_reopening_migrates_once_and_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    p = packet()
    async with await SqliteStore.open(path) as store:
        await store.accept(p, [received(p)])
    async with await SqliteStore.open(path) as store:
        assert await store.packet(p.id) == p


@pytest.mark.asyncio
async def test_a_store_from_a_newer_adapter_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(FatalError) as info:
        await SqliteStore.open(path)
    assert info.value.code is ErrorCode.STORE_UNAVAILABLE


@pytest.mark.asyncio
async def test_an_unwritable_place_is_a_clear_fatal_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(FatalError) as info:
        await SqliteStore.open(blocker / "store.sqlite3")
    assert info.value.code is ErrorCode.STORE_UNAVAILABLE


def test_an_accepted_packet_survives_the_process_being_killed(tmp_path: Path) -> None:
    # What a 202 promises: once accept() returns, a SIGKILL the next instant loses nothing.
    path = tmp_path / "store.sqlite3"
    script = f"""
import asyncio, hashlib, os, signal, sys, uuid
from pathlib import Path
from lgsp_adapter.store import StoredPacket
from lgsp_adapter.store.sqlite import SqliteStore
async def main():
    store = await SqliteStore.open(Path({str(path)!r}))
    p = StoredPacket(id=uuid.UUID({str(uuid.UUID(int=7))!r}), kind="edoc", sender="000.00.00.H56",
                     recipients=["000.00.12.H56"], content_type="application/xml",
                     payload=b"<edXML/>", sha256=hashlib.sha256(b"<edXML/>").hexdigest())
    await store.accept(p, [])
    os.kill(os.getpid(), signal.SIGKILL)
asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=60, check=False
    )
    assert result.returncode == -9, result.stderr
    reopened = asyncio.run(_packet_after_crash(path))
    assert reopened is not None
    assert reopened.payload == b"<edXML/>"


async def _packet_after_crash(path: Path) -> StoredPacket | None:
    async with await SqliteStore.open(path) as store:
        return await store.packet(uuid.UUID(int=7))


# --- the embedded bus's queue -----------------------------------------------------------------


def published(p: StoredPacket, recipient: str) -> list[AuditEntry]:
    return [AuditEntry(event=AuditEvent.PUBLISHED, packet_id=p.id, recipient=recipient)]


@pytest.mark.asyncio
async def test_the_outbox_lists_what_is_not_yet_on_the_bus(store: Store) -> None:
    p = packet()
    await store.accept(p, [received(p)])
    assert [item[:2] for item in await store.outbox(10)] == [(p.id, r) for r in RECIPIENTS]
    await store.enqueue(p.id, RECIPIENTS[0], published(p, RECIPIENTS[0]))
    assert [item[:2] for item in await store.outbox(10)] == [(p.id, RECIPIENTS[1])]
    (first,) = [d for d in await store.deliveries(p.id) if d.recipient == RECIPIENTS[0]]
    assert first.state is DeliveryState.PUBLISHED


@pytest.mark.asyncio
async def test_a_lease_hands_each_delivery_to_one_worker_only(store: Store) -> None:
    p = packet()
    await store.accept(p, [received(p)])
    for r in RECIPIENTS:
        await store.enqueue(p.id, r, published(p, r))
    first = await store.lease([RECIPIENTS[0]], limit=10, lease_s=60)
    again = await store.lease([RECIPIENTS[0]], limit=10, lease_s=60)
    assert first == [(p.id, RECIPIENTS[0])]
    assert again == []  # leased, and the other recipient is not asked for


@pytest.mark.asyncio
async def test_a_lease_not_settled_in_time_falls_due_again(store: Store) -> None:
    p = packet()
    await store.accept(p, [received(p)])
    await store.enqueue(p.id, RECIPIENTS[0], published(p, RECIPIENTS[0]))
    assert await store.lease(RECIPIENTS, limit=10, lease_s=0.05) == [(p.id, RECIPIENTS[0])]
    await asyncio.sleep(0.1)  # the worker died without settling
    assert await store.lease(RECIPIENTS, limit=10, lease_s=60) == [(p.id, RECIPIENTS[0])]


@pytest.mark.asyncio
async def test_settling_takes_a_delivery_off_the_queue_or_puts_it_back_later(
    store: Store,
) -> None:
    p = packet()
    await store.accept(p, [received(p)])
    for r in RECIPIENTS:
        await store.enqueue(p.id, r, published(p, r))
    await store.lease(RECIPIENTS, limit=10, lease_s=60)
    done = AuditEntry(event=AuditEvent.DELIVERED, packet_id=p.id, recipient=RECIPIENTS[0])
    await store.settle(p.id, RECIPIENTS[0], DeliveryState.DELIVERED, entries=[done], attempted=True)
    retry = AuditEntry(event=AuditEvent.RETRIED, packet_id=p.id, recipient=RECIPIENTS[1])
    await store.settle(
        p.id, RECIPIENTS[1], DeliveryState.RETRYING, entries=[retry], attempted=True, retry_in_s=30
    )
    assert await store.lease(RECIPIENTS, limit=10, lease_s=60) == []
    wait = await store.next_due_in(RECIPIENTS)
    assert wait is not None
    assert 25 < wait <= 30
    states = {d.recipient: (d.state, d.attempts) for d in await store.deliveries(p.id)}
    assert states == {
        RECIPIENTS[0]: (DeliveryState.DELIVERED, 1),
        RECIPIENTS[1]: (DeliveryState.RETRYING, 1),
    }
    events = [e.event for e in await store.history(p.id)]
    assert events == [
        AuditEvent.RECEIVED,
        *[AuditEvent.PUBLISHED] * 2,
        AuditEvent.DELIVERED,
        AuditEvent.RETRIED,
    ]


@pytest.mark.asyncio
async def test_only_one_process_may_run_the_exchange_on_a_store(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    async with await SqliteStore.open(path, owner=True):
        with pytest.raises(FatalError, match="another lgsp-adapter process"):
            await SqliteStore.open(path, owner=True)
        async with await SqliteStore.open(path) as reader:  # audit show, say, may still read
            assert await reader.outbox(10) == []
    async with await SqliteStore.open(path, owner=True):  # released at close
        pass


@pytest.mark.asyncio
async def test_a_delivered_packet_stays_delivered(store: Store) -> None:
    p = packet()
    await store.accept(p, [received(p)])
    await store.update_delivery(p.id, RECIPIENTS[0], DeliveryState.DELIVERED, entries=[])
    late = await store.update_delivery(p.id, RECIPIENTS[0], DeliveryState.RETRYING, entries=[])
    assert late.state is DeliveryState.DELIVERED


@pytest.mark.asyncio
async def test_several_held_deliveries_end_together_or_not_at_all(store: Store) -> None:
    # One system acknowledging a document for two of its agencies, while another system of
    # one of them refused its copy: both, or neither.
    p = packet()
    await store.accept(p, [received(p)])
    for recipient in RECIPIENTS:
        await store.update_delivery(p.id, recipient, DeliveryState.HELD, entries=[])
    await store.acknowledge(p.id, RECIPIENTS[1], DeliveryState.REFUSED, entries=[], detail="x")
    both = {r: [entry(p, AuditEvent.DELIVERED, r)] for r in RECIPIENTS}
    assert await store.acknowledge_all(p.id, both, DeliveryState.DELIVERED, "done") == (
        [RECIPIENTS[1]],
        [],
    )
    assert [d.state for d in await store.deliveries(p.id)] == [
        DeliveryState.HELD,
        DeliveryState.REFUSED,
    ]
    refusals = {r: [entry(p, AuditEvent.REFUSED, r)] for r in RECIPIENTS}
    assert await store.acknowledge_all(p.id, refusals, DeliveryState.REFUSED, "fail") == (
        [],
        [RECIPIENTS[0]],
    )
    assert {d.state for d in await store.deliveries(p.id)} == {DeliveryState.REFUSED}
    assert await store.acknowledge_all(p.id, refusals, DeliveryState.REFUSED, "fail") == ([], [])
    events = [e.event for e in await store.history(p.id)]
    assert events == [AuditEvent.RECEIVED, AuditEvent.REFUSED]  # one entry for the one ended


@pytest.mark.asyncio
async def test_an_ended_delivery_never_starts_again(store: Store) -> None:
    """A bus redelivery racing a pull inbox's "fail" must not put the packet back on hold."""
    p = packet()
    await store.accept(p, [received(p)])
    await store.update_delivery(p.id, RECIPIENTS[0], DeliveryState.HELD, entries=[])
    refused = await store.acknowledge(
        p.id, RECIPIENTS[0], DeliveryState.REFUSED, entries=[], detail="fail"
    )
    assert refused is not None
    after = await store.update_delivery(p.id, RECIPIENTS[0], DeliveryState.HELD, entries=[])
    assert after.state is DeliveryState.REFUSED
    assert (
        await store.acknowledge(
            p.id, RECIPIENTS[0], DeliveryState.DELIVERED, entries=[], detail="done"
        )
        is None
    )


def entry(p: StoredPacket, event: AuditEvent, recipient: str) -> AuditEntry:
    return AuditEntry(event=event, packet_id=p.id, sender=p.sender, recipient=recipient)


@pytest.mark.asyncio
async def test_a_packet_from_the_bus_is_kept_once(store: Store) -> None:
    p = packet()
    first = await store.receive(p, RECIPIENTS[0], [entry(p, AuditEvent.RECEIVED, RECIPIENTS[0])])
    again = await store.receive(p, RECIPIENTS[0], [entry(p, AuditEvent.RECEIVED, RECIPIENTS[0])])
    assert (first, again) == (True, False)
    assert await store.packet(p.id) == p
    assert [(d.recipient, d.state) for d in await store.deliveries(p.id)] == [
        (RECIPIENTS[0], DeliveryState.PUBLISHED)
    ]
    assert len(await store.history(p.id)) == 1  # the redelivery wrote nothing


@pytest.mark.asyncio
async def test_a_packet_from_the_bus_with_another_packets_id_keeps_nothing(
    store: Store,
) -> None:
    # Its id was checked before, but another copy may be kept in between: the two meet in the
    # store, at once, and the check must be inside the write that keeps one of them.
    p = packet(b"<edXML>the first</edXML>")
    forged = packet(b"<edXML>another</edXML>").model_copy(update={"id": p.id})
    first, second = await asyncio.gather(
        store.receive(p, RECIPIENTS[0], [entry(p, AuditEvent.RECEIVED, RECIPIENTS[0])]),
        store.receive(forged, RECIPIENTS[1], [entry(p, AuditEvent.RECEIVED, RECIPIENTS[1])]),
        return_exceptions=True,
    )
    assert first is True
    assert isinstance(second, PacketIdTaken)
    assert await store.packet(p.id) == p
    assert [d.recipient for d in await store.deliveries(p.id)] == [RECIPIENTS[0]]
    assert len(await store.history(p.id)) == 1


@pytest.mark.asyncio
async def test_a_confirmation_never_overtakes_a_receipt(store: Store) -> None:
    p = packet()
    await store.accept(p, [received(p)])
    await store.update_delivery(p.id, RECIPIENTS[0], DeliveryState.DELIVERED, entries=[])
    await store.mark_published([(p.id, r, [entry(p, AuditEvent.PUBLISHED, r)]) for r in RECIPIENTS])
    states = {d.recipient: d.state for d in await store.deliveries(p.id)}
    assert states == {
        RECIPIENTS[0]: DeliveryState.DELIVERED,
        RECIPIENTS[1]: DeliveryState.PUBLISHED,
    }
    assert await store.outbox(10) == []
    assert len(await store.history(p.id)) == 3  # both confirmations are in the log


@pytest.mark.asyncio
async def test_the_outbox_counts_each_packet_once_with_its_bytes(store: Store) -> None:
    assert await store.outbox_size() == (0, 0)
    small, large = packet(b"<a/>"), packet(b"<b>" + b"x" * 1000 + b"</b>")
    for p in (small, large):
        await store.accept(p, [received(p)])
    assert await store.outbox_size() == (2, len(small.payload) + len(large.payload))
    await store.mark_published([(small.id, r, []) for r in RECIPIENTS])
    assert await store.outbox_size() == (1, len(large.payload))
    counts = await store.delivery_counts()
    assert counts == {DeliveryState.ACCEPTED: 2, DeliveryState.PUBLISHED: 2}
    assert await store.outbox(10) == [(large.id, r, len(large.payload)) for r in RECIPIENTS]


@pytest.mark.asyncio
async def test_a_pull_inbox_pages_and_is_acknowledged_once(store: Store) -> None:
    packets = [packet(f"<edXML>{i}</edXML>".encode()) for i in range(3)]
    for p in packets:
        await store.accept(p, [received(p)])
        await store.update_delivery(p.id, RECIPIENTS[0], DeliveryState.HELD, entries=[])
    page = await store.inbox([RECIPIENTS[0]], kind=None, after=0, limit=2)
    assert [i.packet_id for i in page] == [p.id for p in packets[:2]]
    assert page[0].size_bytes == len(packets[0].payload)
    rest = await store.inbox([RECIPIENTS[0]], kind=None, after=page[-1].cursor, limit=2)
    assert [i.packet_id for i in rest] == [packets[2].id]
    assert await store.inbox([RECIPIENTS[0]], kind="tax-transport", after=0, limit=10) == []
    assert await store.inbox([RECIPIENTS[1]], kind=None, after=0, limit=10) == []
    assert await store.held() == [(p.id, RECIPIENTS[0]) for p in packets]
    done = entry(packets[0], AuditEvent.DELIVERED, RECIPIENTS[0])
    acked = await store.acknowledge(
        packets[0].id, RECIPIENTS[0], DeliveryState.DELIVERED, entries=[done], detail="fetched"
    )
    assert acked is not None
    assert (acked.state, acked.attempts, acked.detail) == (DeliveryState.DELIVERED, 1, "fetched")
    twice = await store.acknowledge(
        packets[0].id, RECIPIENTS[0], DeliveryState.DELIVERED, entries=[done], detail="fetched"
    )
    assert twice is None
    assert len(await store.history(packets[0].id)) == 2  # accepted, delivered once


@pytest.mark.asyncio
async def test_dead_letters_are_listed_and_acted_on_once(store: Store) -> None:
    packets = [packet(f"<edXML>{i}</edXML>".encode()) for i in range(3)]
    for p in packets:
        await store.accept(p, [received(p)])
        await store.update_delivery(
            p.id,
            RECIPIENTS[1],
            DeliveryState.DEAD_LETTERED,
            entries=[],
            detail="503 for a day",
            attempted=True,
        )
    listed = await store.dead_letters(recipient=None, sender=None, kind=None, after=0, limit=2)
    assert [(d.packet_id, d.recipient, d.attempts) for d in listed] == [
        (p.id, RECIPIENTS[1], 1) for p in packets[:2]
    ]
    more = await store.dead_letters(
        recipient=RECIPIENTS[1],
        sender=packets[0].sender,
        kind="edoc",
        after=listed[-1].cursor,
        limit=10,
    )
    assert [d.packet_id for d in more] == [packets[2].id]
    assert (
        await store.dead_letters(recipient=RECIPIENTS[0], sender=None, kind=None, after=0, limit=10)
        == []
    )
    one = await store.dead_letter(packets[0].id, RECIPIENTS[1])
    assert one is not None
    assert one.detail == "503 for a day"
    assert await store.dead_letter(packets[0].id, RECIPIENTS[0]) is None

    replayed = await store.leave_dead_letters(
        packets[0].id,
        RECIPIENTS[1],
        DeliveryState.ACCEPTED,
        [entry(packets[0], AuditEvent.ADMIN, RECIPIENTS[1])],
    )
    assert replayed is not None
    # A fresh budget, the history kept: the attempt made stays counted (issue 21: a replay
    # reset it to 0, so the sender and the auditors lost how often it had been tried).
    assert (replayed.state, replayed.detail) == (DeliveryState.ACCEPTED, None)
    assert (replayed.attempts, replayed.since_replay, replayed.replays) == (1, 0, 1)
    assert (packets[0].id, RECIPIENTS[1]) in [item[:2] for item in await store.outbox(10)]
    again = await store.leave_dead_letters(
        packets[0].id,
        RECIPIENTS[1],
        DeliveryState.DROPPED,
        [entry(packets[0], AuditEvent.ADMIN, RECIPIENTS[1])],
    )
    assert again is None  # a second operator finds it gone
    dropped = await store.leave_dead_letters(
        packets[1].id,
        RECIPIENTS[1],
        DeliveryState.DROPPED,
        [entry(packets[1], AuditEvent.ADMIN, RECIPIENTS[1])],
    )
    assert dropped is not None
    assert (dropped.state, dropped.detail) == (DeliveryState.DROPPED, "503 for a day")
    assert [e.event for e in await store.history(packets[0].id)] == [
        AuditEvent.RECEIVED,
        AuditEvent.ADMIN,  # the replay; the refused drop wrote nothing
    ]


@pytest.mark.asyncio
async def test_observers_hear_of_each_commit_with_its_entries(store: Store) -> None:
    heard: list[list[AuditEvent]] = []
    store.observe(lambda entries, took: heard.append([e.event for e in entries]))

    def broken(entries: object, took: float) -> None:
        raise RuntimeError("a broken metric")

    store.observe(broken)
    p = packet()
    await store.accept(p, [received(p)])  # a failing observer does not fail the write
    await store.update_delivery(p.id, RECIPIENTS[0], DeliveryState.PUBLISHED, entries=[])
    assert heard == [[AuditEvent.RECEIVED]]  # a commit without entries is not told


@pytest.mark.asyncio
async def test_the_agency_list_merges_and_finds(store: Store) -> None:
    province = Agency(code="000.00.00.H56", name="UBND tỉnh Lâm Đồng", source="national")
    commune = Agency(
        code="000.21.00.H56", name="UBND xã Đạ Tẻh", parent="000.00.00.H56", source="national"
    )
    report = await store.agency_list.merge([province, commune], lambda report: [])
    assert (report.added, report.updated) == (2, 0)
    renamed = commune.model_copy(update={"name": "UBND xã Đạ Tẻh 2"})
    again = await store.agency_list.merge([province, renamed], lambda report: [])
    assert (again.added, again.updated, again.unchanged) == (0, 1, 1)
    found = await store.agency_list.find(under="000.00.00.H56")
    assert [a.name for a in found] == ["UBND xã Đạ Tẻh 2"]
    assert [a.code for a in await store.agency_list.find(search="đạ tẻh")] == [commune.code]
    assert [a.code for a in await store.agency_list.find(after=province.code)] == [commune.code]


@pytest.mark.asyncio
async def test_what_an_agency_sent_is_listed_newest_first_with_each_delivery(
    store: Store,
) -> None:
    first, second = packet(), packet()
    status = packet().model_copy(update={"kind": "status", "recipients": [RECIPIENTS[0]]})
    other = packet().model_copy(update={"sender": "000.00.00.H41"})
    for p in (first, second, status, other):
        await store.accept(p, [received(p)])
        await asyncio.sleep(0.002)  # received_at apart
    await store.update_delivery(first.id, RECIPIENTS[0], DeliveryState.DELIVERED, entries=[])
    items = await store.sent(["000.00.00.H56"], kind="edoc", limit=10)
    assert [(i.packet_id, i.recipient) for i in items] == [
        (second.id, RECIPIENTS[0]),
        (second.id, RECIPIENTS[1]),
        (first.id, RECIPIENTS[0]),
        (first.id, RECIPIENTS[1]),
    ]
    assert items[2].state is DeliveryState.DELIVERED
    assert items[3].state is DeliveryState.ACCEPTED
    latest = await store.sent(["000.00.00.H56"], kind=None, limit=1)  # a packet, all its deliveries
    assert [(i.packet_id, i.kind) for i in latest] == [(status.id, "status")]
    assert await store.sent(["000.00.00.H99"], kind=None, limit=10) == []


@pytest.mark.asyncio
async def test_every_change_to_the_agency_list_takes_the_next_version(store: Store) -> None:
    # What a synchronising system (the axis' getSynchronizeUnit) reads: changes after the last
    # version it saw, deletions included, each change once, in order.
    province = Agency(code="000.00.00.H56", name="UBND tỉnh Lâm Đồng", source="national")
    commune = Agency(code="000.21.00.H56", name="Xã A", parent=province.code, source="national")
    await store.agency_list.merge([province, commune], lambda report: [])
    first = await store.agency_list.changes(after_version=0, limit=100)
    assert [c.agency.code for c in first] == [province.code, commune.code]
    assert first[0].version < first[1].version
    seen = first[-1].version
    assert await store.agency_list.changes(after_version=seen, limit=100) == []
    await store.agency_list.merge([province], lambda report: [])  # unchanged: no new version
    assert await store.agency_list.changes(after_version=seen, limit=100) == []
    gone = commune.model_copy(update={"deleted": True})
    await store.agency_list.merge([gone], lambda report: [])
    later = await store.agency_list.changes(after_version=seen, limit=100)
    assert [(c.agency.code, c.agency.deleted) for c in later] == [(commune.code, True)]
    assert later[0].version > seen
    assert later[0].updated_at >= first[0].updated_at
    await store.agency_list.merge([], lambda report: [], revive=[commune.code])
    revived = await store.agency_list.changes(after_version=later[0].version, limit=1)
    assert [(c.agency.code, c.agency.deleted) for c in revived] == [(commune.code, False)]


@pytest.mark.asyncio
async def test_text_a_publisher_made_up_is_stored_whatever_it_holds(store: Store) -> None:
    # Headers on the bus and reasons in receipts are whatever a publisher wrote: NUL, which
    # PostgreSQL refuses, is kept as U+FFFD rather than failing the message for ever.
    p = packet().model_copy(update={"document_id": "1234/UBND\x00-KSTTHC", "client": "q\x00"})
    assert await store.receive(p, RECIPIENTS[0], [received(p)])
    kept = await store.packet(p.id)
    assert kept is not None
    assert kept.document_id in ("1234/UBND\x00-KSTTHC", "1234/UBND\ufffd-KSTTHC")
    record = await store.update_delivery(
        p.id, RECIPIENTS[0], DeliveryState.REFUSED, entries=[], detail="no\x00 thanks"
    )
    assert record.detail in ("no\x00 thanks", "no\ufffd thanks")
    report = await store.agency_list.merge(
        [Agency(code="000.00.00.H41", name="UBND\x00 xã"), Agency(code="000.00.00.H42", name="X")],
        lambda report: [],
    )
    assert report.added == 2


@pytest.mark.asyncio
async def test_a_writer_cancelled_while_its_commit_runs_is_still_observed(
    tmp_path: Path,
) -> None:
    # Its entries are committed: the metrics must count them, once.
    async with await SqliteStore.open(tmp_path / "s.sqlite3") as store:
        told: list[AuditEntry] = []
        store.observe(lambda entries, took: told.extend(entries))
        entry = AuditEntry(event=AuditEvent.ADMIN, outcome="x", actor="operator")
        task = asyncio.create_task(store.append([entry]))
        await asyncio.sleep(0)  # its statements ran; the COMMIT is under way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await store.audit.tree_size() == 1
        assert len(told) == 1


@pytest.mark.asyncio
async def test_opening_cancelled_while_migrating_waits_for_the_migration(
    tmp_path: Path,
) -> None:
    # Another process holds the file; the migration waits in a thread. Cancelled meanwhile,
    # open() used to close the connection the thread was using: the process crashed.
    path = tmp_path / "s.sqlite3"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.5, other.rollback).start()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await SqliteStore.open(path)
    other.close()
    async with await SqliteStore.open(path) as store:  # and the file is still whole
        assert await store.audit.tree_size() == 0
