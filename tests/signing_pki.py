"""A test public-key infrastructure made fresh with ``cryptography``: a Government root CA, a
provincial CA under it, signers' certificates (valid, expired, revoked, from a stranger's CA),
a CRL, and XML signers that sign edXML the way agency software does (signxml, and a legacy
rsa-sha1 one like the real samples')."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

NOW = datetime.now(UTC)


def _name(common: str, organisation: str = "Ban Co yeu Chinh phu") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


@dataclass(frozen=True)
class Identity:
    """A key and its certificate."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()  # the CAs above it, nearest first

    def pem_chain(self) -> list[str]:
        return [
            c.public_bytes(serialization.Encoding.PEM).decode()
            for c in (self.certificate, *self.chain)
        ]

    def write(self, folder: Path, stem: str) -> tuple[Path, Path]:
        """Key and certificate-with-chain as PEM files."""
        key = folder / f"{stem}.key"
        key.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        certificate = folder / f"{stem}.pem"
        certificate.write_text("".join(self.pem_chain()))
        return key, certificate


_KEYS: list[rsa.RSAPrivateKey] = []
_ASKED = itertools.count()


def _key() -> rsa.RSAPrivateKey:
    """Key generation dominates: a test session makes a dozen and reuses them, in turn, so
    that no two identities of one PKI share a key (a stranger CA holding the root's key made
    "untrusted" prove only that paths are built by name; found in review)."""
    turn = next(_ASKED) % 12
    if turn == len(_KEYS):
        _KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEYS[turn]


def _certificate(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: Identity | None,
    *,
    ca: bool,
    not_before: datetime,
    not_after: datetime,
    serial: int | None = None,
) -> x509.Certificate:
    signing_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    return builder.sign(signing_key, hashes.SHA256())


@dataclass
class Pki:
    """Root, provincial CA, and the signers the tests need."""

    root: Identity
    province: Identity
    signer: Identity
    expired: Identity
    revoked: Identity  # key compromised two days ago (the CRL gives no reason: the same)
    superseded: Identity  # revoked two days ago for a new certificate: a benign reason
    stranger: Identity  # chains to a CA nobody configured
    clerk_name: str = "Nguyen Thi Ngoc Tram"
    crl: bytes = field(default=b"")

    def anchors_file(self, folder: Path) -> Path:
        path = folder / "anchors.pem"
        path.write_bytes(self.root.certificate.public_bytes(serialization.Encoding.PEM))
        return path

    def crl_file(self, folder: Path) -> Path:
        path = folder / "province.crl"
        path.write_bytes(self.crl)
        return path


def make_pki() -> Pki:
    """Made once per test session (see ``tests/test_signatures.py``'s fixture)."""
    long_ago, later = NOW - timedelta(days=3650), NOW + timedelta(days=3650)
    root_key = _key()
    root = Identity(
        root_key,
        _certificate(
            _name("Root CA Chinh phu (test)"),
            root_key,
            None,
            ca=True,
            not_before=long_ago,
            not_after=later,
        ),
    )
    province_key = _key()
    province = Identity(
        province_key,
        _certificate(
            _name("CA Thanh Hoa (test)"),
            province_key,
            root,
            ca=True,
            not_before=long_ago,
            not_after=later,
        ),
        (root.certificate,),
    )

    def person(common: str, *, before: datetime, after: datetime, under: Identity) -> Identity:
        key = _key()
        certificate = _certificate(
            _name(common, "UBND tinh Thanh Hoa"),
            key,
            under,
            ca=False,
            not_before=before,
            not_after=after,
        )
        return Identity(key, certificate, (under.certificate, *under.chain))

    signer = person("Nguyen Van An", before=NOW - timedelta(days=30), after=later, under=province)
    expired = person(
        "Le Thi Binh",
        before=NOW - timedelta(days=400),
        after=NOW - timedelta(days=35),
        under=province,
    )
    revoked = person("Tran Van Cuong", before=NOW - timedelta(days=30), after=later, under=province)
    superseded = person(
        "Pham Thi Dung", before=NOW - timedelta(days=30), after=later, under=province
    )
    stranger_key = _key()
    stranger_ca = Identity(
        stranger_key,
        _certificate(
            _name("Unknown CA"), stranger_key, None, ca=True, not_before=long_ago, not_after=later
        ),
    )
    stranger = person(
        "Someone Else", before=NOW - timedelta(days=30), after=later, under=stranger_ca
    )
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(province.certificate.subject)
        .last_update(NOW - timedelta(days=1))
        .next_update(NOW + timedelta(days=30))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(revoked.certificate.serial_number)
            .revocation_date(NOW - timedelta(days=2))
            .build()
        )
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(superseded.certificate.serial_number)
            .revocation_date(NOW - timedelta(days=2))
            .add_extension(x509.CRLReason(x509.ReasonFlags.superseded), critical=False)
            .build()
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(province.key.public_key()),
            critical=False,
        )
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(province.key, hashes.SHA256())
    )
    return Pki(
        root,
        province,
        signer,
        expired,
        revoked,
        superseded,
        stranger,
        crl=crl.public_bytes(serialization.Encoding.DER),
    )


class _LegacySigner(XMLSigner):
    """rsa-sha1, as the real samples are signed; signxml refuses to make those by default."""

    def check_deprecated_methods(self) -> None:
        return None


def sign_edxml(
    document: bytes,
    identity: Identity,
    *,
    sha1: bool = False,
    where: str = "edXMLHeader",
) -> bytes:
    """``document`` signed as agency software signs it: enveloped, ``URI=""``, the
    certificate and its chain embedded, the Signature the last child of the header."""
    root = etree.fromstring(document)
    header = root.find(f".//{{*}}{where}")
    parent = header if header is not None else root
    etree.SubElement(parent, "{http://www.w3.org/2000/09/xmldsig#}Signature", Id="placeholder")
    signer_class = _LegacySigner if sha1 else XMLSigner
    signer = signer_class(
        signature_algorithm=SignatureMethod.RSA_SHA1 if sha1 else SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA1 if sha1 else DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = signer.sign(root, key=identity.key, cert=identity.pem_chain())
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def namesake(of: Identity, issuer: Identity) -> x509.Certificate:
    """A certificate an attacker makes with a CA's name and the issuer's, signed by itself."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        x509.CertificateBuilder()
        .subject_name(of.certificate.subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
