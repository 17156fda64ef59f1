"""Signed PDF attachments: the common case in practice, where the decision itself is a PDF the
official signed (and the envelope's own signature is the clerk's, or missing).

Attachments are found in the envelope we already parsed, and only those whose content starts
as a PDF does are decoded; pyHanko reads each one's embedded signatures and validates them
against the same anchors as the envelope's, at the time the signature states.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from base64 import b64decode
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from lxml import etree

from lgsp_adapter.signatures.dsig_shape import MAX_CERTIFICATES
from lgsp_adapter.signatures.result import AttachmentResult, SignatureStatus, Signer
from lgsp_adapter.signatures.trust import TrustAnchors
from lgsp_adapter.signatures.trust import usage as trust_usage

with warnings.catch_warnings():
    # pyHanko imports cryptography's DSA types, which warn on import; DSA is never used here.
    warnings.filterwarnings("ignore", "DSA is deprecated", CryptographyDeprecationWarning)
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation import SignatureCoverageLevel, async_validate_pdf_signature
    from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
    from pyhanko.sign.validation.settings import KeyUsageConstraints
    from pyhanko.sign.validation.status import PdfSignatureStatus

log = logging.getLogger(__name__)

PDF_BASE64 = "JVBERi0"  # "%PDF-" in base64: a PDF is known without decoding the rest
# The same with line breaks anywhere in it (base64 may be wrapped at any width).
_PDF_BYTES = re.compile(rb"J\s*V\s*B\s*E\s*R\s*i\s*0")
_ATTACHMENTS = etree.XPath("/*/*[local-name()='AttachmentEncoded']/*[local-name()='Attachment']")
MAX_PDFS = 16  # PDF attachments checked in one packet; each costs a digest of its bytes
MAX_PDF_SIGNATURES = 8  # distinct signatures checked in one PDF; a real one has one to three
MAX_PDF_REVISIONS = 32  # diffing each revision against each signed one grows as their square
# What the signer's key must allow: either signing use (the rest is ``usage``'s to judge, as
# for envelopes; pyHanko's default demands non-repudiation, which many signers lack).
_KEY_USAGE = KeyUsageConstraints(
    key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False
)
_OUT_OF_TIME = frozenset(
    {
        AdESIndeterminate.OUT_OF_BOUNDS_NO_POE,
        AdESIndeterminate.OUT_OF_BOUNDS_NOT_REVOKED,
        AdESIndeterminate.EXPIRED,
        AdESIndeterminate.NOT_YET_VALID,
        AdESFailure.NOT_YET_VALID,
    }
)
_REVOKED = frozenset(
    {AdESFailure.REVOKED, AdESIndeterminate.REVOKED_NO_POE, AdESIndeterminate.REVOKED_CA_NO_POE}
)
_WEAK = frozenset(
    {
        AdESIndeterminate.CRYPTO_CONSTRAINTS_FAILURE,
        AdESIndeterminate.CRYPTO_CONSTRAINTS_FAILURE_NO_POE,
    }
)
# What a later revision may do without leaving the earlier signature's content in doubt.
_HARMLESS = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES)


@dataclass(frozen=True, slots=True)
class Attached:
    """One PDF attachment of an envelope: its name and bytes (``b""``: broken base64)."""

    name: str
    pdf: bytes


def may_hold_pdf(payload: bytes) -> bool:
    """Whether base64 of a PDF might be in ``payload`` (a cheap test before any parse)."""
    return _PDF_BYTES.search(payload) is not None


def attachments(root: etree._Element) -> list[Attached]:
    """The envelope's PDF attachments, decoded (a broken one is ``b""``: reported malformed)."""
    found = _ATTACHMENTS(root)
    assert isinstance(found, list)  # noqa: S101  # a node-set XPath
    result = []
    for attachment in found:
        if not isinstance(attachment, etree._Element):
            continue
        # The first of each, and all its text (a comment may split it, and a comment is not
        # signed): what the adapter's reader and the agency's system read (found in review).
        name = _text(attachment, "AttachmentName").strip()
        content = _text(attachment, "ContentTransferEncoded")
        if "".join(content.lstrip()[:64].split()).startswith(PDF_BASE64):
            result.append(Attached(name[:200] or "(unnamed)", _decoded(content)))
    return result  # others carry no PDF signature: not listed


