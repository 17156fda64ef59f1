"""Signing what the adapter writes on an agency's behalf (the status 01 sent on delivery).

The signature is what ``envelope`` expects of everyone else's: enveloped XML-DSig over the
whole packet (``Reference URI=""``), exclusive canonicalisation, SHA-256, in the XML-DSig
namespace, where QCVN puts it (the last child of the header), carrying the certificate and its
chain. The key comes from a file and stays in this object: never logged, never in a repr.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from lgsp_adapter.packets.safe_xml import XmlLimits, parse
from lgsp_adapter.signatures.dsig_shape import DS

_HEADER = etree.XPath("/*/*[local-name()='edXMLEnvelope']/*[local-name()='edXMLHeader']")


class EnvelopeSigner:
    """Signs edXML packets with one agency's key and certificate."""

    def __init__(
        self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, chain: list[x509.Certificate]
    ) -> None:
        if not chain:
            raise ValueError("a signing identity needs its certificate")
        if _spki(chain[0].public_key()) != _spki(key.public_key()):
            raise ValueError("the certificate is not the key's")
        self._key = key
        self._chain = chain
        method = (
            SignatureMethod.RSA_SHA256
            if isinstance(key, rsa.RSAPrivateKey)
            else SignatureMethod.ECDSA_SHA256
        )
        self._signer = XMLSigner(
            signature_algorithm=method,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )

    def __repr__(self) -> str:
        return f"EnvelopeSigner({self.subject!r})"

    @property
    def subject(self) -> str:
        """Whom the signatures name."""
        return self._chain[0].subject.rfc4514_string()

    @classmethod
    def from_files(
        cls, key_file: Path, certificate_file: Path, *, password: str | None = None
    ) -> EnvelopeSigner:
        """The key (PEM, PKCS #8 or traditional) and the certificate with its chain (PEM,
        the signer's first)."""
        key = serialization.load_pem_private_key(
            key_file.read_bytes(), password=password.encode() if password else None
        )
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_file}: an RSA or EC key is needed")
        chain = x509.load_pem_x509_certificates(certificate_file.read_bytes())
        return cls(key, chain)

    def sign(self, packet: bytes, limits: XmlLimits | None = None) -> bytes:
        """``packet`` with its signature: the bytes to send, as signed."""
        root = parse(packet, limits or XmlLimits(), verbatim=True)
        found = _HEADER(root)
        assert isinstance(found, list)  # noqa: S101  # a node-set XPath
        header = found[0] if found and isinstance(found[0], etree._Element) else root
        etree.SubElement(header, f"{{{DS}}}Signature", Id="placeholder")
        signed = self._signer.sign(
            root,
            key=self._key,
            cert=[c.public_bytes(Encoding.PEM).decode() for c in self._chain],
        )
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def _spki(key: object) -> bytes:
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)  # noqa: S101
    return key.public_bytes(Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
