"""The audit log as a transparency log, on SQLite and on PostgreSQL alike: the tree a store
keeps, checkpoints, proofs checked by an independent RFC 9162 implementation, and `verify`
catching every kind of tampering, naming what is wrong."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.audit.archive import archive_before, verify_archive
from lgsp_adapter.audit.bundle import make_bundle, verify_bundle
from lgsp_adapter.audit.checkpoint import Checkpoint
from lgsp_adapter.audit.merkle import leaf_hash, root
from lgsp_adapter.audit.proofs import (
    BadEvidence,
    check_consistency,
    check_inclusion,
    consistency_document,
    inclusion_document,
)
from lgsp_adapter.audit.query import AuditQuery, BadQuery
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.audit.store import AuditStore
from lgsp_adapter.audit.verify import verify_log
from lgsp_adapter.errors import LgspError
from tests import rfc9162
from tests.audit_stores import Attacker, open_store, reopen

KEY = LogKey.generate("lgsp-adapter/test")
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
AGENCIES = ["000.00.00.H56", "000.21.00.H56", "000.00.00.G01"]


def entries(count: int, start: int = 0) -> list[AuditEntry]:
    """Entries of a few packets, as the exchange writes them."""
    made = []
    for n in range(start, start + count):
        packet = uuid.UUID(int=n // 3 + 1)
        made.append(
            AuditEntry(
                at=T0 + timedelta(seconds=n),
                event=[AuditEvent.RECEIVED, AuditEvent.PUBLISHED, AuditEvent.DELIVERED][n % 3],
                packet_id=packet,
                sender=AGENCIES[0],
                recipient=AGENCIES[1 + n // 3 % 2],
                kind="edoc",
                document_id=f"000.00.00.H56,2026/11/27,{n // 3}/UBND",
                payload_sha256="ab" * 32,
                outcome="ok",
                detail="Công văn số " + str(n),
            )
        )
    return made


async def filled(store: AuditStore, sizes: list[int]) -> None:
    """Append in batches up to each of ``sizes``, a checkpoint after each."""
    done = await store.tree_size()
    for size in sizes:
        await store.append(entries(size - done, done))
        done = size
        await store.checkpoint(KEY)


@pytest.mark.asyncio
async def test_the_stored_tree_is_the_rfc_tree_of_the_entries(
    log: tuple[AuditStore, Attacker],
) -> None:
    store, _ = log
    await filled(store, [1, 2, 7, 8, 21])
    stored = await store.entries(0, 100)
    assert [e.index for e in stored] == list(range(21))
    assert [e.model_dump(exclude={"index"}) for e in stored] == [
        e.model_dump(exclude={"index"}) for e in entries(21)
    ]
    checkpoints = await store.checkpoints()
    assert [c.size for c in checkpoints] == [1, 2, 7, 8, 21]
    for checkpoint in checkpoints:
        opened = Checkpoint.open(checkpoint.note, KEY.verifier)
        canonical = [e.canonical() for e in stored[: checkpoint.size]]
        assert opened.root == checkpoint.root == rfc9162.mth(canonical)
    report = await verify_log(store, KEY.verifier)
    assert report.ok, report.problems
    assert (report.entries_checked, report.checkpoints_checked) == (21, 5)


@pytest.mark.asyncio
async def test_a_checkpoint_is_made_only_when_the_log_grew(
    log: tuple[AuditStore, Attacker],
) -> None:
    store, _ = log
    assert await store.checkpoint(KEY) is None  # an empty log has nothing to sign
    await store.append(entries(3))
    first = await store.checkpoint(KEY)
    again = await store.checkpoint(KEY)
    assert first is not None
    assert again == first
    assert len(await store.checkpoints()) == 1


@pytest.mark.asyncio
async def test_every_proof_checks_with_an_independent_rfc9162_implementation(
    log: tuple[AuditStore, Attacker],
) -> None:
    store, _ = log
    await filled(store, [1, 3, 4, 6, 13, 16, 17])
    checkpoints = await store.checkpoints()
    stored = await store.entries(0, 100)
    for checkpoint in checkpoints:
        for entry in stored[: checkpoint.size]:
            document = await inclusion_document(store, entry, checkpoint)
            path = [base64.b64decode(node) for node in document["audit_path"]]
            assert rfc9162.inclusion_holds(
                entry.canonical(), entry.index or 0, checkpoint.size, path, checkpoint.root
            )
            assert check_inclusion(document, KEY.verifier)[1] == entry.index
        for old in checkpoints:
            if old.size > checkpoint.size:
                continue
            document = await consistency_document(store, old, checkpoint)
            proof = [base64.b64decode(node) for node in document["proof"]]
            assert rfc9162.consistency_holds(
                old.size, checkpoint.size, old.root, checkpoint.root, proof
            )
            check_consistency(document, KEY.verifier)


@pytest.mark.asyncio
async def test_a_bundle_verifies_alone_and_fails_when_touched(
    log: tuple[AuditStore, Attacker],
) -> None:
    store, _ = log
    await store.append(entries(9))
    packet = uuid.UUID(int=2)
    history = await store.history(packet)
    bundle = await make_bundle(
        store, history, subject={"packet_id": str(packet)}, verifier=KEY.verifier, key=KEY
    )
    data = json.dumps(bundle).encode()
    check = verify_bundle(data)
    assert (check.entries, check.checkpoint.size) == (3, 9)
    assert not check.pinned
    assert verify_bundle(data, KEY.verifier).pinned
    changed = json.loads(data)
    changed["entries"][1]["entry"]["outcome"] = "refused"
    with pytest.raises(BadEvidence, match="leaf_hash is not the hash"):
        verify_bundle(json.dumps(changed).encode())
    del changed["entries"][1]["leaf_hash"]
    with pytest.raises(BadEvidence, match="entry 4 is not in the log at size 9"):
        verify_bundle(json.dumps(changed).encode())
    other = LogKey.generate("lgsp-adapter/test")
    with pytest.raises(BadEvidence, match="not the pinned"):
        verify_bundle(data, other.verifier)
    swapped = json.loads(data)  # two entries trade places
    first, second = swapped["entries"][0], swapped["entries"][1]
    first["index"], second["index"] = second["index"], first["index"]
    with pytest.raises(BadEvidence, match="is not in the log at size 9"):
        verify_bundle(json.dumps(swapped).encode())
    resigned = json.loads(data)  # the checkpoint altered, or signed by another key
    resigned["checkpoint"] = resigned["checkpoint"].replace("\n9\n", "\n8\n")
    with pytest.raises(BadEvidence, match="does not verify"):
        verify_bundle(json.dumps(resigned).encode())
    other_note = Checkpoint.open(bundle["checkpoint"], KEY.verifier)
    resigned["checkpoint"] = other_note.sign(LogKey.generate(KEY.name))
    with pytest.raises(BadEvidence, match="no signature with that key"):
        verify_bundle(json.dumps(resigned).encode())
    # Negative indexes walk the same path bits as the last leaf; they must not count again.
    padded = json.loads(data)
    last = padded["entries"][-1]
    padded["entries"].append({**last, "index": last["index"] - 9 - 16})
    with pytest.raises(BadEvidence, match="whole number from 0"):
        verify_bundle(json.dumps(padded).encode())
    padded["entries"][-1]["index"] = True
    with pytest.raises(BadEvidence, match="whole number from 0"):
        verify_bundle(json.dumps(padded).encode())
    # A bundle that says it is about another packet than its entries is refused.
    relabelled = json.loads(data)
    relabelled["subject"] = {"packet_id": str(uuid.UUID(int=3))}
    with pytest.raises(BadEvidence, match="does not match the bundle's subject"):
        verify_bundle(json.dumps(relabelled).encode())
    relabelled["subject"] = {"packet_id": str(packet), "sender": "000.99.99.X00"}
    with pytest.raises(BadEvidence, match="names what it cannot check: sender"):
        verify_bundle(json.dumps(relabelled).encode())
    broken = json.loads(data)
    broken["entries"][0]["entry"]["detail"] = "\ud800"
    with pytest.raises(BadEvidence, match="not valid Unicode"):
        verify_bundle(json.dumps(broken).encode())


@pytest.mark.asyncio
async def test_queries_filter_and_page_by_index(log: tuple[AuditStore, Attacker]) -> None:
    store, _ = log
    await store.append(entries(30))
    delivered = AuditQuery(event=AuditEvent.DELIVERED, agency=AGENCIES[2], limit=3)
    page = await store.query(delivered)
    assert [e.index for e in page] == [5, 11, 17]
    rest = await store.query(delivered.next_page(17))
    assert [e.index for e in rest] == [23, 29]
    since = AuditQuery(since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=14))
    assert [e.index for e in await store.query(since)] == [10, 11, 12, 13]
    first = await store.query(AuditQuery(limit=4, newest_first=True))
    assert [e.index for e in first] == [29, 28, 27, 26]
    second = await store.query(AuditQuery(limit=4, newest_first=True).next_page(26))
    assert [e.index for e in second] == [25, 24, 23, 22]
    by_document = AuditQuery(document_id="000.00.00.H56,2026/11/27,4/UBND")
    assert [e.index for e in await store.query(by_document)] == [12, 13, 14]


def test_bad_queries_are_refused_with_each_fault_named() -> None:
    with pytest.raises(BadQuery, match="since must be before until"):
        AuditQuery.of({"since": "2026-11-27T10:00:00Z", "until": "2026-11-27T09:00:00Z"})
    with pytest.raises(BadQuery, match="time must carry its zone"):
        AuditQuery.of({"since": "2026-11-27T10:00:00"})
    with pytest.raises(BadQuery, match="agency"):
        AuditQuery.of({"agency": "H56"})
    with pytest.raises(BadQuery) as raised:
        AuditQuery.of({"limit": "0", "event": "exploded", "colour": "red"})
    fields = {problem["field"] for problem in raised.value.details}
    assert fields == {"limit", "event", "colour"}


FIELDS_SQL = "at, event, packet_id, sender, recipient, kind, document_id, payload_sha256"


async def tampered(log: tuple[AuditStore, Attacker], *statements: str) -> list[str]:
    """Fill a log of 40 entries with checkpoints, run the attacker's SQL, verify."""
    store, attacker = log
    await filled(store, [10, 25, 40])
    assert (await verify_log(store, KEY.verifier)).ok
    await attacker.run(*statements)
    report = await verify_log(store, KEY.verifier)
    assert not report.ok
    return [p.message for p in report.problems] + [f"first={report.first_bad_entry}"]


