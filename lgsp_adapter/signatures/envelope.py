"""The XML-DSig signature of an edXML envelope: found, read, and its cryptography checked.

This part needs no trust anchors and runs off the event loop (a 5 MB envelope is digested in
full). It finds the one signature, refuses what ``dsig_shape`` refuses, then lets signxml
check the signature value and every digest with the certificate the block carries; whether
that certificate deserves trust is ``trust``'s question, asked afterwards at the signing time.
"""

from __future__ import annotations

import logging
from base64 import b64decode
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidDigest, InvalidInput, InvalidSignature
from signxml.verifier import SignatureConfiguration, XMLVerifier

from lgsp_adapter.packets.safe_xml import verbatim_parser
from lgsp_adapter.signatures.dsig_shape import DS, Rules, Shape, Verdict, read_shape
from lgsp_adapter.signatures.result import COULD_NOT_CHECK, SignatureStatus, Signer

log = logging.getLogger(__name__)

_SIGNATURES = etree.XPath("//*[local-name()='Signature']")
_SIGNING_TIME = etree.XPath(".//*[local-name()='SigningTime']")
_EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)  # before any Vietnamese government CA
_SKEW = timedelta(days=1)  # clocks disagree; a signature from next week does not


@dataclass(frozen=True, slots=True)
class Verified:
    """The signature's cryptography holds; its certificate is still to be judged."""

    leaf: x509.Certificate
    others: tuple[x509.Certificate, ...]
    algorithm: str
    signing_time: datetime | None  # from a signed SigningTime, when the signature has one
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unverified:
    """The check ended before trust came into it."""

    status: SignatureStatus
    reason: str | None = None
    signer: Signer | None = None  # read from the block's certificate, when it can be
    algorithm: str | None = None
    notes: tuple[str, ...] = ()


def check_tree(root: etree._Element, rules: Rules) -> Verified | Unverified:
    """Verify the envelope's signature as far as it goes without trust anchors. Never raises:
    whatever a packet holds, it gets a result. ``root``: parsed verbatim (comments kept)."""
    try:
        return _check(root, rules)
    except Exception as exc:  # our bug or a library's: a result, never a crash
        log.exception("signature check failed unexpectedly")
        return Unverified(SignatureStatus.MALFORMED, f"{COULD_NOT_CHECK}: {exc!r}"[:300])


def _check(root: etree._Element, rules: Rules) -> Verified | Unverified:
    found = _SIGNATURES(root)
    assert isinstance(found, list)  # noqa: S101  # a node-set XPath
    blocks = [e for e in found if isinstance(e, etree._Element)]
    if not blocks:
        return Unverified(SignatureStatus.UNSIGNED)
    signatures = [e for e in blocks if etree.QName(e).namespace == DS]
    if not signatures:
        return _wrong_namespace(blocks[0])
    if len(signatures) > 1:
        return Unverified(
            SignatureStatus.MALFORMED,
            f"it has {len(signatures)} XML-DSig signatures; one over the envelope is expected",
        )
    try:
        shape = read_shape(signatures[0], rules)
    except Verdict as verdict:
        return Unverified(
            verdict.status, verdict.reason, _signer_of(signatures[0]), _method(signatures[0])
        )
    return _verify(root, shape, rules)


def _verify(root: etree._Element, shape: Shape, rules: Rules) -> Verified | Unverified:
    """signxml checks the value with the block's own certificate, then each digest."""
    algorithm = _short(shape.signature_method)
    config = SignatureConfiguration(
        require_x509=True,
        expect_references=shape.references,
        signature_methods=frozenset(SignatureMethod(m) for m in rules.signature_methods),
        digest_algorithms=frozenset(DigestAlgorithm(m) for m in rules.digest_methods),
        # Validity is trust's to judge, at the signing time; here the certificate only lends
        # its key, so it is looked at while it surely was valid.
        verification_time=shape.leaf.not_valid_before_utc,
    )
    signer = Signer.of(shape.leaf)
    try:
        results = XMLVerifier().verify(
            root, x509_cert=shape.leaf, expect_config=config, parser=verbatim_parser()
        )
    except InvalidDigest as exc:
        why = f"the signed content was changed after signing ({exc})"
        return Unverified(SignatureStatus.INVALID, why, signer, algorithm, shape.notes)
    except InvalidSignature as exc:
        why = f"the signature value does not verify with its certificate ({exc})"
        return Unverified(SignatureStatus.INVALID, why, signer, algorithm, shape.notes)
    except InvalidInput as exc:
        return Unverified(SignatureStatus.INVALID, str(exc)[:300], signer, algorithm, shape.notes)
    except etree.DocumentInvalid as exc:  # signxml holds the block to the XML-DSig schema
        why = f"its signature block does not follow the XML-DSig schema: {exc}"[:300]
        return Unverified(SignatureStatus.MALFORMED, why, signer, algorithm, shape.notes)
    signed = results if isinstance(results, list) else [results]
    try:
        moment = _signing_time([r.signed_xml for r in signed if r.signed_xml is not None], shape)
    except Verdict as verdict:
        return Unverified(verdict.status, verdict.reason, signer, algorithm, shape.notes)
    return Verified(shape.leaf, shape.others, algorithm, moment, shape.notes)


def _signing_time(signed: list[etree._Element], shape: Shape) -> datetime | None:
    """The SigningTime the signature's own signed properties state (XAdES puts it there)."""
    if not shape.properties:
        return None
    for element in signed:
        found = _SIGNING_TIME(element)
        assert isinstance(found, list)  # noqa: S101  # a node-set XPath
        for moment in found:
            if isinstance(moment, etree._Element) and moment.text:
                try:
                    parsed = datetime.fromisoformat(moment.text.strip())
                    stated = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
                    stated = stated.astimezone(UTC)
                except (ValueError, OverflowError):
                    stated = None
                if stated is None or not _EARLIEST <= stated <= datetime.now(UTC) + _SKEW:
                    raise Verdict(
                        SignatureStatus.INVALID,
                        f"its signed SigningTime {moment.text.strip()[:40]} is not a time it "
                        "can have been signed",
                    )
                return stated
    return None


def _wrong_namespace(block: etree._Element) -> Unverified:
    namespace = etree.QName(block).namespace
    where = f"namespace {namespace}" if namespace else "no namespace"
    return Unverified(
        SignatureStatus.WRONG_NAMESPACE,
        f"its Signature block is in {where}, not XML-DSig's ({DS}), so nothing can verify it",
        _signer_of(block),
        _method(block),
    )


def _signer_of(block: etree._Element) -> Signer | None:
    """Who the block's first certificate names, if it can be read (whatever its namespace)."""
    for element in block.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname == "X509Certificate":
            try:
                der = b64decode("".join((element.text or "").split()), validate=True)
                return Signer.of(x509.load_der_x509_certificate(der))
            except ValueError:
                return None
    return None


def _method(block: etree._Element) -> str | None:
    for element in block.iter():
        if isinstance(element.tag, str) and etree.QName(element).localname == "SignatureMethod":
            return _short(element.get("Algorithm") or "") or None
    return None


def _short(uri: str) -> str:
    """``rsa-sha256`` for its URI: what a person recognises."""
    return uri.rpartition("#")[2][:100]
