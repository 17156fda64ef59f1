"""A packet's journey across two logs: joined from each side's bundle, checked offline, and
refused when the logs do not show the hop (no forwarded entry, another payload, another
packet), or when a part does not verify."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from lgsp_adapter.audit.bundle import dump, make_bundle
from lgsp_adapter.audit.entry import AuditEntry, AuditEvent
from lgsp_adapter.audit.journey import check_journey, join
from lgsp_adapter.audit.proofs import BadEvidence
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.signing import LogKey
from lgsp_adapter.store.sqlite import SqliteStore

PROVINCE, MINISTRY = LogKey.generate("lgsp-adapter/province"), LogKey.generate("lgsp-adapter/moh")


async def side(
    path: Path, key: LogKey, packet: uuid.UUID, events: list[AuditEvent], digest: str
) -> bytes:
    """One log's bundle of ``packet``, its entries the ``events``."""
    async with await SqliteStore.open(path) as store:
        await store.audit.append(
            [
                AuditEntry(
                    event=event,
                    packet_id=packet,
                    sender="000.00.00.H56",
                    recipient="000.00.00.G12",
                    kind="edoc",
                    payload_sha256=digest,
                    outcome="ok",
                    detail=f"{event.value} here",
                )
                for event in events
            ]
        )
        entries = await store.audit.query(AuditQuery(packet_id=packet))
        bundle = await make_bundle(
            store.audit, entries, subject={"packet_id": str(packet)}, verifier=key.verifier, key=key
        )
    return dump(bundle)


@pytest.mark.asyncio
async def test_a_journey_proves_the_hop_and_refuses_logs_that_do_not_show_it(
    tmp_path: Path,
) -> None:
    packet, digest = uuid.uuid4(), "ab" * 32
    sent = [AuditEvent.RECEIVED, AuditEvent.FORWARDED, AuditEvent.RECEIPT]
    left = await side(tmp_path / "p.sqlite3", PROVINCE, packet, sent, digest)
    right = await side(
        tmp_path / "m.sqlite3", MINISTRY, packet, [AuditEvent.ARRIVED, AuditEvent.DELIVERED], digest
    )
    journey = check_journey(join([left, right]), [PROVINCE.verifier, MINISTRY.verifier])
    assert journey.packet_id == str(packet)
    assert journey.hops[0].startswith("log 1 forwarded it at ")
    assert "log 2 took it in at " in journey.hops[0]
    with pytest.raises(BadEvidence, match="bundles of one log"):
        join([left, left])
    unarrived = await side(tmp_path / "u.sqlite3", MINISTRY, packet, [AuditEvent.DELIVERED], digest)
    with pytest.raises(BadEvidence, match="log 2 has no arrived entry"):
        join([left, unarrived])
    with pytest.raises(BadEvidence, match="log 1 has no forwarded entry"):
        join([right, left])
    other = await side(tmp_path / "o.sqlite3", MINISTRY, packet, [AuditEvent.ARRIVED], "cd" * 32)
    with pytest.raises(BadEvidence, match="different payload digests"):
        join([left, other])
    elsewhere = await side(
        tmp_path / "e.sqlite3", MINISTRY, uuid.uuid4(), [AuditEvent.ARRIVED], digest
    )
    with pytest.raises(BadEvidence, match="not all about one packet"):
        join([left, elsewhere])
    with pytest.raises(BadEvidence, match="log 2: the bundle is signed by key"):
        check_journey(join([left, right]), [PROVINCE.verifier, PROVINCE.verifier])
    touched = json.loads(join([left, right]))
    touched["bundles"][1]["entries"][0]["entry"]["detail"] = "from nowhere"
    with pytest.raises(BadEvidence, match="log 2: "):
        check_journey(dump(touched))
