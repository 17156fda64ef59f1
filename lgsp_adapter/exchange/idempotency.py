"""Submissions an agency system repeats: the same packet, kept once, answered alike.

A system that sent a packet and lost the answer (a timeout, a connection cut between our
COMMIT and its 202) sends it again. With an ``Idempotency-Key`` header the repeat is known by
its key: the packet's id is derived from the client and the key, so the store's own uniqueness
keeps it once, whatever the timing of the two requests, and the repeat gets the first answer.
The same key with another packet is refused, as is a key older than the window (a key is for
retrying one request, not for ever).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from lgsp_adapter.errors import ErrorCode, PermanentError
from lgsp_adapter.store import PacketFacts

_KEYED = uuid.UUID("5b0d7c1e-63a4-4c1b-9a53-3a0e8f6d2c41")  # the namespace of keyed ids
_SHAPE = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII: UUIDs, ULIDs, a system's own ids
DEFAULT_WINDOW = timedelta(hours=24)


def idempotency_key(text: str | None) -> str | None:
    """The header's key, or None without one; ``packet.idempotency_key_invalid`` if malformed."""
    if text is None:
        return None
    if not _SHAPE.fullmatch(text):
        raise PermanentError(
            ErrorCode.PACKET_IDEMPOTENCY_KEY_INVALID,
            "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID, say)",
        )
    return text


def keyed_id(client: str, key: str) -> uuid.UUID:
    """The packet id a client's key stands for."""
    return uuid.uuid5(_KEYED, f"{client}\n{key}")


def check_repeat(earlier: PacketFacts, sha256: str, window: timedelta) -> None:
    """Refuse a repeat that is not one: another packet under the key, or a stale key."""
    if datetime.now(UTC) - earlier.received_at > window:
        raise PermanentError(
            ErrorCode.PACKET_IDEMPOTENCY_EXPIRED,
            f"this Idempotency-Key was used more than {window.total_seconds() / 3600:g} h ago "
            f"(packet {earlier.id}); send a new packet with a new key",
            details={"packet_id": str(earlier.id)},
        )
    if earlier.sha256 != sha256:
        raise PermanentError(
            ErrorCode.PACKET_IDEMPOTENCY_CONFLICT,
            f"this Idempotency-Key was used for another packet ({earlier.id}); a key names "
            "one packet: give this one a key of its own",
            details={"packet_id": str(earlier.id)},
        )
