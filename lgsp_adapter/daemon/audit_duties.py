"""Entries about the daemon itself: its settings changing, its key being made, and the
checkpoints it signs on a schedule.

Settings are recorded by digest at each start that finds them changed, so an auditor sees
"configuration changed at 08:02" in the same log as the packets, without the log holding
secrets: tokens, passwords and the bus URL enter the digest, never the text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from lgsp_adapter.audit.entry import AuditEntry, AuditEvent
from lgsp_adapter.audit.query import AuditQuery
from lgsp_adapter.audit.signing import LogKey, NoteError, signature_keys, signature_names
from lgsp_adapter.audit.store import AuditStore
from lgsp_adapter.daemon.config import Settings
from lgsp_adapter.errors import ErrorCode, FatalError
from lgsp_adapter.registry.agencies import with_secrets

log = logging.getLogger(__name__)


def settings_digest(settings: Settings) -> str:
    """SHA-256 over every setting, secrets included (as their own digests)."""
    # The digest is all that is kept, so secrets enter it as they are: a changed endpoint
    # password is a changed configuration too.
    text = json.dumps(with_secrets(settings), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


async def record_start(
    store: AuditStore, settings: Settings, key: LogKey, *, key_created: bool
) -> None:
    """Append what changed since the last start: the settings, the key."""
    entries: list[AuditEntry] = []
    if key_created:
        entries.append(
            AuditEntry(
                event=AuditEvent.ADMIN,
                outcome="key_created",
                detail=f"audit signing key made; fingerprint {key.verifier.fingerprint}",
                actor="daemon",
            )
        )
    digest = settings_digest(settings)
    last = await store.query(
        AuditQuery(event=AuditEvent.CONFIG_CHANGED, newest_first=True, limit=1)
    )
    if not last or last[0].payload_sha256 != digest:
        served = ", ".join(str(a.code) for a in settings.agencies)
        carrier = "embedded bus" if settings.bus.url is None else "RabbitMQ"
        entries.append(
            AuditEntry(
                event=AuditEvent.CONFIG_CHANGED,
                payload_sha256=digest,
                outcome="first" if not last else "changed",
                detail=f"serving {served} on the {carrier}; {len(settings.clients)} clients, "
                f"{len(settings.known_agencies)} known agencies",
                actor="daemon",
            )
        )
    await store.append(entries)


async def check_shared_key(store: AuditStore, key: LogKey, key_path: Path) -> None:
    """Refuse to sign a log whose latest checkpoint this key did not sign last: replicas
    sharing a store each with a key of their own (made at their first start) would leave a log
    no single public key verifies, and a key retired by `audit rotate-key` signed the hand-over
    before its successor, never after."""
    latest = await store.latest_checkpoint()
    if latest is None:
        return
    try:
        signers = signature_keys(latest.note, key.verifier)
    except NoteError as exc:
        raise FatalError(
            ErrorCode.AUDIT_TAMPERED, f"the latest checkpoint (size {latest.size}): {exc}"
        ) from exc
    if signers and signers[-1] == key.verifier:
        return
    if key.verifier in signers:
        raise FatalError(
            ErrorCode.CONFIG_INVALID,
            f"the audit signing key {key_path} was retired at size {latest.size}: use the key "
            "`lgsp-adapter audit rotate-key` made in its place",
        )
    names = sorted(set(signature_names(latest.note)))
    raise FatalError(
        ErrorCode.CONFIG_INVALID,
        f"the audit log's latest checkpoint (size {latest.size}) is not signed by the key "
        f"{key_path} (fingerprint {key.verifier.fingerprint}): it is signed as "
        f"{', '.join(names)} and this daemon signs as {key.name}. Every daemon sharing a store "
        "needs the same audit.signing_key and [audit] origin; after `lgsp-adapter audit "
        "rotate-key`, the new key",
    )


async def sign_periodically(
    store: AuditStore,
    key: LogKey,
    interval_s: float,
    stop: asyncio.Event,
    *,
    may_sign: Callable[[], Awaitable[bool]] | None = None,
) -> None:
    """Sign a checkpoint every ``interval_s`` while the log grows, until ``stop``; only while
    ``may_sign`` says so (one replica of several signs)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
        try:
            if may_sign is not None and not await may_sign():
                continue
            await store.checkpoint(key)
        except Exception:
            # The entries are safe; the next round signs them. A daemon that stopped delivering
            # because a checkpoint failed would do more harm than the missing signature.
            log.exception("could not sign an audit checkpoint; will try again")
