"""`lgsp-adapter audit …` as an operator and an auditor run it: real processes on a real store,
exit codes, and what a tampered log, bundle or archive makes them say."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.store.sqlite import SqliteStore
from tests.test_audit_log import T0, entries

ORIGIN = "lgsp-adapter/cli-test"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    offline = args[0] in (
        "verify-bundle",
        "verify-archive",
        "verify-proof",
    )  # they need nothing but the file
    settings = [] if offline else ["--config", str(cwd / "lgsp.toml")]
    return subprocess.run(
        [sys.executable, "-m", "lgsp_adapter", "audit", *args, *settings],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A store of 60 entries with checkpoints at 20, 40 and 60, and its settings."""
    (tmp_path / "lgsp.toml").write_text(
        f'[store]\npath = "{tmp_path / "store.sqlite3"}"\n[audit]\norigin = "{ORIGIN}"\n'
    )
    key = LogKey.load_or_create(tmp_path / "audit-signing.key", ORIGIN)

    async def fill() -> None:
        async with await SqliteStore.open(tmp_path / "store.sqlite3") as store:
            for start in (0, 20, 40):
                await store.audit.append(entries(20, start))
                await store.audit.checkpoint(key)

    asyncio.run(fill())
    return tmp_path


def test_verify_passes_then_names_the_first_tampered_entry(folder: Path) -> None:
    result = run("verify", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "the log verifies: 60 entries, 3 signed checkpoints, tree size 60\n"
    assert "\r" not in result.stderr  # no progress in a pipe
    db = sqlite3.connect(folder / "store.sqlite3")
    db.execute("DROP TRIGGER audit_entries_no_update")
    db.execute("UPDATE audit_entries SET outcome = 'refused' WHERE idx IN (33, 45)")
    db.commit()
    db.close()
    result = run("verify", cwd=folder)
    assert result.returncode == 1
    assert "audit.tampered" in result.stderr
    assert "first bad entry: 33" in result.stderr
    assert "entry 33 does not match its leaf" in result.stderr


def test_verify_against_a_published_key_refuses_another(folder: Path) -> None:
    published = folder / "published.key"
    result = run("public-key", cwd=folder)
    published.write_text(result.stdout)
    assert run("verify", "--public-key", str(published), cwd=folder).returncode == 0
    other = folder / "other.key"
    other.write_text(LogKey.generate(ORIGIN).verifier.encoded())
    result = run("verify", "--public-key", str(other), cwd=folder)
    assert result.returncode == 1
    assert "checkpoint 20: not signed by" in result.stderr


def test_a_bundle_checks_offline_and_a_touched_one_fails(folder: Path) -> None:
    bundle = folder / "evidence.json"
    packet = str(entries(1, 3)[0].packet_id)
    result = run("bundle", packet, "-o", str(bundle), cwd=folder)
    assert result.returncode == 0, result.stderr
    alone = subprocess.run(
        [sys.executable, "-m", "lgsp_adapter", "audit", "verify-bundle", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert alone.returncode == 0, alone.stderr
    assert (
        "bundle verifies: 3 entries are in log 'lgsp-adapter/cli-test' at size 60" in alone.stdout
    )
    document = json.loads(bundle.read_text())
    document["entries"][0]["entry"]["at"] = "2026-11-27T08:00:04.000000Z"
    del document["entries"][0]["leaf_hash"]
    bundle.write_text(json.dumps(document))
    result = run("verify-bundle", str(bundle), cwd=folder)
    assert result.returncode == 1
    assert "audit.bad_bundle" in result.stderr
    assert "entry 3 is not in the log at size 60" in result.stderr


def test_bad_queries_get_a_precise_error(folder: Path) -> None:
    result = run(
        "query", "--since", "2026-11-28T00:00Z", "--until", "2026-11-27T00:00Z", cwd=folder
    )
    assert result.returncode == 1
    assert "audit.bad_query" in result.stderr
    assert "since must be before until" in result.stderr
    result = run("query", "--agency", "H56", cwd=folder)
    assert "agency" in result.stderr
    assert result.returncode == 1


def test_query_pages_and_export_writes_every_entry(folder: Path) -> None:
    result = run("query", "--event", "delivered", "--limit", "5", cwd=folder)
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 5
    assert "next page: --after 14" in result.stderr
    result = run("query", "--event", "delivered", "--limit", "5", "--after", "14", cwd=folder)
    assert result.stdout.splitlines()[0].startswith("#17 ")
    # Newest first, the next page is before the last index shown, and says so (found by a
    # black-box probe: it said --after, which then meant before).
    newest = run("query", "--event", "delivered", "--limit", "5", "--newest-first", cwd=folder)
    last = int(newest.stdout.splitlines()[-1].split()[0][1:])
    assert f"next page: --before {last}" in newest.stderr
    following = run(
        "query",
        "--event",
        "delivered",
        "--limit",
        "5",
        "--newest-first",
        "--before",
        str(last),
        cwd=folder,
    )
    assert all(int(line.split()[0][1:]) < last for line in following.stdout.splitlines())
    assert following.stdout.splitlines()
    exported = run("export", "--format", "jsonl", cwd=folder)
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["index"] for line in lines] == list(range(60))
    assert lines[7]["detail"] == "Công văn số 7"
    csv_text = run("export", "--format", "csv", "--kind", "edoc", cwd=folder).stdout
    assert csv_text.splitlines()[0].startswith("index,at,event,packet_id")
    assert len(csv_text.splitlines()) == 61


def test_csv_export_keeps_formulas_from_running(folder: Path) -> None:
    async def add() -> None:
        async with await SqliteStore.open(folder / "store.sqlite3") as store:
            await store.audit.append(
                [AuditEntry(at=T0, event=AuditEvent.REJECTED, detail='=HYPERLINK("x")')]
            )

    asyncio.run(add())
    csv_text = run("export", "--format", "csv", "--event", "rejected", cwd=folder).stdout
    assert "'=HYPERLINK" in csv_text
    exact = run("export", "--format", "jsonl", "--event", "rejected", cwd=folder).stdout
    assert json.loads(exact)["detail"] == '=HYPERLINK("x")'


def test_proofs_come_out_as_documented_json(folder: Path) -> None:
    inclusion = json.loads(run("prove", "inclusion", "7", "--size", "20", cwd=folder).stdout)
    assert (inclusion["type"], inclusion["index"], inclusion["tree_size"]) == ("inclusion", 7, 20)
    consistency = json.loads(run("prove", "consistency", "20", "60", cwd=folder).stdout)
    assert (consistency["old_size"], consistency["new_size"]) == (20, 60)
    for name, document in (("inclusion", inclusion), ("consistency", consistency)):
        (folder / f"{name}.json").write_text(json.dumps(document))
    key = folder / "published.key"
    key.write_text(run("public-key", cwd=folder).stdout)
    checked = run(
        "verify-proof", str(folder / "inclusion.json"), "--public-key", str(key), cwd=folder
    )
    assert checked.stdout == "entry 7 is in log 'lgsp-adapter/cli-test' at size 20\n"
    checked = run(
        "verify-proof", str(folder / "consistency.json"), "--public-key", str(key), cwd=folder
    )
    assert "at size 60 extends it at size 20" in checked.stdout
    inclusion["entry"]["outcome"] = "refused"
    (folder / "inclusion.json").write_text(json.dumps(inclusion))
    refused = run(
        "verify-proof", str(folder / "inclusion.json"), "--public-key", str(key), cwd=folder
    )
    assert refused.returncode == 1
    assert "leaf_hash is not the hash of its fields" in refused.stderr
    result = run("prove", "consistency", "21", cwd=folder)
    assert result.returncode == 1
    assert "audit.not_found: no checkpoint of size 21" in result.stderr


def test_archiving_keeps_the_rest_verifiable_and_the_archive_checks_alone(folder: Path) -> None:
    before = (T0 + timedelta(seconds=45)).isoformat()
    result = run("archive", "--before", before, cwd=folder)
    assert result.returncode == 0, result.stderr
    assert "entries 0 to 39 archived to" in result.stdout
    archive = next((folder / "audit-archive").glob("*.jsonl"))
    assert run("verify-archive", str(archive), cwd=folder).returncode == 0
    verified = run("verify", cwd=folder)
    assert verified.returncode == 0, verified.stderr
    assert "(entries below 40 archived; archive files checked: 1)" in verified.stdout
    # Entries still in the store can be proven; archived ones come from the archive.
    assert run("prove", "inclusion", "41", cwd=folder).returncode == 0
    assert run("prove", "inclusion", "3", cwd=folder).returncode == 1
    lines = archive.read_text().splitlines()
    lines[5] = lines[5].replace("Công văn", "Công văn giả")
    archive.write_text("\n".join(lines) + "\n")
    result = run("verify-archive", str(archive), cwd=folder)
    assert result.returncode == 1
    assert "altered or cut" in result.stderr


def test_long_runs_show_progress_on_a_terminal_only(folder: Path) -> None:
    import os
    import pty

    terminal, side = pty.openpty()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lgsp_adapter",
            "audit",
            "verify",
            "--config",
            str(folder / "lgsp.toml"),
        ],
        stdout=subprocess.PIPE,
        stderr=side,
        text=True,
        timeout=60,
        check=False,
    )
    os.close(side)
    shown = os.read(terminal, 65536).decode()
    os.close(terminal)
    assert result.returncode == 0
    assert "\rverified 60/60 (100%)" in shown
    assert "\r" not in result.stdout  # the answer itself stays clean
