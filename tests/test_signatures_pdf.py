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


def signed_pdf(data: bytes, identity: Identity) -> bytes:
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
        signers.PdfSignatureMetadata(field_name="ChuKySo"),
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
