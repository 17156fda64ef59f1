# mypy: disable-error-code="no-untyped-call"
# pyHanko's PDF writer is untyped; only this test builds PDFs with it.
"""Signed PDF attachments: pyHanko signs one-page PDFs with the test PKI's certificates; the
checker reports each attachment of an envelope (signed, unsigned, untrusted, altered)."""

from __future__ import annotations

import asyncio
import copy
import io
from base64 import b64encode
from datetime import timedelta

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from lxml import etree
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigFieldSpec, append_signature_field
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from lgsp_adapter.cli.demo_packets import document
from lgsp_adapter.signatures import Checker, SignatureStatus, TrustAnchors
from lgsp_adapter.signatures.pdf import MAX_PDF_REVISIONS, MAX_PDF_SIGNATURES, MAX_PDFS
from lgsp_adapter.signatures.result import AttachmentResult
from tests.signing_pki import NOW, Identity, Pki, make_pki, namesake

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
    # And whose those revisions are (found in review: the first signer was named for them).
    assert "what later revisions show is signed by CN=Nguyen Van An" in (
        verdicts["dong-ky.pdf"].summary()
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


def covered_by_a_widget(signed: bytes) -> bytes:
    """A later revision adds an empty signature field whose appearance paints the page."""
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    append_signature_field(writer, SigFieldSpec("PhuLen", box=(0, 0, 595, 842)))
    for reference in writer.root["/AcroForm"]["/Fields"]:
        field = reference.get_object()
        if field.get("/T") == "PhuLen":
            box = generic.ArrayObject([generic.NumberObject(n) for n in (0, 0, 595, 842)])
            appearance = generic.StreamObject(
                {
                    generic.NameObject("/Type"): generic.NameObject("/XObject"),
                    generic.NameObject("/Subtype"): generic.NameObject("/Form"),
                    generic.NameObject("/BBox"): box,
                },
                stream_data=b"1 1 1 rg 0 0 595 842 re f BT 72 720 Td (Quyet dinh khac) Tj ET",
            )
            field[generic.NameObject("/AP")] = generic.DictionaryObject(
                {generic.NameObject("/N"): writer.add_object(appearance)}
            )
            writer.update_container(field)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_widget_painted_over_the_page_is_no_form_filling_to_trust(pki: Pki) -> None:
    """Found in review: pyHanko calls an added field with an appearance form filling, so a
    page painted over by one was valid; only a later signer over the whole file vouches."""
    signed = signed_pdf(one_page_pdf(), pki.signer)
    verdict = check(pki, {"phu.pdf": covered_by_a_widget(signed)})["phu.pdf"]
    assert verdict.status is SignatureStatus.INVALID, verdict
    assert "no later signature covers the whole file" in (verdict.reason or "")


def _digital_signature_only(pki: Pki) -> Identity:
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(pki.signer.certificate.subject)
        .issuer_name(pki.province.certificate.subject)
        .public_key(pki.signer.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(pki.province.key, hashes.SHA256())
    )
    return Identity(pki.signer.key, certificate, pki.signer.chain)


def test_a_signer_without_non_repudiation_is_judged_as_for_envelopes(pki: Pki) -> None:
    """Found in review: pyHanko's default demands non-repudiation, and called such a signer
    untrusted, "not chaining to an anchor", where the envelope check calls it valid."""
    signed = signed_pdf(one_page_pdf(), _digital_signature_only(pki))
    verdict = check(pki, {"ky.pdf": signed})["ky.pdf"]
    assert verdict.status is SignatureStatus.VALID, verdict


def test_a_pdf_carrying_many_certificates_is_refused_before_any_path_is_built(pki: Pki) -> None:
    """Found in review: the envelope's bound of 6 certificates did not hold in PDFs, where
    60 namesakes took 131 s and 3.5 GB to build paths through."""
    decoys = tuple(namesake(pki.province, pki.root) for _ in range(6))
    carrying = Identity(pki.signer.key, pki.signer.certificate, (*pki.signer.chain, *decoys))
    verdict = check(pki, {"nhieu-cert.pdf": signed_pdf(one_page_pdf(), carrying)})["nhieu-cert.pdf"]
    assert verdict.status is SignatureStatus.MALFORMED, verdict
    assert "at most 6 are read" in (verdict.reason or "")


def test_revisions_past_the_limit_are_not_compared(pki: Pki) -> None:
    many = signed_pdf(one_page_pdf(), pki.signer)
    for _ in range(MAX_PDF_REVISIONS):
        writer = IncrementalPdfFileWriter(io.BytesIO(many))
        writer.update_container(writer.root)
        out = io.BytesIO()
        writer.write(out)
        many = out.getvalue()
    verdict = check(pki, {"sua-nhieu.pdf": many})["sua-nhieu.pdf"]
    assert verdict.status is SignatureStatus.MALFORMED
    assert (verdict.reason or "").startswith(f"it has {MAX_PDF_REVISIONS + 2} revisions")


def _with_second_content(envelope: bytes, name: str) -> bytes:
    root = etree.fromstring(envelope)
    for attachment in root.iter("{*}Attachment"):
        if attachment.findtext("{*}AttachmentName") == name:
            content = attachment.find("{*}ContentTransferEncoded")
            assert content is not None
            second = etree.Element(content.tag)
            second.text = "QUJD"
            content.addnext(second)
    return etree.tostring(root)


def _with_decoy_first(envelope: bytes, name: str, tag: str) -> bytes:
    root = etree.fromstring(envelope)
    for attachment in root.iter("{*}Attachment"):
        if attachment.findtext("{*}AttachmentName") == name:
            decoy = etree.Element(tag)
            decoy.text = "QUFB"
            attachment.insert(0, decoy)
    return etree.tostring(root)


def test_an_attachment_cannot_hide_from_the_check(pki: Pki) -> None:
    """Found in review, twice: a comment before the base64 (comments are not signed), a second
    ContentTransferEncoded, a character reference for its first letter, or a decoy element
    of the same name in another namespace placed first each hid a PDF the adapter's own
    reader, and the agency's system, still decode. Read as the reader reads it, or, where
    which element is the attachment is ambiguous, reported malformed: never left out."""
    revoked = signed_pdf(one_page_pdf(), pki.revoked)
    text = b64encode(revoked)
    envelope = with_attachments({"an.pdf": revoked})
    hidden = {
        "comment": (envelope.replace(text, b"<!-- ghi chu -->" + text), SignatureStatus.INVALID),
        "character reference": (
            envelope.replace(text, b"&#74;" + text[1:]),
            SignatureStatus.INVALID,
        ),
        "second element": (_with_second_content(envelope, "an.pdf"), SignatureStatus.MALFORMED),
        "decoy in another namespace": (
            _with_decoy_first(envelope, "an.pdf", "{urn:x}ContentTransferEncoded"),
            SignatureStatus.MALFORMED,
        ),
    }
    trust = TrustAnchors([pki.root.certificate], crls=[pki.crl])
    for how, (payload, expected) in hidden.items():
        assert payload != envelope, how
        result = asyncio.run(Checker(trust).check(payload))
        assert [a.status for a in result.attachments] == [expected], how


def test_an_attachment_name_cannot_forge_another_verdict_in_the_header(pki: Pki) -> None:
    altered = signed_pdf(one_page_pdf(), pki.signer).replace(b"Quyet dinh", b"Quyet dinX")
    envelope = with_attachments({"quyet-dinh.pdf=valid, x": altered})
    result = asyncio.run(Checker(TrustAnchors([pki.root.certificate])).check(envelope))
    listed = result.headers()["X-LGSP-Attachment-Signatures"]
    assert listed.endswith("=invalid"), listed
    assert "=valid" not in listed


def with_validation_data(signed: bytes, pki: Pki) -> bytes:
    """A later revision adding only a DSS (validation data), as "add LTV" tools do."""
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    stream = generic.StreamObject(stream_data=pki.province.certificate.public_bytes(DER))
    store = generic.DictionaryObject(
        {generic.NameObject("/Certs"): generic.ArrayObject([writer.add_object(stream)])}
    )
    writer.root[generic.NameObject("/DSS")] = writer.add_object(store)
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_validation_data_after_co_signing_leaves_both_signatures_valid(pki: Pki) -> None:
    """Found in review: the second signer, followed by validation data only, did not count as
    vouching for the first signer's form-filled revision, so a co-signed PDF turned invalid."""
    first = signed_pdf(one_page_pdf(), pki.signer, field="A")
    both = with_validation_data(signed_pdf(first, pki.signer, field="B"), pki)
    verdict = check(pki, {"dong-ky-ltv.pdf": both})["dong-ky-ltv.pdf"]
    assert verdict.status is SignatureStatus.VALID, verdict


def _timestamper_carrying(pki: Pki, decoys: int) -> DummyTimeStamper:
    """A time-stamp authority whose tokens carry ``decoys`` namesake CA certificates."""
    key = pki.signer.key
    tsa = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "TSA")]))
        .issuer_name(pki.province.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
        .sign(pki.province.key, hashes.SHA256())
    )
    private = asn1_keys.PrivateKeyInfo.load(
        key.private_bytes(DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    embedded = [namesake(pki.province, pki.root) for _ in range(decoys)]
    return DummyTimeStamper(
        tsa_cert=asn1_x509.Certificate.load(tsa.public_bytes(DER)),
        tsa_key=private,
        certs_to_embed=SimpleCertificateStore.from_certs(
            [asn1_x509.Certificate.load(c.public_bytes(DER)) for c in embedded]
        ),
    )


def test_a_time_stamp_token_carrying_many_certificates_is_refused_too(pki: Pki) -> None:
    """Found in review: the bound of 6 counted the signature's own certificates only; a
    time-stamp token's 49 namesakes took 13 s and 367 MB of path building."""
    key = pki.signer.key.private_bytes(
        DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(pki.signer.certificate.public_bytes(DER)),
        signing_key=asn1_keys.PrivateKeyInfo.load(key),
        cert_registry=SimpleCertificateStore.from_certs(
            [asn1_x509.Certificate.load(c.public_bytes(DER)) for c in pki.signer.chain]
        ),
    )
    stamped = signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(one_page_pdf())),
        signers.PdfSignatureMetadata(field_name="ChuKySo"),
        signer=signer,
        timestamper=_timestamper_carrying(pki, 8),
    ).getvalue()
    verdict = check(pki, {"dau-thoi-gian.pdf": stamped})["dau-thoi-gian.pdf"]
    assert verdict.status is SignatureStatus.MALFORMED, verdict
    assert "at most 6 are read" in (verdict.reason or "")