def _text(parent: etree._Element, local: str) -> str:
    for child in parent:
        if isinstance(child.tag, str) and etree.QName(child).localname == local:
            found = child.xpath("text()")
            assert isinstance(found, list)  # noqa: S101  # a node-set XPath
            return "".join(str(part) for part in found)
    return ""


def _decoded(content: str) -> bytes:
    try:
        return b64decode("".join(content.split()), validate=True)
    except ValueError:
        return b""


async def check_pdfs(
    found: list[Attached], trust: TrustAnchors, now: datetime
) -> list[AttachmentResult]:
    """Each attachment's verdict; past ``MAX_PDFS``, said to be unchecked rather than checked."""
    checked = [await check_pdf(attached, trust, now) for attached in found[:MAX_PDFS]]
    why = f"not checked: a packet's first {MAX_PDFS} PDF attachments are"
    return checked + [
        AttachmentResult(a.name, SignatureStatus.MALFORMED, why) for a in found[MAX_PDFS:]
    ]


async def check_pdf(attached: Attached, trust: TrustAnchors, now: datetime) -> AttachmentResult:
    """The verdict on one attachment: every signature the PDF embeds, the worst one counting."""
    try:
        reader = PdfFileReader(io.BytesIO(attached.pdf), strict=False)
        revisions = reader.xrefs.total_revisions
        if revisions > MAX_PDF_REVISIONS:  # each later revision is compared with each signed
            why = f"it has {revisions} revisions; at most {MAX_PDF_REVISIONS} are checked"
            return AttachmentResult(attached.name, SignatureStatus.MALFORMED, why)
        # Many fields may share one signature: each distinct one is validated once.
        signatures = list({_byte_range(s): s for s in reader.embedded_signatures}.values())
    except Exception as exc:  # pyHanko's many read errors: for us, an unreadable PDF
        return AttachmentResult(
            attached.name, SignatureStatus.MALFORMED, f"the PDF cannot be read: {exc}"[:300]
        )
    if not signatures:
        return AttachmentResult(attached.name, SignatureStatus.UNSIGNED)
    if len(signatures) > MAX_PDF_SIGNATURES:
        why = f"it embeds {len(signatures)} signatures; at most {MAX_PDF_SIGNATURES} are checked"
        return AttachmentResult(attached.name, SignatureStatus.MALFORMED, why)
    judged = [await _one(attached.name, signature, trust, now) for signature in signatures]
    vouched = any(j.covers_all and j.result.status is SignatureStatus.VALID for j in judged)
    results = [j.result if vouched or not j.form_filled else _unvouched(j.result) for j in judged]
    return min(results, key=lambda r: _RANK[r.status])


def _unvouched(result: AttachmentResult) -> AttachmentResult:
    """A signature a later revision filled forms after, with no later signer over it all: a
    widget's appearance can paint anything over the page (found in review)."""
    why = (
        "the PDF was changed after it was signed (form fields or their appearance), and no "
        "later signature covers the whole file"
    )
    return replace(result, status=SignatureStatus.INVALID, reason=why, notes=())


def _byte_range(signature: EmbeddedPdfSignature) -> tuple[int, ...]:
    return tuple(int(n) for n in signature.sig_object["/ByteRange"])


_RANK = {
    SignatureStatus.MALFORMED: 0,
    SignatureStatus.INVALID: 1,
    SignatureStatus.UNTRUSTED: 2,
    SignatureStatus.WRONG_NAMESPACE: 3,
    SignatureStatus.UNSIGNED: 4,
    SignatureStatus.VALID: 5,
}