@pytest.mark.asyncio
async def test_a_changed_entry_is_named(log: tuple[AuditStore, Attacker]) -> None:
    found = await tampered(log, "UPDATE audit_entries SET outcome = 'refused' WHERE idx = 17")
    assert "entry 17 does not match its leaf hash" in found[0]
    assert found[-1] == "first=17"


def forged_leaf(index: int) -> str:
    changed = entries(40)[index].model_copy(update={"outcome": "refused"})
    return leaf_hash(changed.canonical()).hex()


@pytest.mark.asyncio
async def test_a_changed_entry_with_its_leaf_is_found_through_the_signed_tree(
    log: tuple[AuditStore, Attacker],
) -> None:
    found = await tampered(
        log,
        f"UPDATE audit_entries SET outcome = 'refused', leaf = $bytes'{forged_leaf(17)}'"
        " WHERE idx = 17",
    )
    assert found[0] == "entry 17 was altered: it differs from the one signed in checkpoint 25"
    assert found[-1] == "first=17"


@pytest.mark.asyncio
async def test_a_change_down_to_the_stored_tree_is_narrowed_to_its_pair(
    log: tuple[AuditStore, Attacker],
) -> None:
    leaf = forged_leaf(17)
    found = await tampered(
        log,
        f"UPDATE audit_entries SET outcome = 'refused', leaf = $bytes'{leaf}' WHERE idx = 17",
        f"UPDATE audit_tree SET hash = $bytes'{leaf}' WHERE level = 0 AND idx = 17",
    )
    # The forged leaf leads no further than the pair it breaks: entries 16 and 17.
    assert "entries 16 to 17: one was altered since checkpoint 25" in found[0]
    assert found[-1] == "first=16"


