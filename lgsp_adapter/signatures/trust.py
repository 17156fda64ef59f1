"""Whom we trust to vouch for signers: the anchors (Government CA roots, provincial CAs) and the
revocation lists an operator configures, both from files.

A certificate is checked as RFC 5280 says, by pyhanko-certvalidator: a path from the signer's
certificate through the intermediates the signature carries to one of our anchors, each
certificate valid *at the signing time* (a document signed in 2024 with a certificate that
expired in 2025 still carries a valid signature). Revocation is ours to judge, along the path
certvalidator proved, against the configured CRLs: a signing time is the signer's own
statement, so a revocation for a compromised key (or for no stated reason) counts whatever
time the signature claims; only a benign one (the holder moved, was superseded, the CA
stopped) leaves a signature made before it valid. Nothing is fetched: no AIA, no OCSP, no CRL
distribution point (a government exchange does not let a packet make it open connections).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    DisallowedAlgorithmError,
    ExpiredError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    ValidationError,
)

from lgsp_adapter.signatures.result import SignatureStatus

log = logging.getLogger(__name__)

# What certvalidator refuses in a chain by default, less SHA-1 when the operator allows it:
# real Government CA chains issued before 2016 are SHA-1-signed.
_WEAK_HASHES = frozenset({"md2", "md5"})
_REMEMBERED = 10_000  # validated chains kept; a province has some thousands of signers
_SHA256 = hashes.SHA256()
# Revocations that say nothing against what the key signed before them; any other (key or CA
# compromise, a hold, no reason at all) counts whenever the signer claims to have signed.
_BENIGN = frozenset(
    {
        x509.ReasonFlags.affiliation_changed,
        x509.ReasonFlags.superseded,
        x509.ReasonFlags.cessation_of_operation,
        x509.ReasonFlags.privilege_withdrawn,
    }
)
# Extended key usages that are for anything but signing documents.
_NOT_FOR_DOCUMENTS = {
    x509.oid.ExtendedKeyUsageOID.SERVER_AUTH: "TLS servers",
    x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING: "OCSP responses",
    x509.oid.ExtendedKeyUsageOID.TIME_STAMPING: "time-stamping",
}


class TrustAnchors:
    """The anchors and CRLs one daemon checks signer certificates against."""

    def __init__(
        self,
        anchors: Iterable[x509.Certificate] = (),
        *,
        crls: Iterable[bytes] = (),
        allow_sha1: bool = True,
    ) -> None:
        self._roots = list(anchors)
        self._anchors = [_asn1(cert) for cert in self._roots]
        self._revocations = [x509.load_der_x509_crl(data) for data in crls]
        # Chains that validated, with the span in which all their certificates are valid: the
        # same signer's next document needs no new path (3 ms of certvalidator's time). What
        # else could change the answer (anchors, CRLs) is fixed for this object's life.
        self._validated: dict[tuple[bytes, ...], ValidPath] = {}
        self._crl_issuers: dict[tuple[int, bytes], bool] = {}  # CRL signatures, checked once
        self._weak = _WEAK_HASHES if allow_sha1 else _WEAK_HASHES | {"sha1"}

    @classmethod
    def from_files(
        cls, anchors: Iterable[Path], *, crls: Iterable[Path] = (), allow_sha1: bool = True
    ) -> TrustAnchors:
        """Anchors from PEM (one or many certificates a file) or DER files; CRLs likewise.
        A file that cannot be read stops the daemon at start-up: trusting less than the
        operator configured would call good signatures untrusted without saying why."""
        certificates = [cert for path in anchors for cert in _certificates(path)]
        lists = [data for path in crls for data in _ders(path, "X509 CRL")]
        log.info("signatures: %d trust anchors, %d CRLs", len(certificates), len(lists))
        trust = cls(certificates, crls=lists, allow_sha1=allow_sha1)
        trust.warn_of_stale_crls(datetime.now(UTC))
        return trust

    def warn_of_stale_crls(self, now: datetime) -> None:
        """A CRL past its next update still applies, but revocations since are unknown here."""
        for revocations in self._revocations:
            due = revocations.next_update_utc
            if due is not None and due < now:
                log.warning(
                    "signatures: the CRL of %s was due for renewal on %s; revocations since "
                    "then are not known until its file is refreshed",
                    revocations.issuer.rfc4514_string(),
                    f"{due:%Y-%m-%d}",
                )

    @property
    def count(self) -> int:
        """How many anchors there are (none: every signature is untrusted)."""
        return len(self._anchors)

    def context(self, moment: datetime) -> ValidationContext:
        """The context certvalidator (and pyHanko, for PDFs) validates a path in at ``moment``:
        no CRLs in it, since ``revocation`` judges those along the path it proves."""
        return ValidationContext(
            trust_roots=self._anchors,
            moment=moment,
            allow_fetching=False,
            revocation_mode="soft-fail",  # nothing to fetch and none given: not its question
            weak_hash_algos=self._weak,
        )

    async def check(
        self, leaf: x509.Certificate, others: Iterable[x509.Certificate], moment: datetime
    ) -> tuple[SignatureStatus, str | None]:
        """VALID with no reason, or the status and reason the path fails with at ``moment``."""
        if not self._anchors:
            return SignatureStatus.UNTRUSTED, "no trust anchors are configured"
        chain = [leaf, *others]
        key = tuple(cert.fingerprint(_SHA256) for cert in chain)
        remembered = self._validated.get(key)
        if remembered is None or not remembered.spans(moment):
            found = await self._path(leaf, others, moment)
            if not isinstance(found, ValidPath):
                return found
            if len(self._validated) >= _REMEMBERED:
                self._validated.clear()
            self._validated[key] = remembered = found
        revoked = self.revocation(remembered.certificates, moment)
        if revoked is not None:
            return SignatureStatus.INVALID, revoked
        return usage(leaf)

    async def _path(
        self, leaf: x509.Certificate, others: Iterable[x509.Certificate], moment: datetime
    ) -> ValidPath | tuple[SignatureStatus, str]:
        """The path certvalidator finds at ``moment``, or why there is none."""
        validator = CertificateValidator(
            _asn1(leaf),
            intermediate_certs=[_asn1(cert) for cert in others],
            validation_context=self.context(moment),
        )
        try:
            found = await validator.async_validate_path()
        except PathBuildingError:
            return SignatureStatus.UNTRUSTED, (
                f"the certificate does not chain to a trust anchor (issuer "
                f"{leaf.issuer.rfc4514_string()!r})"
            )
        except ExpiredError as exc:
            return SignatureStatus.INVALID, f"a certificate had expired at signing time: {exc}"
        except NotYetValidError as exc:
            return SignatureStatus.INVALID, f"a certificate was not yet valid: {exc}"
        except DisallowedAlgorithmError as exc:
            return SignatureStatus.INVALID, f"the chain uses an algorithm refused here: {exc}"
        except (PathValidationError, ValidationError) as exc:
            return SignatureStatus.UNTRUSTED, f"the certificate path does not validate: {exc}"
        return ValidPath.of([x509.load_der_x509_certificate(c.dump()) for c in found])

    def _signed_by(self, number: int, issuer: x509.Certificate) -> bool:
        """Whether CRL ``number`` is ``issuer``'s: its signature, verified once a pair."""
        key = (number, issuer.fingerprint(_SHA256))
        if key not in self._crl_issuers:
            public = issuer.public_key()
            self._crl_issuers[key] = self._revocations[number].is_signature_valid(public)  # type: ignore[arg-type]
        return self._crl_issuers[key]

    def revocation(self, path: Sequence[x509.Certificate], moment: datetime) -> str | None:
        """Why a certificate of ``path`` (validated, root first) is revoked for a signature
        made at ``moment``, or None. A configured CRL applies to the certificates its issuer
        signed, whether or not they name a distribution point. Each certificate's issuer is
        the one the path proves, never one found by name among those a packet carries (a
        self-made namesake would hide the CRL)."""
        for issuer, cert in itertools.pairwise(path):
            for number, revocations in enumerate(self._revocations):
                if revocations.issuer != cert.issuer or not self._signed_by(number, issuer):
                    continue
                entry = revocations.get_revoked_certificate_by_serial_number(cert.serial_number)
                if entry is None:
                    continue
                said = _revoked(cert, entry, moment)
                if said is not None:
                    return said
        return None


