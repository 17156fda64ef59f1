"""Witnessed checkpoints: a witness cosigns only what extends what it cosigned before, and
`audit verify` fails, naming the witness, on a log rewritten after it was witnessed, even one
re-signed with the operator's own key. The witness is a real aiohttp server on loopback; the
stores are both backends."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from lgsp_adapter.audit.cosignature import WitnessKey, WitnessVerifier, checkpoint_text
from lgsp_adapter.audit.entry import AuditEvent
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.signing import LogKey, NoteError
from lgsp_adapter.audit.store import AuditStore
from lgsp_adapter.audit.tree import consistency_path
from lgsp_adapter.audit.verify import verify_log
from lgsp_adapter.audit.witness import Witness
from lgsp_adapter.audit.witness_check import Witnesses
from lgsp_adapter.audit.witness_client import WitnessClient, WitnessUnavailable, ask_witnesses
from lgsp_adapter.http.witness import add_witness_routes
from lgsp_adapter.store.sqlite import SqliteStore
from tests.audit_stores import Attacker
from tests.test_audit_log import KEY, entries, filled

WITNESS_NAME = "lgsp-adapter-witness/bo-y-te"


@asynccontextmanager
async def witness_server(tmp_path: Path, *keys: LogKey) -> AsyncIterator[tuple[str, Witness]]:
    """A witness of the logs of ``keys`` at a loopback URL, keeping its state in a store of
    its own (its audit log records the forks it refused)."""
    key = WitnessKey.load_or_create(tmp_path / "witness.key", WITNESS_NAME)
    async with await SqliteStore.open(tmp_path / "witness.sqlite3") as store:
        witness = Witness(key, {k.name: k.verifier for k in keys}, store.audit)
        app = web.Application()
        add_witness_routes(app, witness, store.audit)
        async with TestServer(app, host="127.0.0.1") as server:
            yield str(server.make_url("/witness")), witness


async def cosign_latest(store: AuditStore, url: str, witness: Witness) -> WitnessClient:
    """Have the witness at ``url`` cosign the log's latest checkpoint; the client that asked."""
    latest = await store.latest_checkpoint()
    assert latest is not None
    client = WitnessClient(url, witness.key.verifier)
    async with aiohttp.ClientSession() as http:
        await client.cosign(http, store, latest)
    return client


def test_a_cosignature_has_the_c2sp_shape_and_checks_only_its_checkpoint(tmp_path: Path) -> None:
    key = WitnessKey.load_or_create(tmp_path / "w.key", WITNESS_NAME)
    assert (tmp_path / "w.key").stat().st_mode & 0o777 == 0o600
    text = "lgsp-adapter/test\n3\n" + "A" * 43 + "=\ntime 2026-12-07T08:00:00.000000Z\n"
    line = key.cosign(text, datetime(2026, 12, 7, 8, tzinfo=UTC))
    name, blob = line.split(" ")[1:]
    assert name == WITNESS_NAME
    assert len(base64.b64decode(blob)) == 76
    verifier = WitnessVerifier.parse(key.verifier.encoded())
    assert verifier == key.verifier
    expected_id = hashlib.sha256(WITNESS_NAME.encode() + b"\n\x04" + verifier.public_key)
    assert verifier.key_id == expected_id.digest()[:4]
    assert verifier.check(line, text) == datetime(2026, 12, 7, 8, tzinfo=UTC)
    with pytest.raises(NoteError, match="does not verify"):
        verifier.check(line, text.replace("\n3\n", "\n4\n"))
    with pytest.raises(NoteError, match="type byte"):
        WitnessVerifier.parse(KEY.verifier.encoded().replace(KEY.name, WITNESS_NAME))


@pytest.mark.asyncio
async def test_a_witness_cosigns_each_checkpoint_that_extends_the_last(
    log: tuple[AuditStore, Attacker], tmp_path: Path
) -> None:
    store, _ = log
    async with witness_server(tmp_path, KEY) as (url, witness), aiohttp.ClientSession() as http:
        client = WitnessClient(url, witness.key.verifier)
        await filled(store, [10])
        first = await store.latest_checkpoint()
        assert first is not None
        line = await client.cosign(http, store, first)
        witness.key.verifier.check(line, checkpoint_text(first.note))
        await filled(store, [25, 40])
        latest = await store.latest_checkpoint()
        assert latest is not None
        # A client that forgot what the witness has (a restart) learns it from the 409.
        await WitnessClient(url, witness.key.verifier).cosign(http, store, latest)
        assert [(c.size, c.witness) for c in await store.cosignatures()] == [
            (10, WITNESS_NAME),
            (40, WITNESS_NAME),
        ]
        seen = await witness.state.witnessed(KEY.name)
        assert seen is not None
        assert seen.size == 40
        assert seen.root == latest.root
        # The same checkpoint again is cosigned again; the witness's view does not move.
        await WitnessClient(url, witness.key.verifier, size=40).cosign(http, store, latest)
        report = await verify_log(
            store, KEY.verifier, witnesses=await ask_witnesses([client], KEY.name)
        )
        assert report.ok, report.problems
        assert report.witnessed == {WITNESS_NAME: 40}
        assert "witness lgsp-adapter-witness/bo-y-te vouches up to 40" in report.summary()


