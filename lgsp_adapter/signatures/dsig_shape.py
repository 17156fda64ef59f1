"""What an XML-DSig block says it is, read before any cryptography runs.

Everything that would let a hostile packet make the verifier work for nothing or look at the
wrong thing is refused here, each with its own reason: algorithms outside the policy,
references we do not follow (anything but the whole envelope and the signature's own signed
properties: an outside URI is never fetched, an ID elsewhere in the document is how a
wrapped-signature attack points at a moved element), too many references, content inside the
signature that nothing signs (any element but XML-DSig's and XAdES' own, where the enveloped
transform would hide a forged header from the digest), and base64 or certificates that cannot
be read.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from lxml import etree

from lgsp_adapter.signatures.result import SignatureStatus

DS = "http://www.w3.org/2000/09/xmldsig#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
C14N = frozenset(
    {
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
        "http://www.w3.org/2006/12/xml-c14n11",
        "http://www.w3.org/2006/12/xml-c14n11#WithComments",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    }
)
_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
SIGNATURE_METHODS = frozenset(
    {
        f"{_MORE}rsa-sha256",
        f"{_MORE}rsa-sha384",
        f"{_MORE}rsa-sha512",
        f"{_MORE}ecdsa-sha256",
        f"{_MORE}ecdsa-sha384",
        f"{_MORE}ecdsa-sha512",
    }
)
DIGEST_METHODS = frozenset(
    {
        "http://www.w3.org/2001/04/xmlenc#sha256",
        f"{_MORE}sha384",
        "http://www.w3.org/2001/04/xmlenc#sha512",
    }
)
RSA_SHA1 = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
SHA1 = "http://www.w3.org/2000/09/xmldsig#sha1"
XADES = frozenset({"http://uri.etsi.org/01903/v1.3.2#", "http://uri.etsi.org/01903/v1.4.1#"})
# An ID is any attribute named Id, ID or id, in any namespace (wsu:Id, xml:id): how signxml
# resolves a reference. Matched the same way here, and required to be unique, so that the
# element judged here is the one signxml digests.
_BY_ID = etree.XPath("//*[@*[local-name()='Id' or local-name()='ID' or local-name()='id']=$id]")
MAX_CERTIFICATES = 6  # a signer, its CAs and a root, with room to spare


class Verdict(Exception):  # not an error: the answer, reached early
    """The check ends here with this status and reason."""

    def __init__(self, status: SignatureStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Rules:
    """What the operator's policy lets a signature use."""

    allow_sha1: bool = True  # real packets are rsa-sha1; a policy may forbid it
    max_references: int = 8

    @property
    def signature_methods(self) -> frozenset[str]:
        return SIGNATURE_METHODS | ({RSA_SHA1} if self.allow_sha1 else frozenset())

    @property
    def digest_methods(self) -> frozenset[str]:
        return DIGEST_METHODS | ({SHA1} if self.allow_sha1 else frozenset())


@dataclass(frozen=True, slots=True)
class Shape:
    """A signature block that passed every check that needs no key."""

    signature_method: str
    leaf: x509.Certificate
    others: tuple[x509.Certificate, ...]
    references: int
    properties: tuple[etree._Element, ...]  # the signed objects inside the signature
    notes: tuple[str, ...]


def read_shape(signature: etree._Element, rules: Rules) -> Shape:
    """The block's shape, or ``Verdict`` with the first thing that rules it out."""
    info = _one(signature, "SignedInfo")
    _base64(_one(signature, "SignatureValue"), "SignatureValue")
    method = _algorithm(_one(info, "SignatureMethod"))
    if method not in rules.signature_methods:
        raise Verdict(SignatureStatus.INVALID, _refused_algorithm("signature", method, rules))
    if _algorithm(_one(info, "CanonicalizationMethod")) not in C14N:
        raise Verdict(SignatureStatus.INVALID, "its SignedInfo canonicalisation is not supported")
    references = _children(info, "Reference")
    if len(references) > rules.max_references:
        raise Verdict(
            SignatureStatus.INVALID,
            f"it has {len(references)} references; at most {rules.max_references} are checked",
        )
    whole, properties, notes = 0, [], []
    for reference in references:
        target = _reference_target(signature, reference, rules)
        whole += target is None
        if target is not None:
            properties.append(target)
    if whole != 1:
        raise Verdict(
            SignatureStatus.INVALID,
            f'it must sign the whole envelope with exactly one Reference URI=""; it has {whole}',
        )
    _no_unsigned_objects(signature, properties)
    _only_signature_markup(signature, properties)
    leaf, others = _certificates(signature)
    if method == RSA_SHA1:
        notes.append("weak algorithm rsa-sha1")
    return Shape(method, leaf, others, len(references), tuple(properties), tuple(notes))


