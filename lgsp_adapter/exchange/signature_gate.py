"""The signatures of a packet about to be delivered: checked, recorded, and held to the
recipient's policy; and the adapter's own status packets signed with the agency's key.

The verdict is made once per attempt that reaches the agency's system and recorded with the
delivery's outcome (a ``signature`` audit entry, its verdict the outcome, the summary the
detail); it travels to the system in ``X-LGSP-Signature*`` headers and to the sender in the
receipt's detail. A refusal by policy is a delivery refused for good: nothing is delivered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from lgsp_adapter.audit import AuditEntry, AuditEvent
from lgsp_adapter.registry.agencies import Endpoint, ServedAgency, SigningFiles
from lgsp_adapter.signatures import (
    Checker,
    EnvelopeSigner,
    SignaturePolicy,
    SignatureResult,
    SignatureStatus,
    refusal,
)
from lgsp_adapter.signatures.checker import SIGNED_KINDS
from lgsp_adapter.signatures.result import COULD_NOT_CHECK
from lgsp_adapter.store import StoredPacket, entry_for

log = logging.getLogger(__name__)

# A verdict is kept this long for the same payload: long enough for a retry schedule's first
# steps and an inbox's fetches, short enough that what time changes (a certificate expiring)
# shows within minutes. Anchors and CRLs change only with a restart, which starts afresh.
_KEPT_S = 600.0
_KEPT = 4096


@dataclass(frozen=True, slots=True)
class Checked:
    """What the gate says of one packet for one recipient."""

    result: SignatureResult | None = None  # None: not an edXML packet, or checks are off
    refused: str | None = None
    entries: list[AuditEntry] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        """For the agency system, beside the packet."""
        return self.result.headers() if self.result else {}

    def said(self) -> str:
        """What a delivery's detail (and so the sender's receipt) adds: the verdict, and who."""
        if self.result is None:
            return ""
        valid = self.result.status is SignatureStatus.VALID
        who = self.result.signer.subject if self.result.signer and valid else None
        return f"; signature {self.result.status}" + (f" by {who}" if who else "")


class SignatureGate:
    """Checks packets before delivery (``checker`` None: checks are off) and signs statuses."""

    def __init__(self, checker: Checker | None) -> None:
        self._checker = checker
        self._signers: dict[tuple[Path, Path], EnvelopeSigner] = {}
        self._verdicts: dict[str, tuple[float, SignatureResult]] = {}  # by payload digest
        self._running: dict[str, asyncio.Future[SignatureResult]] = {}

    async def judge(self, packet: StoredPacket, recipient: str, endpoint: Endpoint) -> Checked:
        """The verdict on ``packet`` for ``recipient``'s endpoint."""
        if packet.kind not in SIGNED_KINDS:
            return Checked()
        # Status packets are receipts, normally unsigned: a policy is about documents.
        policy = endpoint.signature_policy if packet.kind == "edoc" else SignaturePolicy.RECORD
        if self._checker is None:
            if policy is SignaturePolicy.RECORD:
                return Checked()
            why = f"{recipient} requires signatures ({policy}), and this daemon checks none"
            return Checked(refused=why)
        result = await self._verdict(self._checker, packet)
        entry = entry_for(
            packet,
            AuditEvent.SIGNATURE,
            recipient=recipient,
            outcome=str(result.status),
            detail=result.summary()[:2000],
        )
        return Checked(result, refusal(policy, result), [entry])

    async def headers(self, packet: StoredPacket) -> dict[str, str]:
        """The verdict's headers for a system that fetches ``packet`` (the pull inbox)."""
        if packet.kind not in SIGNED_KINDS or self._checker is None:
            return {}
        return (await self._verdict(self._checker, packet)).headers()

    async def _verdict(self, checker: Checker, packet: StoredPacket) -> SignatureResult:
        """The check, made once for a while per payload: retries and pull fetches of one
        packet ask again, and a hostile one would cost its seconds each time (review)."""
        now = time.monotonic()
        kept = self._verdicts.get(packet.sha256)
        if kept is not None and now - kept[0] < _KEPT_S:
            return kept[1]
        running = self._running.get(packet.sha256)
        if running is not None:  # the same payload to several recipients, checked at once
            return await asyncio.shield(running)
        task = asyncio.ensure_future(checker.check(packet.payload))
        self._running[packet.sha256] = task
        try:
            result = await asyncio.shield(task)
        finally:
            self._running.pop(packet.sha256, None)
        if not (result.reason or "").startswith(COULD_NOT_CHECK):  # a passing failure
            if len(self._verdicts) >= _KEPT:
                del self._verdicts[next(iter(self._verdicts))]  # the oldest
            self._verdicts[packet.sha256] = (now, result)
        return result

    def sign(self, agency: ServedAgency, status: bytes) -> bytes:
        """``status`` signed with the agency's key, when it has one configured."""
        if agency.signing is None:
            return status
        return self._signer(agency.signing).sign(status)

    def _signer(self, files: SigningFiles) -> EnvelopeSigner:
        key = (files.key_file, files.certificate_file)
        if key not in self._signers:
            password = files.key_password.get_secret_value() if files.key_password else None
            self._signers[key] = EnvelopeSigner.from_files(
                files.key_file, files.certificate_file, password=password
            )
            log.info("signing statuses as %s", self._signers[key].subject)
        return self._signers[key]
