"""A packet's journey across two logs: the evidence bundle of the daemon that forwarded it to
another bus, and that of the daemon it arrived at, joined in one file an auditor checks offline.

Each part is an ordinary bundle (its entries proved under its log's checkpoint, cosignatures
checked against the witness keys given); the join adds what ties them: the same packet, with the
same payload digest, ``forwarded`` in the first log and ``arrived`` in the second. In a dispute
between two agencies of different levels, neither operator alone can then deny the hop.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lgsp_adapter.audit.bundle import BundleCheck, check_bundle, dump, load_evidence
from lgsp_adapter.audit.cosignature import WitnessVerifier
from lgsp_adapter.audit.proofs import BadEvidence
from lgsp_adapter.audit.signing import Trusted

FORMAT = "lgsp-adapter/audit-journey/1"


def is_journey(data: bytes) -> bool:
    """Whether ``data`` looks like a journey rather than one bundle."""
    return b'"lgsp-adapter/audit-journey/1"' in data[:4096]


@dataclass(frozen=True)
class JourneyCheck:
    """What a journey proved: each log's part, and the hops between them."""

    packet_id: str
    parts: list[BundleCheck]
    hops: list[str]

    def summary(self) -> str:
        """Lines for people."""
        lines = [f"journey verifies: packet {self.packet_id} across {len(self.parts)} logs"]
        for number, part in enumerate(self.parts, 1):
            lines.append(f"--- log {number}")
            lines.append(part.summary())
        lines += [f"hop: {hop}" for hop in self.hops]
        return "\n".join(lines)


def join(bundles: Sequence[bytes], witnesses: Sequence[WitnessVerifier] = ()) -> bytes:
    """One journey file of ``bundles``, in the order the packet went, checked first."""
    parts = [json.loads(data) for data in bundles]
    journey = {"format": FORMAT, "bundles": parts}
    data = dump(journey)
    check_journey(data, witnesses=witnesses)
    return data


def check_journey(
    data: bytes,
    pinned: Sequence[Trusted | None] = (),
    witnesses: Sequence[WitnessVerifier] = (),
) -> JourneyCheck:
    """Check each part as a bundle (pinned to the keys given, in order), and that the packet
    left each log towards the next: forwarded there, arrived here, the same payload."""
    journey = load_evidence(data, FORMAT, "a journey")
    bundles = journey.get("bundles")
    if not isinstance(bundles, list) or len(bundles) < 2:
        raise BadEvidence("a journey joins the bundles of two logs at least")
    parts, entries = [], []
    for number, bundle in enumerate(bundles):
        key = pinned[number] if number < len(pinned) else None
        if not isinstance(bundle, dict):
            raise BadEvidence(f"log {number + 1}: not a bundle")
        try:
            parts.append(check_bundle(bundle, key, witnesses))
        except BadEvidence as exc:
            raise BadEvidence(f"log {number + 1}: {exc.message}") from exc
        entries.append([document["entry"] for document in bundle["entries"]])
    origins = [part.checkpoint.origin for part in parts]
    if len(set(origins)) != len(origins):
        raise BadEvidence("two parts of the journey are bundles of one log")
    packets = {str(part.subject.get("packet_id")) for part in parts}
    if len(packets) != 1 or "None" in packets:
        raise BadEvidence("the bundles are not all about one packet (subject packet_id)")
    hops = [_hop(number, entries[number], entries[number + 1]) for number in range(len(parts) - 1)]
    return JourneyCheck(packet_id=packets.pop(), parts=parts, hops=hops)


def _hop(number: int, left: list[dict[str, Any]], right: list[dict[str, Any]]) -> str:
    """How the packet went from log ``number`` to the next, or ``BadEvidence``."""
    forwarded = [e for e in left if e.get("event") == "forwarded"]
    arrived = [e for e in right if e.get("event") == "arrived"]
    if not forwarded:
        raise BadEvidence(f"log {number + 1} has no forwarded entry: the packet did not leave it")
    if not arrived:
        raise BadEvidence(f"log {number + 2} has no arrived entry: the packet did not come")
    digests = {e.get("payload_sha256") for e in forwarded + arrived}
    if len(digests) != 1 or None in digests:
        raise BadEvidence(f"logs {number + 1} and {number + 2} name different payload digests")
    out, came = forwarded[0], arrived[0]
    return (
        f"log {number + 1} forwarded it at {out.get('at')} ({out.get('detail')}); "
        f"log {number + 2} took it in at {came.get('at')} ({came.get('detail')})"
    )