@dataclass(frozen=True, slots=True)
class _Judged:
    result: AttachmentResult
    covers_all: bool = False  # the signature covers the whole file as it arrived
    form_filled: bool = False  # valid only if a later signature vouches for the revisions


async def _one(
    name: str, signature: EmbeddedPdfSignature, trust: TrustAnchors, now: datetime
) -> _Judged:
    carried = len(signature.signed_data["certificates"] or ())
    if carried > MAX_CERTIFICATES:
        # Path building tries every order of what it is given: bounded before it (found in
        # review: 60 namesakes took 131 s and 3.5 GB).
        said = f"its signature carries {carried} certificates; at most {MAX_CERTIFICATES} are read"
        return _Judged(AttachmentResult(name, SignatureStatus.MALFORMED, said))
    try:
        moment = signature.self_reported_timestamp or now
        status = await async_validate_pdf_signature(
            signature,
            signer_validation_context=trust.context(moment),
            key_usage_settings=_KEY_USAGE,
        )
    except Exception as exc:  # a signature pyHanko cannot evaluate is not a valid one
        return _Judged(AttachmentResult(name, SignatureStatus.MALFORMED, f"{exc}"[:300]))
    signer = Signer.of_asn1(status.signing_cert) if status.signing_cert is not None else None
    verdict, why, notes = _verdict(status, trust, moment)
    result = AttachmentResult(name, verdict, why, signer, status.signer_reported_dt, notes)
    return _Judged(
        result,
        covers_all=status.coverage is SignatureCoverageLevel.ENTIRE_FILE,
        form_filled=status.modification_level is ModificationLevel.FORM_FILLING,
    )


def _verdict(
    status: PdfSignatureStatus, trust: TrustAnchors, moment: datetime
) -> tuple[SignatureStatus, str | None, tuple[str, ...]]:
    """pyHanko's findings in our words; revocation is ours, as for envelopes."""
    if not status.intact:
        return SignatureStatus.INVALID, "the PDF was changed after it was signed", ()
    if not status.valid:
        return SignatureStatus.INVALID, "its signature value does not verify", ()
    if not trust.count or not status.trusted or status.validation_path is None:
        return _untrusted(status)
    path = [
        x509.load_der_x509_certificate(cert.dump())
        for cert in status.validation_path.iter_certs(include_root=True)
    ]
    revoked = trust.revocation(path, moment)
    if revoked is not None:
        return SignatureStatus.INVALID, revoked, ()
    usage, why = trust_usage(path[-1])
    if usage is not SignatureStatus.VALID:
        return usage, why, ()
    if status.coverage is SignatureCoverageLevel.ENTIRE_FILE:
        return SignatureStatus.VALID, None, ()
    level = status.modification_level
    if level in _HARMLESS:
        return SignatureStatus.VALID, None, ("later revisions add only validation data",)
    if level is ModificationLevel.FORM_FILLING and status.docmdp_ok:
        # Co-signing adds a signature field; valid only while a later signer covers it all.
        note = "later revisions fill in form fields or add signatures, which it does not cover"
        return SignatureStatus.VALID, None, (note,)
    level_name = level.name.lower().replace("_", " ") if level is not None else "unknown"
    return SignatureStatus.INVALID, f"the PDF was changed after it was signed ({level_name})", ()


def _untrusted(status: PdfSignatureStatus) -> tuple[SignatureStatus, str, tuple[str, ...]]:
    """Why a path did not validate: a known CA's certificate out of its time is invalid."""
    problem = status.trust_problem_indic
    if problem in _OUT_OF_TIME:
        return SignatureStatus.INVALID, "its certificate was not valid at the signing time", ()
    if problem in _REVOKED:
        return SignatureStatus.INVALID, "its certificate is revoked", ()
    if problem in _WEAK:
        return SignatureStatus.INVALID, "it uses an algorithm refused here", ()
    return SignatureStatus.UNTRUSTED, "its certificate does not chain to a trust anchor", ()