def _reference_target(
    signature: etree._Element, reference: etree._Element, rules: Rules
) -> etree._Element | None:
    """None for the whole envelope; else the signed object inside the signature it names."""
    uri = reference.get("URI")
    transforms = [_algorithm(t) for t in _children(_maybe(reference, "Transforms"), "Transform")]
    for transform in transforms:
        if transform != ENVELOPED and transform not in C14N:
            raise Verdict(SignatureStatus.INVALID, f"transform {transform[:200]} is not supported")
    digest = _algorithm(_one(reference, "DigestMethod"))
    if digest not in rules.digest_methods:
        raise Verdict(SignatureStatus.INVALID, _refused_algorithm("digest", digest, rules))
    _base64(_one(reference, "DigestValue"), "DigestValue")
    if uri == "":
        if ENVELOPED not in transforms:
            raise Verdict(
                SignatureStatus.INVALID,
                "its whole-envelope reference lacks the enveloped-signature transform",
            )
        return None
    if uri is None or not uri.startswith("#") or uri.startswith("#xpointer("):
        shown = "none" if uri is None else repr(uri[:200])
        raise Verdict(
            SignatureStatus.INVALID,
            f"reference URI {shown} points outside the envelope; it is never fetched",
        )
    found = _BY_ID(signature.getroottree(), id=uri[1:])
    assert isinstance(found, list)  # noqa: S101  # a node-set XPath
    matches = [element for element in found if isinstance(element, etree._Element)]
    if len(matches) != 1 or not _inside(matches[0], signature):
        # The wrapped-signature attack: the ID names an element of the document (moved, or
        # copied so that the signed one is not the one read); we follow none of those.
        raise Verdict(
            SignatureStatus.INVALID,
            f"reference {uri[:200]!r} names {len(matches)} element(s), not one signed object "
            "inside the signature (a wrapped-signature attack looks like this)",
        )
    return matches[0]


def _no_unsigned_objects(signature: etree._Element, signed: Iterable[etree._Element]) -> None:
    """An Object nothing signs is content a reader might take for the document."""
    covered = {id(element) for element in signed}
    for thing in _children(signature, "Object"):
        inside = {id(element) for element in thing.iter()}
        if not covered & inside and len(thing):
            raise Verdict(
                SignatureStatus.INVALID, "the signature carries an Object that nothing signs"
            )


def _only_signature_markup(signature: etree._Element, signed: Sequence[etree._Element]) -> None:
    """What nothing signs (key info, unsigned properties) may hold only XML-DSig's and XAdES'
    own elements. The enveloped transform hides the whole signature from the digest, so an
    envelope header put there would verify while a reader took it for the document's."""
    for child in signature:
        if not isinstance(child.tag, str) or any(child is target for target in signed):
            continue  # comments carry nothing a reader takes; a signed object, its signer's
        namespace = etree.QName(child).namespace
        if namespace != DS and namespace not in XADES:
            raise Verdict(
                SignatureStatus.INVALID,
                f"it holds <{etree.QName(child).localname[:100]}> "
                f"({'no namespace' if namespace is None else namespace[:200]}) where nothing "
                "signs it; a forged header hides there (a wrapped-signature attack)",
            )
        _only_signature_markup(child, signed)


def _certificates(
    signature: etree._Element,
) -> tuple[x509.Certificate, tuple[x509.Certificate, ...]]:
    """The signer's certificate and the others the block carries (its chain)."""
    data = _maybe(_maybe(signature, "KeyInfo"), "X509Data")
    texts = _children(data, "X509Certificate")
    if not texts:
        raise Verdict(SignatureStatus.MALFORMED, "it carries no X509Certificate")
    if len(texts) > MAX_CERTIFICATES:
        # Path building tries every order of what it is given: bounded here, before it.
        raise Verdict(
            SignatureStatus.MALFORMED,
            f"it carries {len(texts)} certificates; at most {MAX_CERTIFICATES} are read",
        )
    certificates = []
    for text in texts:
        der = _base64(text, "X509Certificate")
        try:
            certificates.append(x509.load_der_x509_certificate(der))
        except ValueError as exc:
            raise Verdict(
                SignatureStatus.MALFORMED, f"its certificate cannot be read: {exc}"
            ) from exc
    issuers = {cert.issuer for cert in certificates}
    leaves = [cert for cert in certificates if cert.subject not in issuers] or certificates
    leaf = leaves[0]
    # A self-issued certificate is an anchor or nothing: the anchors are ours, not the packet's.
    return leaf, tuple(c for c in certificates if c is not leaf and c.subject != c.issuer)


def _inside(element: etree._Element, ancestor: etree._Element) -> bool:
    return any(parent is ancestor for parent in element.iterancestors())


def _refused_algorithm(what: str, uri: str, rules: Rules) -> str:
    if uri in (RSA_SHA1, SHA1) and not rules.allow_sha1:
        return f"its {what} algorithm {uri} is SHA-1, which this policy forbids"
    return f"its {what} algorithm {uri[:200]} is not supported"


def _algorithm(element: etree._Element) -> str:
    return element.get("Algorithm") or ""


def _base64(element: etree._Element, name: str) -> bytes:
    text = "".join((element.text or "").split())
    try:
        data = b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Verdict(SignatureStatus.MALFORMED, f"its {name} is not base64") from exc
    if not data:
        raise Verdict(SignatureStatus.MALFORMED, f"its {name} is empty")
    return data


def _children(parent: etree._Element | None, name: str) -> list[etree._Element]:
    return [] if parent is None else parent.findall(f"{{{DS}}}{name}")


def _maybe(parent: etree._Element | None, name: str) -> etree._Element | None:
    found = _children(parent, name)
    return found[0] if found else None


def _one(parent: etree._Element, name: str) -> etree._Element:
    found = _children(parent, name)
    if len(found) != 1:
        raise Verdict(SignatureStatus.MALFORMED, f"it has {len(found)} {name} elements, not one")
    return found[0]
