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
from dataclasses import dataclass, replace
from datetime import datetime

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from lgsp_adapter.signatures.dsig_shape import MAX_CERTIFICATES
from lgsp_adapter.signatures.pdf_attachments import Attached
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

MAX_PDFS = 16  # PDF attachments checked in one packet; each costs a digest of its bytes
MAX_PDF_SIGNATURES = 8  # distinct signatures checked in one PDF; a real one has one to three
MAX_PDF_REVISIONS = 32  # diffing each revision against each signed one grows as their square
_MAX_TOKENS = 2  # time-stamp tokens a signature may carry: one for it, one for its content
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
    if attached.problem is not None:
        return AttachmentResult(attached.name, SignatureStatus.MALFORMED, attached.problem)
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
    # A later signature vouches for what the revisions before it show when it is valid and
    # nothing but validation data came after it (LTV added to a co-signed PDF, say).
    vouching = [j.result for j in judged if j.vouches and j.result.status is SignatureStatus.VALID]
    results = [j.result if not j.form_filled else _after(j.result, vouching) for j in judged]
    return min(results, key=lambda r: _RANK[r.status])


def _after(result: AttachmentResult, vouching: list[AttachmentResult]) -> AttachmentResult:
    """A signature that form filling followed: vouched for by the last later valid signer,
    or not at all."""
    return _vouched(result, vouching[-1]) if vouching else _unvouched(result)


def _vouched(result: AttachmentResult, by: AttachmentResult) -> AttachmentResult:
    """A signature form filling followed, under a later valid signer: what the page shows
    may be that signer's, and the result says whose (found in review: the first signer was
    named for content a clerk's later revision painted)."""
    if result.status is not SignatureStatus.VALID or by.signer is None:
        return result
    note = f"what later revisions show is signed by {by.signer.subject}, not by this signer"
    return replace(result, notes=(*result.notes, note))


def _unvouched(result: AttachmentResult) -> AttachmentResult:
    """A signature a later revision filled forms after, with no later signer over it all: a
    widget's appearance can paint anything over the page (found in review)."""
    why = (
        "the PDF was changed after it was signed (form fields or their appearance), and no "
        "later signature covers the whole file"
    )
    return replace(result, status=SignatureStatus.INVALID, reason=why, notes=())


def _carried_certificates(signature: EmbeddedPdfSignature) -> int:
    """The most certificates one CMS structure of the signature hands path building: its own
    set, or a time-stamp token's (each builds paths too; found in review: 49 namesakes in a
    token took 13 s and 367 MB). Too many tokens count as too many certificates."""
    sets = [signature.signed_data["certificates"]]
    tokens = 0
    for attributes in ("signed_attrs", "unsigned_attrs"):
        for attribute in signature.signer_info[attributes] or ():
            if attribute["type"].native in ("signature_time_stamp_token", "content_time_stamp"):
                for token in attribute["values"]:
                    tokens += 1
                    sets.append(token["content"]["certificates"])
    if tokens > _MAX_TOKENS:
        return MAX_CERTIFICATES + tokens
    return max(len(found or ()) for found in sets)


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
    vouches: bool = False  # nothing but validation data (or nothing) came after it
    form_filled: bool = False  # valid only if a later signature vouches for the revisions


async def _one(
    name: str, signature: EmbeddedPdfSignature, trust: TrustAnchors, now: datetime
) -> _Judged:
    carried = _carried_certificates(signature)
    if carried > MAX_CERTIFICATES:
        # Path building tries every order of what it is given: bounded before it (found in
        # review: 60 namesakes took 131 s and 3.5 GB).
        said = (
            f"its signature carries {carried} certificates (or time-stamp tokens); at most "
            f"{MAX_CERTIFICATES} are read"
        )
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
        vouches=status.coverage is SignatureCoverageLevel.ENTIRE_FILE
        or status.modification_level in _HARMLESS,
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
