# mypy: disable-error-code="no-untyped-call"
# pyHanko's PDF writer is untyped; only this test builds PDFs with it.
"""Signed PDF attachments: pyHanko signs one-page PDFs with the test PKI's certificates; the
checker reports each attachment of an envelope (signed, unsigned, untrusted, altered)."""

from __future__ import annotations

import asyncio
import copy
import io
from base64 import b64encode

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from lxml import etree
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from lgsp_adapter.cli.demo_packets import document
from lgsp_adapter.signatures import Checker, SignatureStatus, TrustAnchors
from lgsp_adapter.signatures.pdf import MAX_PDF_SIGNATURES, MAX_PDFS
from lgsp_adapter.signatures.result import AttachmentResult
from tests.signing_pki import Identity, Pki, make_pki

DER = serialization.Encoding.DER


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def one_page_pdf() -> bytes:
    writer = PdfFileWriter()
    text = writer.add_object(generic.StreamObject(stream_data=b"BT 72 720 Td (Quyet dinh) Tj ET"))
    size = [generic.NumberObject(n) for n in (0, 0, 595, 842)]
    writer.insert_page(PageObject(contents=text, media_box=generic.ArrayObject(size)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def signed_pdf(data: bytes, identity: Identity, field: str = "ChuKySo") -> bytes:
    key = identity.key.private_bytes(
        DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(identity.certificate.public_bytes(DER)),
        signing_key=asn1_keys.PrivateKeyInfo.load(key),
        cert_registry=SimpleCertificateStore.from_certs(
            [asn1_x509.Certificate.load(c.public_bytes(DER)) for c in identity.chain]
        ),
    )
    out = signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(data)),
        signers.PdfSignatureMetadata(field_name=field),
        signer=signer,
    )
    signed: bytes = out.getvalue()
    return signed


def with_attachments(attachments: dict[str, bytes]) -> bytes:
    root = etree.fromstring(document())
    model = root.find(".//{*}Attachment")
    assert model is not None
    parent = model.getparent()
    assert parent is not None
    for name, data in attachments.items():
        attachment = copy.deepcopy(model)
        attachment.find("{*}AttachmentName").text = name  # type: ignore[union-attr]
        attachment.find("{*}ContentTransferEncoded").text = b64encode(data).decode()  # type: ignore[union-attr]
        parent.append(attachment)
    return etree.tostring(root)


def test_each_pdf_attachment_gets_its_verdict(pki: Pki) -> None:
    plain = one_page_pdf()
    signed = signed_pdf(plain, pki.signer)
    envelope = with_attachments(
        {
            "quyet-dinh.pdf": signed,
            "ban-nhap.pdf": plain,
            "la.pdf": signed_pdf(plain, pki.stranger),
            "sua.pdf": signed.replace(b"Quyet dinh", b"Quyet dinX"),
            "hong.pdf": b"%PDF-1.7 not really",
        }
    )
    result = asyncio.run(Checker(TrustAnchors([pki.root.certificate])).check(envelope))
    verdicts = {a.name: a for a in result.attachments}
    assert "cong-van-1234.zip" not in verdicts  # not a PDF: it carries no PDF signature
    assert verdicts["quyet-dinh.pdf"].status is SignatureStatus.VALID
    assert verdicts["quyet-dinh.pdf"].signer is not None
    assert verdicts["quyet-dinh.pdf"].signer.subject.startswith("CN=Nguyen Van An")
    assert verdicts["ban-nhap.pdf"].status is SignatureStatus.UNSIGNED
    assert verdicts["la.pdf"].status is SignatureStatus.UNTRUSTED
    assert verdicts["sua.pdf"].status is SignatureStatus.INVALID
    assert verdicts["hong.pdf"].status is SignatureStatus.MALFORMED
    assert "quyet-dinh.pdf: valid (CN=Nguyen Van An" in result.summary()
    assert "quyet-dinh.pdf=valid" in result.headers()["X-LGSP-Attachment-Signatures"]


def check(pki: Pki, attachments: dict[str, bytes]) -> dict[str, AttachmentResult]:
    trust = TrustAnchors([pki.root.certificate], crls=[pki.crl])
    result = asyncio.run(Checker(trust).check(with_attachments(attachments)))
    return {a.name: a for a in result.attachments}


