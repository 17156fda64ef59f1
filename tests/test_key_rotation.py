"""Rotating the audit signing key: the log hands over from the old key to the new in a
checkpoint both sign, everything signed before still verifies, a retired key signs nothing
more, and no daemon may be signing meanwhile."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.audit.archive import archive_before
from lgsp_adapter.audit.rotation import keyring, rotate_key
from lgsp_adapter.audit.signing import Keyring, LogKey
from lgsp_adapter.audit.verify import verify_log
from lgsp_adapter.daemon.audit_duties import check_shared_key
from lgsp_adapter.errors import FatalError, LgspError
from lgsp_adapter.http.audit import AuditAccess
from lgsp_adapter.store.postgres import PostgresStore
from lgsp_adapter.store.sqlite import SqliteStore
from tests.cli_process import lgsp_adapter
from tests.exchange_stores import fresh_schema

pytestmark = pytest.mark.asyncio
NAME = "lgsp-adapter/test-province"  # the log's name, which it keeps across keys


def entries(count: int, start: int = 0) -> list[AuditEntry]:
    return [
        AuditEntry(event=AuditEvent.ADMIN, outcome="test", detail=f"entry {start + n}")
        for n in range(count)
    ]


def config(tmp_path: Path, store: str | None = None) -> Path:
    path = tmp_path / "lgsp-adapter.toml"
    url = f'url = "{store}"\n' if store else ""
    path.write_text(
        f'[audit]\norigin = "{NAME}"\n'
        f'[store]\npath = "{tmp_path / "store.sqlite3"}"\n{url}'
        '[[agencies]]\ncode = "000.00.00.H56"\nname = "Province"\n'
        '[agencies.endpoint]\nurl = "http://127.0.0.1:9/inbox"\n'
    )
    return path


async def signed_log(tmp_path: Path) -> LogKey:
    """A store with entries and a checkpoint signed by a key where the settings put it."""
    key = LogKey.load_or_create(tmp_path / "audit-signing.key", NAME)
    async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
        await store.append(entries(5))
        await store.audit.checkpoint(key)
    return key


async def test_a_rotation_hands_over_and_everything_still_verifies(tmp_path: Path) -> None:
    old = await signed_log(tmp_path)
    settings = config(tmp_path)
    status, out, err = await lgsp_adapter("audit", "rotate-key", "--config", str(settings))
    assert status == 0, err
    assert f"retired  {old.verifier.fingerprint}" in out
    new = LogKey.load(tmp_path / "audit-signing.key", NAME)
    assert new.verifier != old.verifier
    (retired,) = list(tmp_path.glob("audit-signing.key.retired-*"))  # noqa: ASYNC240
    assert LogKey.load(retired, NAME).verifier == old.verifier
    assert stat.S_IMODE(retired.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "audit-signing.key").stat().st_mode) == 0o600

    async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
        handover = await store.audit.latest_checkpoint()
        assert handover is not None
        assert handover.size == 6  # the five entries and the hand-over entry
        (entry,) = await store.audit.entries(5, 6)
        assert entry.outcome == "key_rotated"
        assert new.verifier.encoded() in (entry.detail or "")
        # The daemon, started with the new key, carries on and signs with it alone.
        await check_shared_key(store.audit, new, tmp_path / "audit-signing.key")
        await store.append(entries(3, 5))
        later = await store.audit.checkpoint(new)
        assert later is not None
        assert later.note.count("\n\u2014 ") == 1

    # With the keys on this machine (the current and the retired), the whole log verifies.
    status, out, err = await lgsp_adapter("audit", "verify", "--config", str(settings))
    assert status == 0, err
    assert "3 signed checkpoints" in out
    # An auditor holding every key the log had (`public-key --all`) verifies it too...
    status, every, err = await lgsp_adapter(
        "audit", "public-key", "--all", "--config", str(settings)
    )
    assert status == 0, err
    assert every.splitlines() == [old.verifier.encoded(), new.verifier.encoded()]
    keys = tmp_path / "auditor-keys.txt"
    keys.write_text(every)
    status, _, err = await lgsp_adapter(
        "audit", "verify", "--config", str(settings), "--public-key", str(keys)
    )
    assert status == 0, err
    # ... while one who pinned only the new key cannot vouch for the old key's checkpoint.
    only_new = tmp_path / "new-key.txt"
    only_new.write_text(new.verifier.encoded() + "\n")
    status, _, err = await lgsp_adapter(
        "audit", "verify", "--config", str(settings), "--public-key", str(only_new)
    )
    assert status == 1
    assert "checkpoint 5: not signed by" in err


async def test_a_retired_key_may_not_start_a_daemon(tmp_path: Path) -> None:
    old = await signed_log(tmp_path)
    key_path = tmp_path / "audit-signing.key"
    async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
        done = await rotate_key(store.audit, key_path, NAME, "test")
        new = LogKey.load(key_path, NAME)
        with pytest.raises(FatalError, match="was retired at size 6"):
            await check_shared_key(store.audit, old, key_path)
        await check_shared_key(store.audit, new, key_path)
        await store.append(entries(1, 5))
        await store.audit.checkpoint(new)
        with pytest.raises(FatalError, match="not signed by the key"):
            await check_shared_key(store.audit, old, key_path)
        report = await verify_log(store.audit, old.verifier)
        # The old key alone checks what it signed; the hand-over's second signature and what
        # the new key signed need the new key (auditors get every key: public-key --all).
        assert [p.checkpoint for p in report.problems] == [6, 7]
    assert done.retired == old.verifier


async def test_a_rotation_cut_short_is_finished_not_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await signed_log(tmp_path)
    key_path = tmp_path / "audit-signing.key"
    real_replace = os.replace

    def crash(*args: object) -> None:
        raise OSError("the power went")

    async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
        monkeypatch.setattr("lgsp_adapter.audit.rotation.os.replace", crash)
        with pytest.raises(OSError, match="power"):
            await rotate_key(store.audit, key_path, NAME, "test")
        assert LogKey.load(key_path, NAME).verifier == old.verifier  # still the old key
        monkeypatch.setattr("lgsp_adapter.audit.rotation.os.replace", real_replace)
        done = await rotate_key(store.audit, key_path, NAME, "test")
        assert done.checkpoint.size == 6  # the same hand-over, not a second rotation
        assert len(await store.audit.checkpoints()) == 2
        assert LogKey.load(key_path, NAME).verifier == done.current
        assert not key_path.with_name("audit-signing.key.new").exists()


async def test_no_rotation_while_a_daemon_runs_on_the_store(
    tmp_path: Path, postgres_database: str
) -> None:
    await signed_log(tmp_path)
    async with await SqliteStore.open(tmp_path / "store.sqlite3", owner=True):
        status, _, err = await lgsp_adapter(
            "audit", "rotate-key", "--config", str(config(tmp_path))
        )
    assert status == 1
    assert "another lgsp-adapter process is running" in err

    dsn = await fresh_schema(postgres_database)
    LogKey.load_or_create(tmp_path / "pg" / "audit-signing.key", NAME)
    (tmp_path / "pg").mkdir(exist_ok=True)
    async with await PostgresStore.open(dsn) as daemon:
        assert await daemon.take_role("relay")  # as a running daemon's relay holds it
        status, _, err = await lgsp_adapter(
            "audit", "rotate-key", "--config", str(config(tmp_path / "pg", dsn))
        )
    assert status == 1
    assert "a daemon is running on this store" in err
    status, out, err = await lgsp_adapter(
        "audit", "rotate-key", "--config", str(config(tmp_path / "pg", dsn))
    )
    assert status == 0, err
    assert "hand-over checkpoint at size 1" in out


async def test_a_log_named_after_its_key_is_named_before_rotating(tmp_path: Path) -> None:
    key = LogKey.load_or_create(tmp_path / "audit-signing.key", None)
    async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
        with pytest.raises(FatalError, match=f'set \\[audit\\] origin = "{key.name}"'):
            await rotate_key(store.audit, tmp_path / "audit-signing.key", None, "test")


async def test_a_retired_key_signing_after_the_hand_over_does_not_verify(tmp_path: Path) -> None:
    # The reason to rotate is often a key that leaked: whoever holds it and the database must
    # not be able to extend the log past the hand-over, even for an auditor who trusts both.
    old = await signed_log(tmp_path)
    key_path = tmp_path / "audit-signing.key"
    async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
        await rotate_key(store.audit, key_path, NAME, "test")
        new = LogKey.load(key_path, NAME)
        await store.append(entries(2, 5))
        await store.audit.checkpoint(old)  # the leaked key, after its hand-over
        report = await verify_log(store.audit, Keyring((old.verifier, new.verifier)))
        assert [p.checkpoint for p in report.problems] == [8]
        assert "the log's key at this size" in report.problems[0].message


async def test_archiving_past_the_hand_over_does_not_bring_the_old_key_back(
    tmp_path: Path,
) -> None:
    old = await signed_log(tmp_path)
    key_path = tmp_path / "audit-signing.key"
    async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
        with pytest.raises(LgspError, match="rotated out"):
            await rotate_and_archive_before_the_hand_over(store, key_path)
        new = LogKey.load(key_path, NAME)
        await archive_before(
            store.audit, new, datetime.now(UTC) + timedelta(days=1), tmp_path, actor="test"
        )
        assert await store.audit.entries(0, 6) == []  # the hand-over entry too
        with pytest.raises(FatalError, match="was retired"):
            await check_shared_key(store.audit, old, key_path)
        await check_shared_key(store.audit, new, key_path)
        access = AuditAccess(
            log=store.audit, key=new, archive_dir=tmp_path, trusted=keyring(key_path, NAME)
        )
        report, _, _ = await access.verification(wait_s=30)
        assert report is not None
        assert report.ok, report.problems


async def rotate_and_archive_before_the_hand_over(store: SqliteStore, key_path: Path) -> None:
    before = datetime.now(UTC) + timedelta(seconds=0)
    await asyncio.sleep(0.01)
    await rotate_key(store.audit, key_path, NAME, "test")
    # Entries older than `before` are those the old key's checkpoint covers: the archive would
    # carry the new key and the old key's checkpoint.
    await archive_before(
        store.audit, LogKey.load(key_path, NAME), before, key_path.parent, actor="test"
    )


async def test_an_unknown_signature_on_a_checkpoint_is_reported(tmp_path: Path) -> None:
    old = await signed_log(tmp_path)
    path = tmp_path / "store.sqlite3"
    stranger = LogKey.generate("someone/else")
    raw = sqlite3.connect(path)
    (note,) = raw.execute("SELECT note FROM audit_checkpoints").fetchone()
    raw.execute("DROP TRIGGER audit_checkpoints_no_update")
    raw.execute("UPDATE audit_checkpoints SET note = ?", (stranger.cosign(note),))
    raw.commit()
    raw.close()
    async with await SqliteStore.open(path) as store:
        report = await verify_log(store.audit, old.verifier)
        assert [p.checkpoint for p in report.problems] == [5]


async def test_a_rotation_stopped_before_its_checkpoint_finishes_with_one_hand_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await signed_log(tmp_path)
    key_path = tmp_path / "audit-signing.key"
    async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
        real = store.audit.checkpoint

        async def crash(*args: object, **kwargs: object) -> None:
            raise OSError("killed")

        monkeypatch.setattr(store.audit, "checkpoint", crash)
        with pytest.raises(OSError, match="killed"):
            await rotate_key(store.audit, key_path, NAME, "test")
        monkeypatch.setattr(store.audit, "checkpoint", real)
        done = await rotate_key(store.audit, key_path, NAME, "test")
        handovers = [e for e in await store.audit.entries(0, 10) if e.outcome == "key_rotated"]
        assert len(handovers) == 1
        assert done.current.encoded() in (handovers[0].detail or "")
        assert LogKey.load(key_path, NAME).verifier == done.current


async def test_commands_told_not_to_migrate_change_no_schema(
    tmp_path: Path, postgres_database: str
) -> None:
    dsn = await fresh_schema(postgres_database)
    settings = tmp_path / "settings.toml"
    settings.write_text(
        f'[store]\nurl = "{dsn}"\npath = "{tmp_path / "s.sqlite3"}"\nmigrate_on_start = false\n'
        '[[agencies]]\ncode = "000.00.00.H56"\nname = "T"\n[agencies.endpoint]\nurl = "http://x/"\n'
    )
    status, _, err = await lgsp_adapter("audit", "checkpoints", "--config", str(settings))
    assert status == 1
    assert "run `lgsp-adapter migrate`" in err
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
            " AND table_name LIKE 'audit%'"
        )
    finally:
        await conn.close()
    assert tables == 0
    missing = tmp_path / "mistyped.sqlite3"
    with pytest.raises(FatalError, match="run `lgsp-adapter migrate`"):
        await SqliteStore.open(missing, migrate=False)
    assert not missing.exists()