def _revoked(
    cert: x509.Certificate, entry: x509.RevokedCertificate, moment: datetime
) -> str | None:
    """What one CRL entry means for a signature the signer says it made at ``moment``."""
    when = entry.revocation_date_utc
    try:
        reason: x509.ReasonFlags | None = entry.extensions.get_extension_for_class(
            x509.CRLReason
        ).value.reason
    except x509.ExtensionNotFound:
        reason = None
    named = f"certificate {cert.serial_number:x} ({cert.subject.rfc4514_string()})"
    if when <= moment:
        return f"{named} was revoked on {when:%Y-%m-%d}, before signing"
    if reason in _BENIGN:
        return None  # signed while the holder still held it
    return (
        f"{named} was revoked on {when:%Y-%m-%d} ({reason.value if reason else 'no reason given'}"
        "); a signing time stated by the signer does not put a signature before that"
    )


@dataclass(frozen=True, slots=True)
class ValidPath:
    """A validated path, root first, and the span in which all its certificates are valid."""

    certificates: tuple[x509.Certificate, ...]
    not_before: datetime
    not_after: datetime

    @classmethod
    def of(cls, certificates: list[x509.Certificate]) -> ValidPath:
        return cls(
            tuple(certificates),
            max(cert.not_valid_before_utc for cert in certificates),
            min(cert.not_valid_after_utc for cert in certificates),
        )

    def spans(self, moment: datetime) -> bool:
        return self.not_before <= moment <= self.not_after


def usage(leaf: x509.Certificate) -> tuple[SignatureStatus, str | None]:
    """A certificate for TLS, time-stamping or encryption only does not sign documents."""
    try:
        keys = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        keys = None
    if keys is not None and not (keys.digital_signature or keys.content_commitment):
        return SignatureStatus.INVALID, "the certificate's key usage does not include signing"
    try:
        purposes = set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return SignatureStatus.VALID, None
    if purposes and purposes <= _NOT_FOR_DOCUMENTS.keys():
        named = ", ".join(sorted(_NOT_FOR_DOCUMENTS[p] for p in purposes))
        return SignatureStatus.INVALID, f"the certificate is for {named}, not for signing"
    return SignatureStatus.VALID, None


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(Encoding.DER))


def _certificates(path: Path) -> list[x509.Certificate]:
    return [x509.load_der_x509_certificate(der) for der in _ders(path, "CERTIFICATE")]


def _ders(path: Path, label: str) -> list[bytes]:
    """The DER objects of one file: each PEM block with ``label``, or the whole file as DER."""
    data = path.read_bytes()
    if not pem.detect(data):
        return [data]
    found = [der for kind, _, der in pem.unarmor(data, multiple=True) if kind == label]
    if not found:
        raise ValueError(f"{path}: no {label} in it")
    return found