@pytest.mark.asyncio
async def test_a_rewritten_stored_tree_is_reported(log: tuple[AuditStore, Attacker]) -> None:
    found = await tampered(
        log, f"UPDATE audit_tree SET hash = $bytes'{'00' * 32}' WHERE level = 5 AND idx = 0"
    )
    assert found[0] == (
        "the tree's stored hash over entries 0 to 31 disagrees with them: "
        "proofs for them would fail"
    )


@pytest.mark.asyncio
async def test_one_damaged_leaf_of_the_stored_tree_is_reported(
    log: tuple[AuditStore, Attacker],
) -> None:
    found = await tampered(
        log, f"UPDATE audit_tree SET hash = $bytes'{'00' * 32}' WHERE level = 0 AND idx = 2"
    )
    assert found[0] == (
        "the tree's stored hash over entries 2 to 2 disagrees with them: proofs for them would fail"
    )


@pytest.mark.asyncio
async def test_a_deleted_entry_is_named(log: tuple[AuditStore, Attacker]) -> None:
    found = await tampered(log, "DELETE FROM audit_entries WHERE idx = 12")
    assert found[0].startswith("entry 12 is missing")
    assert found[-1] == "first=12"


@pytest.mark.asyncio
async def test_the_last_entries_deleted_are_named(log: tuple[AuditStore, Attacker]) -> None:
    found = await tampered(log, "DELETE FROM audit_entries WHERE idx >= 38")
    assert found[0] == "entries 38 to 39 are missing from the end: checkpoint 40 signed them"
    assert found[-1] == "first=38"


