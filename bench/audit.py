"""Audit log benchmark: what the tamper-evident tree costs per entry, how long ``verify`` takes
over a large log, and how big one packet's evidence bundle is.

    python bench/audit.py [--entries 1000000] [--packets 2000] [--json bench/results/audit.json]

1. **Append cost.** ``--packets`` transactions of 4 entries each (a packet's received,
   published, delivered and receipt lines), each a durable commit (WAL, synchronous=FULL), into
   the audit log with its tree, and the same entries into a plain table of the same columns
   with no tree (the log before issue 4): the baseline, measured in the same run on the same
   disk. The difference is what the tree adds per entry.
2. **Verify.** A fresh log of ``--entries`` entries (appended 10,000 per transaction, a
   checkpoint every 100,000), then ``verify_log`` over all of it.
3. **Bundle.** The evidence bundle of one packet (5 entries) in that log.

Target (issue 4): appending must not make the exchange path measurably slower per packet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.audit.bundle import dump, make_bundle
from lgsp_adapter.audit.entry import FIELDS
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.audit.verify import verify_log
from lgsp_adapter.store.sqlite import SqliteStore

EVENTS = [AuditEvent.RECEIVED, AuditEvent.PUBLISHED, AuditEvent.DELIVERED, AuditEvent.RECEIPT]
T0 = datetime(2026, 11, 27, tzinfo=UTC)


def packet_entries(n: int, per_packet: int = 4) -> list[AuditEntry]:
    """The entries of packet ``n``, as the exchange writes them."""
    packet = uuid.UUID(int=n + 1)
    return [
        AuditEntry(
            at=T0 + timedelta(milliseconds=n * 10 + step),
            event=EVENTS[step % len(EVENTS)],
            packet_id=packet,
            sender="000.00.00.H56",
            recipient=f"000.{21 + n % 30:02d}.00.H56",
            kind="edoc",
            document_id=f"000.00.00.H56,2026/11/27,{n}/UBND-KSTTHC",
            payload_sha256=f"{n:064x}",
            outcome="ok",
            detail="HTTP 200 on attempt 1" if step == 2 else None,
        )
        for step in range(per_packet)
    ]


async def append_cost(folder: Path, packets: int) -> dict[str, float]:
    """Per-entry time of durable appends, with the tree and without (the baseline)."""
    batches = [packet_entries(n) for n in range(packets)]
    async with await SqliteStore.open(folder / "tree.sqlite3") as store:
        started = time.perf_counter()
        for batch in batches:
            await store.audit.append(batch)
        with_tree = time.perf_counter() - started
    columns = ", ".join(FIELDS)
    with contextlib.closing(sqlite3.connect(folder / "plain.sqlite3", isolation_level=None)) as db:
        for pragma in ("journal_mode=WAL", "synchronous=FULL"):
            db.execute(f"PRAGMA {pragma}")
        # The log as it was before issue 4: the same columns, indexed by packet.
        db.execute(f"CREATE TABLE plain (seq INTEGER PRIMARY KEY AUTOINCREMENT, {columns})")
        db.execute("CREATE INDEX plain_packet ON plain (packet_id, seq)")
        placeholders = ", ".join("?" * len(FIELDS))
        insert = f"INSERT INTO plain ({columns}) VALUES ({placeholders})"  # noqa: S608
        started = time.perf_counter()
        for batch in batches:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(insert, [tuple(e.fields().values()) for e in batch])
            db.execute("COMMIT")
        plain = time.perf_counter() - started
    entries = packets * 4
    return {
        "append_us_per_entry_with_tree": with_tree / entries * 1e6,
        "append_us_per_entry_plain": plain / entries * 1e6,
        "tree_extra_us_per_entry": (with_tree - plain) / entries * 1e6,
        "tree_extra_us_per_packet": (with_tree - plain) / packets * 1e6,
        "ratio_tree_to_plain": with_tree / plain,
    }


async def verify_and_bundle(folder: Path, count: int) -> dict[str, float]:
    """Fill a log of ``count`` entries; time verify over it; size one packet's bundle."""
    key = LogKey.generate("lgsp-adapter/bench")
    async with await SqliteStore.open(folder / "large.sqlite3") as store:
        started = time.perf_counter()
        done = 0
        while done < count:
            size = min(10_000, count - done)
            batch: list[AuditEntry] = []
            n = done // 5
            while len(batch) < size:
                batch.extend(packet_entries(n, 5))
                n += 1
            await store.audit.append(batch[:size])
            done += size
            if done % 100_000 == 0 or done == count:
                await store.audit.checkpoint(key)
        fill_s = time.perf_counter() - started
        started = time.perf_counter()
        report = await verify_log(store.audit, key.verifier)
        verify_s = time.perf_counter() - started
        if not report.ok:
            raise SystemExit(f"the benchmark's own log does not verify: {report.problems[:3]}")
        packet = uuid.UUID(int=count // 10 + 1)
        history = await store.audit.history(packet)
        started = time.perf_counter()
        bundle = dump(
            await make_bundle(
                store.audit, history, subject={"packet_id": str(packet)}, verifier=key.verifier
            )
        )
        bundle_s = time.perf_counter() - started
    return {
        "entries": count,
        "fill_entries_per_s": count / fill_s,
        "verify_s": verify_s,
        "verify_entries_per_s": count / verify_s,
        "bundle_entries": len(history),
        "bundle_bytes": len(bundle),
        "bundle_ms": bundle_s * 1000,
        "store_bytes": (folder / "large.sqlite3").stat().st_size,
    }


async def run(entries: int, packets: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="lgsp-bench-audit-") as name:
        folder = Path(name)
        figures = await append_cost(folder, packets)
        figures.update(await verify_and_bundle(folder, entries))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--packets", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = asyncio.run(run(args.entries, args.packets))
    print(
        f"append, durable, 4 entries a transaction: {figures['append_us_per_entry_with_tree']:.0f} "
        f"µs/entry with the tree, {figures['append_us_per_entry_plain']:.0f} µs/entry plain "
        f"(ratio {figures['ratio_tree_to_plain']:.2f}; the tree adds "
        f"{figures['tree_extra_us_per_packet']:.0f} µs a packet)"
    )
    print(
        f"verify: {figures['entries']:,} entries in {figures['verify_s']:.1f} s "
        f"({figures['verify_entries_per_s']:,.0f} entries/s); filled at "
        f"{figures['fill_entries_per_s']:,.0f} entries/s; "
        f"store {figures['store_bytes'] / 1e6:.0f} MB"
    )
    print(
        f"bundle of one packet: {figures['bundle_entries']:.0f} entries, "
        f"{figures['bundle_bytes']:,.0f} bytes, made in {figures['bundle_ms']:.1f} ms"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
