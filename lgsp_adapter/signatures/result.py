"""What a signature check found, in the words an auditor and a receiving system read.

One ``SignatureResult`` per packet: the envelope's XML-DSig status, who signed (read from the
certificate even when the signature fails, marked unverified then), when, with which algorithm,
and one ``AttachmentResult`` per attachment that is a PDF. ``summary`` is the line the audit
log keeps and receipts carry; ``headers`` is what the agency system gets with the delivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import quote

from cryptography import x509

if TYPE_CHECKING:
    from asn1crypto.x509 import Certificate as Asn1Certificate


COULD_NOT_CHECK = "it could not be checked"  # a failure of ours or a library's, not a verdict


class SignatureStatus(StrEnum):
    """The verdict on one signature (the envelope's, or an attachment's)."""

    UNSIGNED = "unsigned"  # no signature at all
    VALID = "valid"  # verifies, and its certificate chains to an anchor at signing time
    INVALID = "invalid"  # present, and does not verify (altered, wrong key, refused by policy)
    UNTRUSTED = "untrusted"  # verifies, but its certificate does not chain to an anchor
    MALFORMED = "malformed"  # present but unreadable (broken base64, missing parts)
    # Real packets put the Signature block in the QCVN namespace, not XML-DSig's: it is no
    # XML-DSig signature, so nothing can verify it; said as its own result, not as invalid.
    WRONG_NAMESPACE = "wrong-namespace"


@dataclass(frozen=True, slots=True)
class Signer:
    """Who a certificate names: what an auditor needs to find the person and the CA."""

    subject: str
    serial: str  # hex, as CAs print it
    issuer: str
    not_before: datetime
    not_after: datetime

    @classmethod
    def of(cls, certificate: x509.Certificate) -> Signer:
        """The signer a certificate names (RFC 4514 text for both names)."""
        return cls(
            subject=certificate.subject.rfc4514_string(),
            serial=format(certificate.serial_number, "x"),
            issuer=certificate.issuer.rfc4514_string(),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )

    @classmethod
    def of_asn1(cls, certificate: Asn1Certificate) -> Signer:
        """The same, for the asn1crypto certificate pyHanko hands back."""
        return cls.of(x509.load_der_x509_certificate(certificate.dump()))


@dataclass(frozen=True, slots=True)
class AttachmentResult:
    """The verdict on one attachment's PDF signature."""

    name: str
    status: SignatureStatus
    reason: str | None = None
    signer: Signer | None = None
    signing_time: datetime | None = None
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        """``name: status (signer or reason; notes)``."""
        said = self.signer.subject if self.signer and self.status is SignatureStatus.VALID else None
        why = "; ".join(filter(None, (said or self.reason, *self.notes)))
        return f"{self.name}: {self.status}" + (f" ({why})" if why else "")


@dataclass(frozen=True, slots=True)
class SignatureResult:
    """The verdict on a packet's signatures."""

    status: SignatureStatus
    reason: str | None = None  # why, for anything but valid and unsigned
    signer: Signer | None = None
    signing_time: datetime | None = None
    time_source: str | None = None  # "signature" (a signed SigningTime) or "verification"
    algorithm: str | None = None  # the SignatureMethod's fragment: rsa-sha256, rsa-sha1, ...
    notes: tuple[str, ...] = ()
    attachments: tuple[AttachmentResult, ...] = field(default=())
    intact: bool = False  # the signature value and digests verified with its certificate

    def summary(self) -> str:
        """One line: status, signer, serial, issuer, time, why; then the attachments."""
        words = [str(self.status)]
        if self.signer is not None:
            words.append(
                f"signer {self.signer.subject!r}{self._vouched()}"
                f" serial {self.signer.serial} issuer {self.signer.issuer!r}"
            )
        if self.signing_time is not None and self.time_source == "signature":
            # The signer wrote it; only a time-stamp authority's token would prove it.
            words.append(f"signed {_instant(self.signing_time)} as the signature states")
        elif self.signing_time is not None:
            words.append(f"judged at {_instant(self.signing_time)}, no signing time stated")
        if self.algorithm:
            words.append(self.algorithm)
        if self.reason:
            words.append(f"because {self.reason}")
        words.extend(self.notes)
        line = "; ".join(words)
        if self.attachments:
            line += "; attachments: " + ", ".join(a.summary() for a in self.attachments)
        return line

    def headers(self) -> dict[str, str]:
        """What the agency system learns of it with the delivery (ASCII: texts are
        percent-encoded UTF-8, as the document id is)."""
        headers = {"X-LGSP-Signature": str(self.status)}
        if self.signer is not None and self.status is SignatureStatus.VALID:
            # Named only when an anchor vouches for the name: a self-made certificate says
            # whatever its maker wrote (found in review).
            headers["X-LGSP-Signature-Signer"] = _ascii(self.signer.subject)
            headers["X-LGSP-Signature-Serial"] = self.signer.serial
            headers["X-LGSP-Signature-Issuer"] = _ascii(self.signer.issuer)
        if self.signing_time is not None:
            headers["X-LGSP-Signature-Time"] = _instant(self.signing_time)
            # "stated": the signer's own word; "check": none stated, judged when checked.
            stated = self.time_source == "signature"
            headers["X-LGSP-Signature-Time-Source"] = "stated" if stated else "check"
        if self.reason:
            headers["X-LGSP-Signature-Reason"] = _ascii(self.reason[:500])
        if self.notes:
            headers["X-LGSP-Signature-Notes"] = _ascii("; ".join(self.notes)[:500])
        if self.attachments:
            headers["X-LGSP-Attachment-Signatures"] = ", ".join(
                f"{_name(a.name)}={a.status}" for a in self.attachments
            )
        return headers

    def _vouched(self) -> str:
        if not self.intact:
            return " (unverified)"
        return "" if self.status is SignatureStatus.VALID else " (no anchor vouches for it)"


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ascii(text: str) -> str:
    return quote(text, safe=" ,=/:-._'()@")


def _name(text: str) -> str:
    """An attachment's name in the list header: its separators encoded, so that a name
    cannot forge another attachment's verdict (``a.pdf=valid, b``; found in review)."""
    return quote(text, safe=" /:-._'()@")