@pytest.mark.asyncio
async def test_an_inserted_entry_is_named(log: tuple[AuditStore, Attacker]) -> None:
    # The attacker makes room at 20 by moving every later entry one place on.
    found = await tampered(
        log,
        "UPDATE audit_entries SET idx = idx + 1000 WHERE idx >= 20",
        "UPDATE audit_entries SET idx = idx - 999 WHERE idx >= 1000",
        f"INSERT INTO audit_entries (idx, leaf, {FIELDS_SQL}) SELECT 20, leaf, {FIELDS_SQL}"
        " FROM audit_entries WHERE idx = 5",
    )
    assert found[0].startswith("entry 20 ")
    assert found[-1] == "first=20"


@pytest.mark.asyncio
async def test_reordered_entries_are_named(log: tuple[AuditStore, Attacker]) -> None:
    found = await tampered(
        log,
        "UPDATE audit_entries SET idx = -1 WHERE idx = 30",
        "UPDATE audit_entries SET idx = 30 WHERE idx = 31",
        "UPDATE audit_entries SET idx = 31 WHERE idx = -1",
    )
    assert "entry 30 was altered" in found[0]
    assert found[-1] == "first=30"


@pytest.mark.asyncio
async def test_a_changed_checkpoint_is_named(log: tuple[AuditStore, Attacker]) -> None:
    found = await tampered(
        log, "UPDATE audit_checkpoints SET note = replace(note, '\n25\n', '\n24\n') WHERE size = 25"
    )
    assert found[0] == "checkpoint 25: the signature by lgsp-adapter/test does not verify"


@pytest.mark.asyncio
async def test_a_log_whose_checkpoints_were_all_deleted_does_not_verify(
    log: tuple[AuditStore, Attacker],
) -> None:
    found = await tampered(log, "DELETE FROM audit_checkpoints")
    assert found == [
        "the log holds 40 entries and no checkpoint: no signature vouches for any of them "
        "(the daemon signs one at every start)",
        "first=0",
    ]


@pytest.mark.asyncio
async def test_an_empty_log_without_checkpoints_verifies(log: tuple[AuditStore, Attacker]) -> None:
    assert (await verify_log(log[0], KEY.verifier)).ok


@pytest.mark.asyncio
async def test_a_checkpoint_whose_columns_were_changed_is_named(
    log: tuple[AuditStore, Attacker],
) -> None:
    found = await tampered(log, "UPDATE audit_checkpoints SET size = 26 WHERE size = 25")
    assert found[0] == "checkpoint 26: its stored size or root differs from its signed note"


