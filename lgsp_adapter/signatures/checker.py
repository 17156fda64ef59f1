"""One packet's signatures, checked: the envelope's XML-DSig, then each PDF attachment's.

All of it runs in a worker thread, never on the daemon's event loop: parsing and digesting
touch the whole payload, and path building and PDF validation are milliseconds of CPU each
(the libraries are asyncio-based, so the thread runs them in a loop of its own). Certificate
paths are judged at the time the signature states it was made (its own signed SigningTime)
or, when it states none, now.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from lgsp_adapter.errors import LgspError
from lgsp_adapter.packets.safe_xml import XmlLimits, parse
from lgsp_adapter.signatures.dsig_shape import Rules
from lgsp_adapter.signatures.envelope import Unverified, Verified, check_tree
from lgsp_adapter.signatures.pdf import check_pdfs
from lgsp_adapter.signatures.pdf_attachments import Attached, attachments, may_hold_pdf
from lgsp_adapter.signatures.result import (
    COULD_NOT_CHECK,
    SignatureResult,
    SignatureStatus,
    Signer,
)
from lgsp_adapter.signatures.trust import TrustAnchors

log = logging.getLogger(__name__)

SIGNED_KINDS = frozenset({"edoc", "status"})  # the edXML packets; others carry no XML-DSig
_SCANNED_ON_LOOP = 256 * 1024  # below this, the byte scan is microseconds; above, a thread's
_WORKERS = 2
_SLICE, _OVERLAP = 1 << 20, 64  # the byte scan's steps, overlapping by more than a marker


@dataclass(frozen=True, slots=True)
class _Read:
    envelope: Verified | Unverified
    attachments: list[Attached]


class Checker:
    """Checks packets against one daemon's anchors and algorithm policy."""

    def __init__(
        self, trust: TrustAnchors, *, rules: Rules | None = None, limits: XmlLimits | None = None
    ) -> None:
        self._trust = trust
        self._rules = rules or Rules()
        self._limits = limits or XmlLimits()
        # At most this many threads of asyncio's pool at once: a hostile PDF's seconds of CPU
        # must not hold up the threads that read packets. One gate per event loop (a
        # semaphore belongs to the loop it is first used in).
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._slots = weakref.WeakKeyDictionary()

    @classmethod
    def default(cls, limits: XmlLimits) -> Checker:
        """No anchors: every signature at best untrusted (for tools when checks are off)."""
        return cls(TrustAnchors(), limits=limits)

    async def check(self, payload: bytes, *, now: datetime | None = None) -> SignatureResult:
        """The verdict on ``payload`` (an edXML packet). Never raises."""
        small = len(payload) <= _SCANNED_ON_LOOP
        if small and _plainly_unsigned(payload):
            return SignatureResult(SignatureStatus.UNSIGNED)  # most packets: no thread needed
        loop = asyncio.get_running_loop()
        slots = self._slots.setdefault(loop, asyncio.Semaphore(_WORKERS))
        async with slots:
            moment = now or datetime.now(UTC)
            return await asyncio.to_thread(self._check_here, payload, moment, not small)

    def _check_here(self, payload: bytes, now: datetime, scan: bool) -> SignatureResult:
        """The whole check, in the calling (worker) thread; ``scan``: the byte scan is still
        to be made (a large payload's, kept off the loop)."""
        if scan and _plainly_unsigned(payload):
            return SignatureResult(SignatureStatus.UNSIGNED)
        try:
            read = self._read(payload)
            if isinstance(read.envelope, Unverified) and not read.attachments:
                return self._unverified(read.envelope)  # no path to judge: no loop needed
            return asyncio.run(self._judge_all(read, now))
        except Exception as exc:  # certificates and times a library cannot take: a verdict
            log.warning("signature check failed: %r", exc)
            return SignatureResult(SignatureStatus.MALFORMED, f"{COULD_NOT_CHECK}: {exc!r}"[:300])

    async def _judge_all(self, read: _Read, now: datetime) -> SignatureResult:
        envelope = await self._judge(read.envelope, now)
        checked = await check_pdfs(read.attachments, self._trust, now)
        return replace(envelope, attachments=tuple(checked))

    def _read(self, payload: bytes) -> _Read:
        try:
            root = parse(payload, self._limits, verbatim=True)
        except LgspError as exc:
            why = f"the packet is not XML we read: {exc.code}"
            return _Read(Unverified(SignatureStatus.MALFORMED, why), [])
        return _Read(check_tree(root, self._rules), attachments(root))

    @staticmethod
    def _unverified(envelope: Unverified) -> SignatureResult:
        return SignatureResult(
            envelope.status,
            envelope.reason,
            envelope.signer,
            algorithm=envelope.algorithm,
            notes=envelope.notes,
        )

    async def _judge(self, envelope: Verified | Unverified, now: datetime) -> SignatureResult:
        if isinstance(envelope, Unverified):
            return self._unverified(envelope)
        moment = envelope.signing_time or now
        status, reason = await self._trust.check(envelope.leaf, envelope.others, moment)
        notes = envelope.notes
        if status is SignatureStatus.VALID and envelope.leaf.not_valid_after_utc < now:
            # Valid because the signer says it signed in time: worth an auditor's eye.
            notes += ("its certificate has expired since the signing time it states",)
        return SignatureResult(
            status,
            reason,
            Signer.of(envelope.leaf),
            signing_time=moment,
            time_source="signature" if envelope.signing_time else "verification",
            algorithm=envelope.algorithm,
            notes=notes,
            intact=True,
        )


_UTF8_BOM = b"\xef\xbb\xbf"


def _plainly_unsigned(payload: bytes) -> bool:
    """No ``Signature`` and no PDF anywhere in the bytes: most packets, told apart without a
    parse. Only for an encoding that writes ASCII as ASCII (UTF-8 and the legacy 8-bit ones),
    where an element named Signature cannot exist without those bytes."""
    head = payload.removeprefix(_UTF8_BOM).lstrip()[:2]
    if not head.startswith(b"<") or head[1:2] == b"\x00":
        return False
    # In slices: one scan of a 45 MB payload would hold the interpreter lock for a third of a
    # second even in a worker thread, and the event loop with it (found in review).
    for start in range(0, len(payload), _SLICE):
        piece = payload[start : start + _SLICE + _OVERLAP]
        # A character reference can write a PDF's first letters (found in review).
        if b"&#" in piece or b"Signature" in piece or may_hold_pdf(piece):
            return False
    return True