async def post(url: str, body: bytes) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/add-checkpoint", data=body) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.text()


@pytest.mark.asyncio
async def test_the_witness_refuses_what_it_may_not_cosign_with_the_protocols_codes(
    tmp_path: Path,
) -> None:
    async with await SqliteStore.open(tmp_path / "log.sqlite3") as own:
        store = own.audit
        await filled(store, [10, 25])
        ten, latest = (await store.checkpoints())[0], await store.latest_checkpoint()
        assert latest is not None
        async with witness_server(tmp_path, KEY) as (url, witness):
            assert (await post(url, f"old 0\n\n{ten.note}".encode()))[0] == 200
            stranger = LogKey.generate("lgsp-adapter/stranger").sign_note(
                "lgsp-adapter/stranger\n1\n" + "A" * 43 + "=\ntime x\n"
            )
            assert (await post(url, f"old 0\n\n{stranger}".encode()))[0] == 404
            forged = LogKey.generate(KEY.name)  # the log's name, not its key
            other = forged.sign_note(checkpoint_text(latest.note))
            assert (await post(url, f"old 10\n\n{other}".encode()))[0] == 403
            status, kind, text = await post(url, f"old 0\n\n{latest.note}".encode())
            assert (status, kind, text) == (409, "text/x.tlog.size", "10\n")
            assert (await post(url, b"old 01\n\n" + latest.note.encode()))[0] == 400
            assert (await post(url, b"x" * 20_000))[0] == 413
            assert (await post(url, f"old 40\n\n{latest.note}".encode()))[0] == 400
            proof = await consistency_path(store, 10, 25)
            bad = [bytes(32), *proof[1:]]
            body = "old 10\n" + "".join(f"{base64.b64encode(h).decode()}\n" for h in bad)
            status, _, text = await post(url, f"{body}\n{latest.note}".encode())
            assert status == 422
            assert "fork" in text
            seen = await witness.state.witnessed(KEY.name)
            assert seen is not None
            assert seen.size == 10
            audit = cast(AuditStore, witness.state)  # the witness keeps its view in its log
            recorded = await audit.query(AuditQuery(event=AuditEvent.REJECTED))
            assert [e.outcome for e in recorded] == ["witness.inconsistent"]


@pytest.mark.asyncio
async def test_a_fork_is_never_cosigned(log: tuple[AuditStore, Attacker], tmp_path: Path) -> None:
    """The operator keeps two histories under one key: the witness cosigns one of them."""
    store, _ = log
    async with await SqliteStore.open(tmp_path / "fork.sqlite3") as fork_store:
        fork = fork_store.audit
        await filled(store, [10, 25])
        await fork.append(entries(10))
        await fork.append(entries(15, 11))  # one entry left out: another history from 10 on
        await fork.checkpoint(KEY)
        async with witness_server(tmp_path, KEY) as (url, witness), aiohttp.ClientSession() as http:
            client = WitnessClient(url, witness.key.verifier)
            latest = await store.latest_checkpoint()
            assert latest is not None
            await client.cosign(http, store, latest)
            other = await fork.latest_checkpoint()
            assert other is not None
            assert other.size == 25
            assert other.root != latest.root
            with pytest.raises(WitnessUnavailable, match=r"422.*fork"):
                await WitnessClient(url, witness.key.verifier).cosign(http, fork, other)


@asynccontextmanager
async def rewritten(
    store: AuditStore, path: Path, *, keep_cosignatures: bool
) -> AsyncIterator[AuditStore]:
    """The operator's rewrite: the same entries but one changed, in a new store, every
    checkpoint signed again with the log's own key (and the witness's old cosignatures kept,
    or not)."""
    async with await SqliteStore.open(path) as forged:
        await _rewrite(store, forged.audit, keep_cosignatures=keep_cosignatures)
        yield forged.audit


async def _rewrite(store: AuditStore, forged: AuditStore, *, keep_cosignatures: bool) -> None:
    old = await store.entries(0, await store.tree_size())
    old[17] = old[17].model_copy(update={"outcome": "delivery.refused"})
    sizes = [c.size for c in await store.checkpoints()]
    done = 0
    for size in sizes:
        await forged.append(old[done:size])
        await forged.checkpoint(KEY)
        done = size
    if keep_cosignatures:
        for cosignature in await store.cosignatures():
            await forged.add_cosignature(cosignature.size, cosignature.witness, cosignature.line)


