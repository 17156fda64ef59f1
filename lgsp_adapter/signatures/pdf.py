"""Signed PDF attachments: the common case in practice, where the decision itself is a PDF the
official signed (and the envelope's own signature is the clerk's, or missing).

Attachments are found in the envelope we already parsed, and only those whose content starts
as a PDF does are decoded; pyHanko reads each one's embedded signatures and validates them
against the same anchors as the envelope's, at the time the signature states.
"""

from __future__ import annotations

import io
import logging
import warnings
from base64 import b64decode
from dataclasses import dataclass
from datetime import datetime

from cryptography.utils import CryptographyDeprecationWarning
from lxml import etree

from lgsp_adapter.signatures.result import AttachmentResult, SignatureStatus, Signer
from lgsp_adapter.signatures.trust import TrustAnchors

with warnings.catch_warnings():
    # pyHanko imports cryptography's DSA types, which warn on import; DSA is never used here.
    warnings.filterwarnings("ignore", "DSA is deprecated", CryptographyDeprecationWarning)
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature

log = logging.getLogger(__name__)

PDF_BASE64 = b"JVBERi0"  # "%PDF-" in base64: a PDF is known without decoding the rest
_PDF_TEXT = PDF_BASE64.decode()
_ATTACHMENTS = etree.XPath("/*/*[local-name()='AttachmentEncoded']/*[local-name()='Attachment']")


@dataclass(frozen=True, slots=True)
class Attached:
    """One PDF attachment of an envelope: its name and bytes (``b""``: broken base64)."""

    name: str
    pdf: bytes


def attachments(root: etree._Element) -> list[Attached]:
    """The envelope's PDF attachments, decoded (a broken one is ``b""``: reported malformed)."""
    found = _ATTACHMENTS(root)
    assert isinstance(found, list)  # noqa: S101  # a node-set XPath
    result = []
    for attachment in found:
        if not isinstance(attachment, etree._Element):
            continue
        name, content = "", ""
        for child in attachment:
            if not isinstance(child.tag, str):
                continue
            local = etree.QName(child).localname
            if local == "AttachmentName":
                name = (child.text or "").strip()
            elif local == "ContentTransferEncoded":
                content = child.text or ""
        if content.lstrip().startswith(_PDF_TEXT):  # others carry no PDF signature: not listed
            result.append(Attached(name[:200] or "(unnamed)", _decoded(content)))
    return result


def _decoded(content: str) -> bytes:
    try:
        return b64decode("".join(content.split()), validate=True)
    except ValueError:
        return b""


async def check_pdf(attached: Attached, trust: TrustAnchors, now: datetime) -> AttachmentResult:
    """The verdict on one attachment: every signature the PDF embeds, the worst one counting."""
    try:
        signatures = PdfFileReader(io.BytesIO(attached.pdf), strict=False).embedded_signatures
    except Exception as exc:  # pyHanko's many read errors: for us, an unreadable PDF
        return AttachmentResult(
            attached.name, SignatureStatus.MALFORMED, f"the PDF cannot be read: {exc}"[:300]
        )
    if not signatures:
        return AttachmentResult(attached.name, SignatureStatus.UNSIGNED)
    results = [await _one(attached.name, signature, trust, now) for signature in signatures]
    return min(results, key=lambda r: _RANK[r.status])


_RANK = {
    SignatureStatus.MALFORMED: 0,
    SignatureStatus.INVALID: 1,
    SignatureStatus.UNTRUSTED: 2,
    SignatureStatus.WRONG_NAMESPACE: 3,
    SignatureStatus.UNSIGNED: 4,
    SignatureStatus.VALID: 5,
}


async def _one(
    name: str, signature: object, trust: TrustAnchors, now: datetime
) -> AttachmentResult:
    try:
        moment = getattr(signature, "self_reported_timestamp", None) or now
        status = await async_validate_pdf_signature(
            signature,  # type: ignore[arg-type]  # an EmbeddedPdfSignature, from the reader
            signer_validation_context=trust.context(moment),
        )
    except Exception as exc:  # a signature pyHanko cannot evaluate is not a valid one
        return AttachmentResult(name, SignatureStatus.MALFORMED, f"{exc}"[:300])
    signer = Signer.of_asn1(status.signing_cert) if status.signing_cert is not None else None
    moment = status.signer_reported_dt
    if not status.intact:
        why = "the PDF was changed after it was signed"
        return AttachmentResult(name, SignatureStatus.INVALID, why, signer, moment)
    if not status.valid:
        why = "its signature value does not verify"
        return AttachmentResult(name, SignatureStatus.INVALID, why, signer, moment)
    if not trust.count or not status.trusted:
        why = "its certificate does not chain to a trust anchor"
        return AttachmentResult(name, SignatureStatus.UNTRUSTED, why, signer, moment)
    if not status.bottom_line:
        why = "the PDF was modified after signing beyond what its signature allows"
        return AttachmentResult(name, SignatureStatus.INVALID, why, signer, moment)
    return AttachmentResult(name, SignatureStatus.VALID, None, signer, moment)