@pytest.mark.asyncio
async def test_a_checkpoint_signed_with_another_key_is_named(
    log: tuple[AuditStore, Attacker],
) -> None:
    store, attacker = log
    await filled(store, [10, 25, 40])
    forger = LogKey.generate(KEY.name)
    rows = await store.checkpoints()
    forged = Checkpoint(origin=KEY.name, size=25, root=rows[1].root, at=rows[1].at).sign(forger)
    await attacker.run(
        "DELETE FROM audit_checkpoints WHERE size = 25",
        "INSERT INTO audit_checkpoints (size, root, at, note) VALUES (25, "
        f"$bytes'{rows[1].root.hex()}', '{rows[1].at.isoformat()}', '{forged}')",
    )
    report = await verify_log(store, KEY.verifier)
    assert [p.message for p in report.problems] == [
        f"checkpoint 25: not signed by {KEY.name} ({KEY.verifier.key_id.hex()}):"
        " no signature with that key"
    ]


CHILD = """
import asyncio, sys
from tests.audit_stores import reopen
from tests.test_audit_log import KEY_FILE_NAME, entries
from lgsp_adapter.audit.signing import LogKey

async def main(backend, location, key_path):
    key = LogKey.load_or_create(__import__("pathlib").Path(key_path), "lgsp-adapter/test")
    async with reopen(backend, location) as store:
        n = 0
        while True:
            await store.append(entries(3, n))
            n += 3
            print(n, flush=True)
            await store.checkpoint(key)

asyncio.run(main(*sys.argv[1:]))
"""
KEY_FILE_NAME = "audit.key"


@pytest.mark.asyncio
async def test_a_crash_between_entries_and_checkpoints_loses_neither(
    log: tuple[AuditStore, Attacker], tmp_path: Path
) -> None:
    store, attacker = log
    key_path = tmp_path / KEY_FILE_NAME
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        attacker.backend,
        attacker.location,
        str(key_path),
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parents[1],
    )
    assert child.stdout is not None
    acknowledged = 0
    while acknowledged < 150:
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        assert line, "the child stopped early"
        acknowledged = int(line)
    child.send_signal(signal.SIGKILL)
    await child.wait()
    key = LogKey.load_or_create(key_path, "lgsp-adapter/test")
    size = await store.tree_size()
    assert size >= acknowledged  # every append the child saw commit is there
    report = await verify_log(store, key.verifier)
    assert report.ok, report.problems
    made = await store.checkpoint(key)
    assert made is not None
    assert made.size == size
    assert (await verify_log(store, key.verifier)).ok


@pytest.mark.asyncio
async def test_concurrent_appenders_keep_one_gapless_tree(
    tmp_path: Path, postgres_database: str
) -> None:
    """Replicas on one PostgreSQL append at once; the tree stays one, indexes gapless."""
    async with open_store("postgres", tmp_path, postgres_database) as (store, attacker):
        async with reopen("postgres", attacker.location) as other:
            await asyncio.gather(
                *(s.append(entries(2, 0)) for _ in range(20) for s in (store, other))
            )
        assert await store.tree_size() == 80
        await store.checkpoint(KEY)
        assert (await verify_log(store, KEY.verifier)).ok