def painted_over(signed: bytes) -> bytes:
    """A later revision that paints the page white and writes other words on it."""
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    cover = b"1 1 1 rg 0 0 595 842 re f BT 72 720 Td (Quyet dinh khac) Tj ET"
    over = writer.add_object(generic.StreamObject(stream_data=cover))
    page["/Contents"] = generic.ArrayObject([page.raw_get("/Contents"), over])
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_revision_after_signing_is_judged_by_what_it_changes(pki: Pki) -> None:
    """Found in review: a signature covers its own revision; what a later one changes must be
    weighed, not taken as signed."""
    signed = signed_pdf(one_page_pdf(), pki.signer)
    verdicts = check(
        pki,
        {
            "to-lai.pdf": painted_over(signed),
            "dong-ky.pdf": signed_pdf(signed, pki.signer, field="ChuKyThuHai"),
        },
    )
    assert verdicts["to-lai.pdf"].status is SignatureStatus.INVALID
    assert verdicts["to-lai.pdf"].reason == "the PDF was changed after it was signed (other)"
    # Co-signing: the first signature stays valid, and says a later revision exists.
    assert verdicts["dong-ky.pdf"].status is SignatureStatus.VALID, verdicts["dong-ky.pdf"]
    assert (
        "later revisions fill in form fields or add signatures" in verdicts["dong-ky.pdf"].summary()
    )


def test_a_pdf_signer_is_held_to_the_crls_and_its_validity(pki: Pki) -> None:
    """Found in review: PDFs skipped the configured CRLs, and an expired signer was untrusted."""
    plain = one_page_pdf()
    verdicts = check(
        pki,
        {
            "thu-hoi.pdf": signed_pdf(plain, pki.revoked),
            "het-han.pdf": signed_pdf(plain, pki.expired),
        },
    )
    assert verdicts["thu-hoi.pdf"].status is SignatureStatus.INVALID
    assert "was revoked on" in (verdicts["thu-hoi.pdf"].reason or "")
    assert verdicts["het-han.pdf"].status is SignatureStatus.INVALID
    assert verdicts["het-han.pdf"].reason == "its certificate was not valid at the signing time"


def test_signatures_past_the_limit_are_not_validated(pki: Pki) -> None:
    many = one_page_pdf()
    for number in range(MAX_PDF_SIGNATURES + 1):
        many = signed_pdf(many, pki.signer, field=f"ChuKy{number}")
    verdicts = check(pki, {"nhieu.pdf": many})
    assert verdicts["nhieu.pdf"].status is SignatureStatus.MALFORMED
    assert verdicts["nhieu.pdf"].reason == "it embeds 9 signatures; at most 8 are checked"


def test_attachments_past_the_limit_are_said_to_be_unchecked(pki: Pki) -> None:
    signed = signed_pdf(one_page_pdf(), pki.signer)
    verdicts = check(pki, {f"van-ban-{n:02}.pdf": signed for n in range(MAX_PDFS + 1)})
    assert verdicts["van-ban-00.pdf"].status is SignatureStatus.VALID
    last = verdicts[f"van-ban-{MAX_PDFS:02}.pdf"]
    assert last.status is SignatureStatus.MALFORMED
    assert last.reason == "not checked: a packet's first 16 PDF attachments are"


def test_a_pdf_wrapped_early_in_its_base64_is_still_found(pki: Pki) -> None:
    """Found in review: a line break within "JVBERi0" hid the PDF from both quick looks."""
    signed = signed_pdf(one_page_pdf(), pki.signer)
    envelope = with_attachments({"ngat-dong.pdf": signed})
    text = b64encode(signed)
    wrapped = envelope.replace(text, text[:3] + b"\n" + text[3:])
    assert wrapped != envelope
    result = asyncio.run(Checker(TrustAnchors([pki.root.certificate])).check(wrapped))
    assert [a.status for a in result.attachments] == [SignatureStatus.VALID]


def sharing_one_signature(signed: bytes, fields: int) -> bytes:
    """A later revision adding ``fields`` signature fields that all name the first value."""
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    form = writer.root["/AcroForm"]
    value = form["/Fields"][0].get_object().raw_get("/V")
    for number in range(fields):
        entry = {
            generic.NameObject("/FT"): generic.NameObject("/Sig"),
            generic.NameObject("/T"): generic.TextStringObject(f"BanSao{number}"),
            generic.NameObject("/V"): value,
        }
        form["/Fields"].append(writer.add_object(generic.DictionaryObject(entry)))
    writer.update_container(form)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_fields_that_share_a_signature_validate_it_once(pki: Pki) -> None:
    """Found in review: pyHanko lists a signature once per field naming it, so 1,000 fields
    made 1,000 validations of one signature."""
    shared = sharing_one_signature(signed_pdf(one_page_pdf(), pki.signer), 20)
    verdict = check(pki, {"chung.pdf": shared})["chung.pdf"]
    assert not (verdict.reason or "").startswith("it embeds"), verdict
    assert verdict.signer is not None