@pytest.mark.asyncio
@pytest.mark.parametrize("keep_cosignatures", [True, False])
async def test_a_log_rewritten_after_it_was_witnessed_fails_verify_naming_the_witness(
    log: tuple[AuditStore, Attacker], tmp_path: Path, keep_cosignatures: bool
) -> None:
    store, _ = log
    await filled(store, [10, 25, 40])
    async with witness_server(tmp_path, KEY) as (url, witness):
        client = await cosign_latest(store, url, witness)
        async with rewritten(
            store, tmp_path / "forged.sqlite3", keep_cosignatures=keep_cosignatures
        ) as forged:
            alone = await verify_log(forged, KEY.verifier)
            assert alone.ok  # by its own key alone, a whole rewrite is sound: why witnesses
            online = await verify_log(
                forged, KEY.verifier, witnesses=await ask_witnesses([client], KEY.name)
            )
            assert not online.ok
            messages = [p.message for p in online.problems]
            assert any(
                m.startswith(f"witness {WITNESS_NAME} cosigned checkpoint 40 with root ")
                and m.endswith(f"the log was rewritten after {WITNESS_NAME} witnessed it")
                for m in messages
            ), messages
            offline = await verify_log(
                forged, KEY.verifier, witnesses=Witnesses(keys=(client.verifier,))
            )
            if keep_cosignatures:
                assert [p.message for p in offline.problems] == [
                    f"checkpoint 40: witness {WITNESS_NAME}'s cosignature does not verify over it: "
                    f"{WITNESS_NAME} vouched for another state of the log at this size, so the log "
                    "was rewritten and signed again after it was witnessed"
                ]
            else:
                assert offline.ok  # without the witness's own word, nothing is left to compare


@pytest.mark.asyncio
async def test_a_witness_that_saw_more_than_the_log_holds_fails_verify(
    log: tuple[AuditStore, Attacker], tmp_path: Path
) -> None:
    store, attacker = log
    await filled(store, [10, 25, 40])
    async with witness_server(tmp_path, KEY) as (url, witness):
        await cosign_latest(store, url, witness)
    # The operator removes the last entries, their checkpoint and its cosignature.
    await attacker.run(
        "DELETE FROM audit_entries WHERE idx >= 25",
        "DELETE FROM audit_checkpoints WHERE size = 40",
        "DELETE FROM audit_cosignatures",
    )
    async with witness_server(tmp_path, KEY) as (url, witness):
        report = await verify_log(
            store,
            KEY.verifier,
            witnesses=await ask_witnesses([WitnessClient(url, witness.key.verifier)], KEY.name),
        )
    assert [p.message for p in report.problems][-1].startswith(
        f"witness {WITNESS_NAME} cosigned checkpoint 40 at "
    )
    assert (
        "but the log now holds 25 entries: entries it signed were removed"
        in report.problems[-1].message
    )


@pytest.mark.asyncio
async def test_a_witness_out_of_reach_is_noted_not_failed(
    log: tuple[AuditStore, Attacker], tmp_path: Path
) -> None:
    store, _ = log
    await filled(store, [10])
    verifier = WitnessKey.load_or_create(tmp_path / "w.key", WITNESS_NAME).verifier
    away = WitnessClient("http://127.0.0.1:9/witness", verifier)
    report = await verify_log(store, KEY.verifier, witnesses=await ask_witnesses([away], KEY.name))
    assert report.ok
    assert report.notes
    assert report.notes[0].startswith(f"not asked: witness {WITNESS_NAME} at ")


@pytest.mark.asyncio
async def test_a_witness_that_forgot_the_log_is_a_problem_when_its_cosignatures_are_kept(
    log: tuple[AuditStore, Attacker], tmp_path: Path
) -> None:
    """Settings pointing, in the witness's name, to a server that knows nothing of the log."""
    store, _ = log
    await filled(store, [10])
    async with witness_server(tmp_path / "a", KEY) as (url, witness):
        await cosign_latest(store, url, witness)
    (tmp_path / "b").mkdir()
    key = WitnessKey.load_or_create(tmp_path / "a" / "witness.key", WITNESS_NAME)
    (tmp_path / "b" / "witness.key").write_bytes((tmp_path / "a" / "witness.key").read_bytes())
    (tmp_path / "b" / "witness.key").chmod(0o600)
    async with witness_server(tmp_path / "b", KEY) as (url, _):
        asked = await ask_witnesses([WitnessClient(url, key.verifier)], KEY.name)
        report = await verify_log(store, KEY.verifier, witnesses=asked)
    assert [p.message for p in report.problems] == [
        f"witness {WITNESS_NAME} says it cosigned no checkpoint of this log, but the log keeps "
        "its cosignatures: the witness lost its state, or the settings point to another server "
        "in its name"
    ]


@pytest.mark.asyncio
async def test_a_request_that_comes_in_pieces_is_read_whole(tmp_path: Path) -> None:
    async with await SqliteStore.open(tmp_path / "log.sqlite3") as own:
        await filled(own.audit, [10])
        latest = await own.audit.latest_checkpoint()
        assert latest is not None
        body = f"old 0\n\n{latest.note}".encode()

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 40):
                yield body[start : start + 40]
                await asyncio.sleep(0.01)

        async with (
            witness_server(tmp_path, KEY) as (url, _),
            aiohttp.ClientSession() as http,
            http.post(f"{url}/add-checkpoint", data=pieces()) as response,
        ):
            assert response.status == 200, await response.text()