@pytest.mark.asyncio
async def test_archives_leave_a_log_that_verifies_and_proves_and_chain_on(
    log: tuple[AuditStore, Attacker], tmp_path: Path
) -> None:
    store, _ = log
    await filled(store, [10, 25, 40])
    folder = tmp_path / "archive"
    first = await archive_before(store, KEY, T0 + timedelta(seconds=30), folder, actor="test")
    assert first is not None
    assert (first.start, first.end) == (0, 25)  # the last checkpoint before the cut
    assert await store.entries(0, 25) == []
    report = await verify_log(store, KEY.verifier, archive_dir=folder)
    assert report.ok, report.problems
    assert report.archived_below == 25
    assert verify_archive(folder / first.file, KEY.verifier).end == 25
    # Entries still held are proven as before, the first one after the cut included.
    await store.checkpoint(KEY)
    latest = (await store.checkpoints())[-1]
    for entry in await store.entries(25, 41):
        document = await inclusion_document(store, entry, latest)
        path = [base64.b64decode(node) for node in document["audit_path"]]
        assert rfc9162.inclusion_holds(
            entry.canonical(), entry.index or 0, latest.size, path, latest.root
        )
    second = await archive_before(store, KEY, T0 + timedelta(seconds=100), folder, actor="test")
    assert second is not None
    assert (second.start, second.end) == (25, 40)  # chained on from the first
    assert verify_archive(folder / second.file).start == 25
    assert (await verify_log(store, KEY.verifier, archive_dir=folder)).ok
    admin = await store.query(AuditQuery(event=AuditEvent.ADMIN))
    assert [e.outcome for e in admin] == ["archived", "archived"]


@pytest.mark.asyncio
async def test_entries_cannot_leave_by_a_forged_archive_record(
    log: tuple[AuditStore, Attacker], tmp_path: Path
) -> None:
    store, attacker = log
    await filled(store, [10, 25, 40])
    await attacker.run(
        'INSERT INTO audit_archives (start, "end", file, sha256, at)'
        " VALUES (0, 10, 'audit-forged.jsonl', 'x', '2026-11-27T08:00:00.000000Z')",
        "DELETE FROM audit_entries WHERE idx < 10",
    )
    report = await verify_log(store, KEY.verifier, archive_dir=tmp_path)
    assert report.first_bad_entry == 0
    assert "archive audit-forged.jsonl (entries 0 to 9): cannot read" in report.problems[0].message


@pytest.mark.asyncio
async def test_archiving_refuses_entries_that_were_tampered_with(
    log: tuple[AuditStore, Attacker], tmp_path: Path
) -> None:
    store, attacker = log
    await filled(store, [10, 25, 40])
    await attacker.run(
        f"UPDATE audit_entries SET outcome = 'refused', leaf = $bytes'{forged_leaf(5)}'"
        " WHERE idx = 5"
    )
    folder = tmp_path / "archive"
    with pytest.raises(LgspError, match="do not rebuild the checkpoint of size 25"):
        await archive_before(store, KEY, T0 + timedelta(seconds=30), folder, actor="test")
    assert await store.archives() == []
    assert len(await store.entries(0, 40)) == 40
    assert await asyncio.to_thread(lambda: list(folder.glob("*"))) == []  # no partial file


@pytest.mark.asyncio
async def test_a_change_past_an_unaligned_archive_boundary_is_named(
    log: tuple[AuditStore, Attacker], tmp_path: Path
) -> None:
    store, attacker = log
    await filled(store, [3, 8, 13])
    await archive_before(store, KEY, T0 + timedelta(seconds=5), tmp_path, actor="test")
    await attacker.run(
        f"UPDATE audit_entries SET outcome = 'refused', leaf = $bytes'{forged_leaf(6)}'"
        " WHERE idx = 6"
    )
    report = await verify_log(store, KEY.verifier, archive_dir=tmp_path)
    assert report.problems[0].message == (
        "entry 6 was altered: it differs from the one signed in checkpoint 8"
    )


@pytest.mark.asyncio
async def test_archiving_goes_by_the_signed_note_not_the_rows_root(
    log: tuple[AuditStore, Attacker], tmp_path: Path
) -> None:
    """The attacker changes an entry and makes the checkpoint row's root column agree."""
    store, attacker = log
    await filled(store, [10, 25, 40])
    changed = [
        e.model_copy(update={"outcome": "refused"}) if e.index == 5 else e
        for e in await store.entries(0, 25)
    ]
    forged_root = root([leaf_hash(e.canonical()) for e in changed])
    await attacker.run(
        f"UPDATE audit_entries SET outcome = 'refused', leaf = $bytes'{forged_leaf(5)}'"
        " WHERE idx = 5",
        f"UPDATE audit_checkpoints SET root = $bytes'{forged_root.hex()}' WHERE size = 25",
    )
    with pytest.raises(LgspError, match="do not rebuild the checkpoint of size 25"):
        await archive_before(
            store, KEY, T0 + timedelta(seconds=30), tmp_path / "archive", actor="test"
        )
    assert len(await store.entries(0, 40)) == 40


@pytest.mark.asyncio
async def test_archiving_goes_by_the_signed_size_not_the_rows_size(
    log: tuple[AuditStore, Attacker], tmp_path: Path
) -> None:
    """The attacker moves a checkpoint row to a smaller size, to archive fewer entries than
    the note signs (the rest would leave the store in no archive)."""
    store, attacker = log
    await filled(store, [10, 25, 40])
    await attacker.run("UPDATE audit_checkpoints SET size = 20 WHERE size = 25")
    folder = tmp_path / "archive"
    with pytest.raises(LgspError, match="do not rebuild the checkpoint of size 20"):
        await archive_before(store, KEY, T0 + timedelta(seconds=30), folder, actor="test")
    assert await store.archives() == []
    assert len(await store.entries(0, 40)) == 40
    assert await asyncio.to_thread(lambda: list(folder.glob("*"))) == []


@pytest.mark.asyncio
async def test_a_damaged_node_under_archived_entries_is_reported(
    log: tuple[AuditStore, Attacker], tmp_path: Path
) -> None:
    store, attacker = log
    await filled(store, [10, 25, 40])
    folder = tmp_path / "archive"
    await archive_before(store, KEY, T0 + timedelta(seconds=30), folder, actor="test")
    await attacker.run(
        f"UPDATE audit_tree SET hash = $bytes'{'00' * 32}' WHERE level = 1 AND idx = 5"
    )
    report = await verify_log(store, KEY.verifier, archive_dir=folder)
    assert [p.message for p in report.problems] == [
        "the tree's stored hash over entries 10 to 11 disagrees with them: "
        "proofs for them would fail"
    ]


@pytest.mark.asyncio
async def test_an_archive_record_must_name_a_file_in_the_archive_folder(
    log: tuple[AuditStore, Attacker], tmp_path: Path
) -> None:
    store, attacker = log
    await filled(store, [10, 25, 40])
    folder = tmp_path / "archive"
    record = await archive_before(store, KEY, T0 + timedelta(seconds=30), folder, actor="test")
    assert record is not None
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_bytes((folder / record.file).read_bytes())  # a test's setup
    await attacker.run(f"UPDATE audit_archives SET file = '{outside}', at = 'garbage'")
    report = await verify_log(store, KEY.verifier, archive_dir=folder)
    assert "not a file name in the archive folder" in report.problems[0].message
    assert report.first_bad_entry == 0


@pytest.mark.asyncio
async def test_a_change_is_named_even_when_the_stored_tree_is_compared_early(
    log: tuple[AuditStore, Attacker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored subtrees are compared in batches before the checkpoint above them is reached;
    an altered entry makes them differ too, and must not be mistaken for a damaged tree."""
    monkeypatch.setattr("lgsp_adapter.audit.verify._NODE_BATCH", 4)
    found = await tampered(
        log,
        f"UPDATE audit_entries SET outcome = 'refused', leaf = $bytes'{forged_leaf(17)}'"
        " WHERE idx = 17",
    )
    assert found[0] == "entry 17 was altered: it differs from the one signed in checkpoint 25"
    assert not any("stored hash" in f for f in found)


@pytest.mark.asyncio
async def test_a_last_leaf_rewritten_everywhere_is_placed_after_the_last_sound_checkpoint(
    log: tuple[AuditStore, Attacker],
) -> None:
    found = await tampered(
        log,
        f"UPDATE audit_entries SET outcome = 'refused', leaf = $bytes'{forged_leaf(24)}'"
        " WHERE idx = 24",
        f"UPDATE audit_tree SET hash = $bytes'{forged_leaf(24)}' WHERE level = 0 AND idx = 24",
    )
    # Everything below checkpoint 10, which still matches, is sound; the change is above it.
    assert found[0].startswith("entries 10 to 24: one was altered since checkpoint 25")
    assert found[-1] == "first=10"
