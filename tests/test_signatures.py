"""XML-DSig verification of edXML envelopes, case by case, against Debian's ``xmlsec1``.

Each case is a document signed (or broken) the way agency software or an attacker would make
it, with certificates from a test PKI made in the test. Our verdict and ``xmlsec1 --verify``'s
must agree: valid where it says OK, not valid where it fails. xmlsec1 is given the same
anchors and the same reference policy (only the whole document and XML-DSig's own objects:
``--enabled-reference-uris empty,same-doc``, no application ID attributes). It has no switch
for algorithms, so the SHA-1 policy case is compared on the cryptography alone.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import shutil
import subprocess
import sys
import tempfile
import uuid
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree
from signxml.algorithms import CanonicalizationMethod
from signxml.signer import XMLSigner

from lgsp_adapter.cli.demo_packets import document
from lgsp_adapter.exchange.signature_gate import SignatureGate
from lgsp_adapter.packets.safe_xml import XmlLimits
from lgsp_adapter.registry.agencies import Endpoint
from lgsp_adapter.signatures import Checker, SignatureStatus, TrustAnchors
from lgsp_adapter.signatures.dsig_shape import DS, ENVELOPED, Rules
from lgsp_adapter.signatures.result import SignatureResult
from lgsp_adapter.signatures.signer import EnvelopeSigner
from lgsp_adapter.store import StoredPacket
from tests.signing_pki import NOW, Identity, Pki, make_pki, namesake, sign_edxml

XMLSEC1 = shutil.which("xmlsec1")
EXCLUSIVE = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "edxml"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def checker(pki: Pki) -> Checker:
    return Checker(TrustAnchors([pki.root.certificate], crls=[pki.crl]))


def check(checker: Checker, payload: bytes) -> SignatureResult:
    return asyncio.run(checker.check(payload))


def _ds(name: str) -> str:
    return f"{{{DS}}}{name}"


def _edit(signed: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = etree.fromstring(signed)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _tampered(signed: bytes) -> bytes:
    return signed.replace(b"1234", b"1235")


def _signature_from_another(pki: Pki) -> Callable[[bytes], bytes]:
    other = sign_edxml(document(number="9999"), pki.signer)

    def swap(signed: bytes) -> bytes:
        theirs = etree.fromstring(other).find(f".//{_ds('Signature')}")

        def put(root: etree._Element) -> None:
            ours = root.find(f".//{_ds('Signature')}")
            assert ours is not None
            assert theirs is not None
            ours.getparent().replace(ours, theirs)  # type: ignore[union-attr]

        return _edit(signed, put)

    return swap


def _wrapped(pki: Pki) -> Callable[[bytes], bytes]:
    """XSW: the header signed by ID is moved into the signature; a forged one takes its place."""

    def wrap(_: bytes) -> bytes:
        root = etree.fromstring(document())
        header = root.find(".//{*}edXMLHeader")
        assert header is not None
        header.set("Id", "hdr")
        signed = XMLSigner(c14n_algorithm=EXCLUSIVE).sign(
            root, key=pki.signer.key, cert=pki.signer.pem_chain(), reference_uri="#hdr"
        )
        original = signed.find(".//{*}edXMLHeader")
        signature = signed.find(f".//{_ds('Signature')}")
        assert original is not None
        assert signature is not None
        forged = copy.deepcopy(original)
        del forged.attrib["Id"]
        for subject in forged.iter("{*}Subject"):
            subject.text = "Forged subject"
        holder = etree.SubElement(signature, _ds("Object"))
        original.getparent().replace(original, forged)  # type: ignore[union-attr]
        holder.append(original)
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")

    return wrap


def _external(url: str) -> Callable[[bytes], bytes]:
    def point(signed: bytes) -> bytes:
        def change(root: etree._Element) -> None:
            reference = root.find(f".//{_ds('Reference')}")
            assert reference is not None
            reference.set("URI", url)

        return _edit(signed, change)

    return point


def _many_references(signed: bytes) -> bytes:
    def change(root: etree._Element) -> None:
        reference = root.find(f".//{_ds('Reference')}")
        assert reference is not None
        info = reference.getparent()
        assert info is not None
        for _ in range(9_999):
            info.append(copy.deepcopy(reference))

    return _edit(signed, change)


def _broken_base64(signed: bytes) -> bytes:
    def change(root: etree._Element) -> None:
        value = root.find(f".//{_ds('SignatureValue')}")
        assert value is not None
        value.text = "not*base64!" + (value.text or "")

    return _edit(signed, change)


def _qcvn_namespace(signed: bytes) -> bytes:
    """As the real samples are: the block under the QCVN default namespace."""

    def change(root: etree._Element) -> None:
        for element in root.iter(f"{{{DS}}}*"):
            element.tag = (
                "{http://www.mic.gov.vn/TBT/QCVN_102_2016}" + etree.QName(element).localname
            )
        etree.cleanup_namespaces(root)

    return _edit(signed, change)


@dataclass(frozen=True)
class Case:
    name: str
    signer: str  # which identity signs ("" for unsigned)
    expect: SignatureStatus
    reason: str = ""  # a word the reason must contain
    change: Callable[[Pki], Callable[[bytes], bytes]] | None = None
    sha1: bool = False


CASES = [
    Case("valid", "signer", SignatureStatus.VALID),
    Case("legacy rsa-sha1", "signer", SignatureStatus.VALID, sha1=True),
    Case(
        "tampered content",
        "signer",
        SignatureStatus.INVALID,
        "changed after signing",
        lambda _: _tampered,
    ),
    Case(
        "signature over other content",
        "signer",
        SignatureStatus.INVALID,
        "",
        _signature_from_another,
    ),
    Case("expired certificate", "expired", SignatureStatus.INVALID, "expired"),
    Case("revoked certificate", "revoked", SignatureStatus.INVALID, "revoked"),
    Case("chain to no anchor", "stranger", SignatureStatus.UNTRUSTED, "trust anchor"),
    Case("wrapped signature", "signer", SignatureStatus.INVALID, "whole envelope", _wrapped),
    Case(
        "10,000 references",
        "signer",
        SignatureStatus.MALFORMED,
        "xml.too_many_elements",
        lambda _: _many_references,
    ),
    Case(
        "malformed base64",
        "signer",
        SignatureStatus.MALFORMED,
        "not base64",
        lambda _: _broken_base64,
    ),
    Case("unsigned", "", SignatureStatus.UNSIGNED),
    Case(
        "QCVN namespace",
        "signer",
        SignatureStatus.WRONG_NAMESPACE,
        "not XML-DSig",
        lambda _: _qcvn_namespace,
    ),
]


def _make(case: Case, pki: Pki) -> bytes:
    base = document()
    if not case.signer:
        return base
    signed = sign_edxml(base, getattr(pki, case.signer), sha1=case.sha1)
    return case.change(pki)(signed) if case.change else signed


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_case_gets_its_precise_result(case: Case, pki: Pki, checker: Checker) -> None:
    result = check(checker, _make(case, pki))
    assert result.status is case.expect, result.summary()
    assert case.reason in (result.reason or ""), result.summary()


def _xmlsec1(payload: bytes, pki: Pki, folder: Path, *, crl: bool) -> bool:
    assert XMLSEC1 is not None
    if crl:  # xmlsec1 takes a CRL from the signature's X509Data, not from a file
        payload = _with_crl(payload, pki.crl)
    document_file = folder / "signed.xml"
    document_file.write_bytes(payload)
    anchors = pki.anchors_file(folder)
    run = subprocess.run(  # our own arguments
        [
            XMLSEC1,
            "--verify",
            "--trusted-pem",
            str(anchors),
            "--enabled-reference-uris",
            "empty,same-doc",
            "--enabled-key-data",
            "x509",
            str(document_file),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return run.returncode == 0


def _with_crl(payload: bytes, crl: bytes) -> bytes:
    def change(root: etree._Element) -> None:
        data = root.find(f".//{_ds('X509Data')}")
        if data is not None:
            etree.SubElement(data, _ds("X509CRL")).text = b64encode(crl).decode()

    return _edit(payload, change)


# xmlsec1 digests all 10,000 references before it looks at the signature value, minutes of
# work: the cost our limits refuse to pay. Every other case is compared.
COMPARED = [c for c in CASES if c.name != "10,000 references"]


@pytest.mark.skipif(XMLSEC1 is None, reason="Debian's xmlsec1 is not installed")
@pytest.mark.parametrize("case", COMPARED, ids=[c.name for c in COMPARED])
def test_xmlsec1_agrees(case: Case, pki: Pki, checker: Checker, tmp_path: Path) -> None:
    payload = _make(case, pki)
    ours = check(checker, payload).status is SignatureStatus.VALID
    assert _xmlsec1(payload, pki, tmp_path, crl=case.signer == "revoked") is ours


@pytest.mark.skipif(XMLSEC1 is None, reason="Debian's xmlsec1 is not installed")
def test_sha1_forbidden_by_policy_is_refused_where_xmlsec1_sees_sound_cryptography(
    pki: Pki, tmp_path: Path
) -> None:
    legacy = sign_edxml(document(), pki.signer, sha1=True)
    strict = Checker(TrustAnchors([pki.root.certificate]), rules=Rules(allow_sha1=False))
    result = check(strict, legacy)
    assert result.status is SignatureStatus.INVALID
    assert "SHA-1, which this policy forbids" in (result.reason or "")
    assert _xmlsec1(legacy, pki, tmp_path, crl=False)


def test_an_external_reference_is_never_fetched(pki: Pki, checker: Checker, tmp_path: Path) -> None:
    asked: list[str] = []

    async def scenario() -> SignatureStatus:
        async def answer(request: web.Request) -> web.Response:
            asked.append(request.path)
            return web.Response(text="<x/>")

        app = web.Application()
        app.router.add_get("/{tail:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://127.0.0.1:{port}/payload.xml"
        payload = _external(url)(sign_edxml(document(), pki.signer))
        result = await checker.check(payload)
        assert "never fetched" in (result.reason or "")
        if XMLSEC1:
            ours = result.status is SignatureStatus.VALID
            assert await asyncio.to_thread(_xmlsec1, payload, pki, tmp_path, crl=False) is ours
        await runner.cleanup()
        return result.status

    assert asyncio.run(scenario()) is SignatureStatus.INVALID
    assert asked == []


def test_references_past_the_limit_are_refused_before_any_digest(pki: Pki) -> None:
    """With the XML limits lifted, the reference count is what stops it: no digest is made."""
    lifted = Checker(TrustAnchors([pki.root.certificate]), limits=XmlLimits(max_elements=200_000))
    result = check(lifted, _many_references(sign_edxml(document(), pki.signer)))
    assert result.status is SignatureStatus.INVALID
    assert result.reason == "it has 10000 references; at most 8 are checked"


def test_an_object_nothing_signs_is_refused(pki: Pki, checker: Checker) -> None:
    """A forged envelope hidden in the signature, where the enveloped transform hides it from
    the digest; xmlsec1 judges the cryptography only, which holds."""

    def hide(root: etree._Element) -> None:
        signature = root.find(f".//{_ds('Signature')}")
        assert signature is not None
        etree.SubElement(etree.SubElement(signature, _ds("Object")), "edXMLEnvelope")

    result = check(checker, _edit(sign_edxml(document(), pki.signer), hide))
    assert result.status is SignatureStatus.INVALID
    assert "Object that nothing signs" in (result.reason or "")


def _forged_header(root: etree._Element) -> etree._Element:
    header = root.find(".//{*}edXMLHeader")
    assert header is not None
    forged = etree.Element(header.tag)
    for part in header:
        if etree.QName(part).namespace != DS:
            forged.append(copy.deepcopy(part))
    for subject in forged.iter("{*}Subject"):
        subject.text = "Forged subject"
    return forged


def test_a_header_hidden_in_the_key_info_is_refused(pki: Pki, checker: Checker) -> None:
    """XSW where nothing is moved: the enveloped transform keeps the whole signature out of
    the digest, so a header put in its KeyInfo verifies while a reader may take it."""

    def hide(root: etree._Element) -> None:
        key_info = root.find(f".//{_ds('KeyInfo')}")
        assert key_info is not None
        key_info.insert(0, _forged_header(root))

    result = check(checker, _edit(sign_edxml(document(), pki.signer), hide))
    assert result.status is SignatureStatus.INVALID, result.summary()
    assert "<edXMLHeader> (http://www.mic.gov.vn/TBT/QCVN_102_2016) where nothing signs it" in (
        result.reason or ""
    )


@pytest.mark.skipif(XMLSEC1 is None, reason="Debian's xmlsec1 signs the templates")
def test_a_header_beside_signed_properties_is_refused(
    pki: Pki, checker: Checker, tmp_path: Path
) -> None:
    """The Object holds a signed SignatureProperty; what sits beside it in the same Object is
    signed by nobody, though the Object as a whole overlaps what is signed."""
    template = _template(document(), NOW - timedelta(days=1), signed="prop")
    signed = _xmlsec1_signed(template, pki.signer, tmp_path)
    assert check(checker, signed).status is SignatureStatus.VALID

    def hide(root: etree._Element) -> None:
        holder = root.find(f".//{_ds('Object')}")
        assert holder is not None
        holder.append(_forged_header(root))

    result = check(checker, _edit(signed, hide))
    assert result.status is SignatureStatus.INVALID, result.summary()
    assert "a wrapped-signature attack" in (result.reason or "")


def test_the_signer_and_time_are_reported(pki: Pki, checker: Checker) -> None:
    result = check(checker, sign_edxml(document(), pki.signer))
    assert result.signer is not None
    assert result.signer.subject.startswith("CN=Nguyen Van An")
    assert result.signer.serial == format(pki.signer.certificate.serial_number, "x")
    assert "CA Thanh Hoa" in result.signer.issuer
    assert result.time_source == "verification"
    assert result.headers()["X-LGSP-Signature"] == "valid"


def test_no_anchors_means_untrusted(pki: Pki) -> None:
    result = check(Checker(TrustAnchors()), sign_edxml(document(), pki.signer))
    assert result.status is SignatureStatus.UNTRUSTED
    assert result.reason == "no trust anchors are configured"


def test_anchors_and_crls_load_from_files(pki: Pki, tmp_path: Path) -> None:
    anchors = TrustAnchors.from_files([pki.anchors_file(tmp_path)], crls=[pki.crl_file(tmp_path)])
    assert anchors.count == 1
    result = check(Checker(anchors), sign_edxml(document(), pki.revoked))
    assert "revoked" in (result.reason or "")


def test_the_adapter_signs_what_it_writes_so_that_it_verifies(
    pki: Pki, tmp_path: Path, checker: Checker
) -> None:
    key, certificate = pki.signer.write(tmp_path, "agency")
    signer = EnvelopeSigner.from_files(key, certificate)
    assert "PRIVATE" not in repr(signer)
    signed = signer.sign(document())
    assert check(checker, signed).status is SignatureStatus.VALID
    if XMLSEC1:
        assert _xmlsec1(signed, pki, tmp_path, crl=False)


def test_a_key_that_is_not_the_certificates_is_refused(pki: Pki) -> None:
    with pytest.raises(ValueError, match="not the key's"):
        EnvelopeSigner(pki.province.key, [pki.signer.certificate])


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/samples is not here (a user's clone)")
@pytest.mark.parametrize(
    "name", sorted(p.name for p in SAMPLES.glob("*.edxml")) if SAMPLES.is_dir() else []
)
def test_every_real_sample_gets_a_result(name: str, checker: Checker) -> None:
    result = check(checker, (SAMPLES / name).read_bytes())
    if name.startswith("edoc_"):
        # The samples' block is under the QCVN namespace, rsa-sha1, its certificate cut short.
        assert result.status is SignatureStatus.WRONG_NAMESPACE
        assert result.algorithm == "rsa-sha1"
    else:
        assert result.status is SignatureStatus.UNSIGNED
    assert result.summary()


def _template(unsigned: bytes, signing_time: datetime, *, signed: str = "props") -> bytes:
    """A signature template as XAdES-style signers make it: the whole envelope, and signed
    properties inside the signature stating when it was signed; xmlsec1 fills it in.
    ``signed``: the Id the second reference names, the Object's ("props") or the one
    SignatureProperty's within it ("prop")."""
    exclusive = "http://www.w3.org/2001/10/xml-exc-c14n#"
    sha256 = "http://www.w3.org/2001/04/xmlenc#sha256"
    root = etree.fromstring(unsigned)
    header = root.find(".//{*}edXMLHeader")
    assert header is not None
    signature = etree.SubElement(header, _ds("Signature"), Id="sig", nsmap={"ds": DS})
    info = etree.SubElement(signature, _ds("SignedInfo"))
    etree.SubElement(info, _ds("CanonicalizationMethod"), Algorithm=exclusive)
    etree.SubElement(
        info, _ds("SignatureMethod"), Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    )
    for uri, transforms in (("", (ENVELOPED, exclusive)), (f"#{signed}", (exclusive,))):
        reference = etree.SubElement(info, _ds("Reference"), URI=uri)
        holder = etree.SubElement(reference, _ds("Transforms"))
        for transform in transforms:
            etree.SubElement(holder, _ds("Transform"), Algorithm=transform)
        etree.SubElement(reference, _ds("DigestMethod"), Algorithm=sha256)
        etree.SubElement(reference, _ds("DigestValue"))
    etree.SubElement(signature, _ds("SignatureValue"))
    etree.SubElement(etree.SubElement(signature, _ds("KeyInfo")), _ds("X509Data"))
    thing = etree.SubElement(signature, _ds("Object"), Id="props")
    properties = etree.SubElement(thing, _ds("SignatureProperties"))
    property_ = etree.SubElement(properties, _ds("SignatureProperty"), Target="#sig", Id="prop")
    moment = etree.SubElement(property_, "{urn:example:props}SigningTime")
    moment.text = signing_time.strftime("%Y-%m-%dT%H:%M:%SZ")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _xmlsec1_signed(template: bytes, identity: Identity, folder: Path) -> bytes:
    assert XMLSEC1 is not None
    key, _ = identity.write(folder, "signer")
    certificates = []
    for number, pem in enumerate(identity.pem_chain()[:-1]):  # the root is the verifier's
        certificates.append(folder / f"certificate-{number}.pem")
        certificates[-1].write_text(pem)
    (folder / "template.xml").write_bytes(template)
    subprocess.run(  # our own arguments
        [
            XMLSEC1,
            "--sign",
            "--privkey-pem",
            ",".join(str(path) for path in [key, *certificates]),
            "--id-attr:Id",
            f"{DS}:SignatureProperty",
            "--output",
            str(folder / "signed.xml"),
            str(folder / "template.xml"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return (folder / "signed.xml").read_bytes()


@pytest.mark.skipif(XMLSEC1 is None, reason="Debian's xmlsec1 signs the templates")
@pytest.mark.parametrize(
    ("days_ago", "expect"), [(100, SignatureStatus.VALID), (10, SignatureStatus.INVALID)]
)
def test_a_certificate_is_judged_at_the_signing_time_its_signature_states(
    days_ago: int, expect: SignatureStatus, pki: Pki, checker: Checker, tmp_path: Path
) -> None:
    """The expired certificate was valid 100 days ago and expired 35 days ago: a document it
    signed then is still validly signed; one it claims to have signed 10 days ago is not."""
    moment = NOW - timedelta(days=days_ago)
    signed = _xmlsec1_signed(_template(document(), moment), pki.expired, tmp_path)
    result = check(checker, signed)
    assert result.status is expect, result.summary()
    if expect is SignatureStatus.VALID:
        assert "its certificate has expired since the signing time it states" in result.notes
        # The agency's system sees it too, not only the audit log (found in review).
        headers = result.headers()
        assert "expired since" in headers["X-LGSP-Signature-Notes"]
        assert headers["X-LGSP-Signature-Time-Source"] == "stated"
    assert result.time_source == "signature"
    assert result.signing_time == moment.replace(microsecond=0)
    assert XMLSEC1 is not None
    xmlsec1 = subprocess.run(  # our own arguments
        [
            XMLSEC1,
            "--verify",
            "--trusted-pem",
            str(pki.anchors_file(tmp_path)),
            "--enabled-reference-uris",
            "empty,same-doc",
            "--enabled-key-data",
            "x509",
            "--verification-gmt-time",
            moment.strftime("%Y-%m-%d %H:%M:%S"),
            str(tmp_path / "signed.xml"),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (xmlsec1.returncode == 0) is (expect is SignatureStatus.VALID), xmlsec1.stderr


def test_a_utf16_envelope_is_parsed_not_taken_for_unsigned(pki: Pki, checker: Checker) -> None:
    """The quick "no Signature bytes" test holds only for ASCII-compatible encodings."""
    signed = sign_edxml(document(), pki.signer)
    text = signed.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"', 1)
    result = check(checker, text.encode("utf-16"))
    assert result.status is not SignatureStatus.UNSIGNED, result.summary()


def test_the_command_gives_each_file_its_verdict(pki: Pki, tmp_path: Path) -> None:
    settings = tmp_path / "lgsp.toml"
    settings.write_text(f'[signatures]\ntrust_anchors = ["{pki.anchors_file(tmp_path)}"]\n')
    good = tmp_path / "good.edxml"
    good.write_bytes(sign_edxml(document(), pki.signer))
    altered = tmp_path / "altered.edxml"
    altered.write_bytes(_tampered(good.read_bytes()))

    def run(*files: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # our own command
            [
                sys.executable,
                "-m",
                "lgsp_adapter",
                "signature",
                *map(str, files),
                "--config",
                str(settings),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    alone = run(good)
    assert alone.returncode == 0, alone.stderr
    assert f"{good}: valid; signer 'CN=Nguyen Van An" in alone.stdout
    both = run(good, altered)
    assert both.returncode == 1
    assert f"{altered}: invalid" in both.stdout


def test_a_signing_time_out_of_range_is_a_verdict_not_a_crash(pki: Pki, checker: Checker) -> None:
    """Found in review: year 1 overflowed the summary; any failure is now ``malformed``."""
    template = _template(document(), NOW).replace(
        NOW.strftime("%Y-%m-%dT%H:%M:%SZ").encode(), b"0001-01-01T00:00:00+01:00"
    )
    if XMLSEC1 is None:
        pytest.skip("Debian's xmlsec1 signs the template")
    with tempfile.TemporaryDirectory() as folder:
        signed = _xmlsec1_signed(template, pki.signer, Path(folder))
    result = check(checker, signed)
    assert result.status is not SignatureStatus.VALID
    assert result.summary()


def test_an_unverified_signer_is_not_named_to_the_agency_system(pki: Pki, checker: Checker) -> None:
    result = check(checker, _tampered(sign_edxml(document(), pki.signer)))
    assert result.status is SignatureStatus.INVALID
    assert "X-LGSP-Signature-Signer" not in result.headers()


def test_a_namesake_of_the_issuer_does_not_hide_the_crl(pki: Pki, checker: Checker) -> None:
    """Found in review: the CRL's issuer was looked up by name among the carried certificates,
    so a namesake placed after the real CA made the CRL skipped and a revoked signer valid."""
    decoy = namesake(pki.province, pki.root)
    carrying = Identity(pki.revoked.key, pki.revoked.certificate, (*pki.revoked.chain, decoy))
    result = check(checker, sign_edxml(document(), carrying))
    assert result.status is SignatureStatus.INVALID, result.summary()
    assert "revoked" in (result.reason or "")


def test_many_carried_certificates_are_refused_before_any_path_is_built(
    pki: Pki, checker: Checker
) -> None:
    """Found in review: path building tries every order of the certificates it is given."""
    loops = tuple(namesake(pki.province, pki.province) for _ in range(7))
    carrying = Identity(pki.signer.key, pki.signer.certificate, loops)
    result = check(checker, sign_edxml(document(), carrying))
    assert result.status is SignatureStatus.MALFORMED
    assert result.reason == "it carries 8 certificates; at most 6 are read"


@pytest.mark.skipif(XMLSEC1 is None, reason="Debian's xmlsec1 signs the templates")
@pytest.mark.parametrize(
    ("who", "days_ago", "expect", "said"),
    [
        # The key was revoked two days ago, for no stated reason (a stolen key is revoked so):
        # a thief writes whatever SigningTime suits him, so no stated time escapes it.
        ("revoked", 10, SignatureStatus.INVALID, "does not put a signature before that"),
        ("revoked", 1, SignatureStatus.INVALID, "before signing"),
        # Superseded two days ago: what it signed before then is still its holder's.
        ("superseded", 10, SignatureStatus.VALID, None),
        ("superseded", 1, SignatureStatus.INVALID, "before signing"),
    ],
)
def test_a_stated_signing_time_cannot_backdate_past_a_compromise(
    who: str,
    days_ago: int,
    expect: SignatureStatus,
    said: str | None,
    pki: Pki,
    checker: Checker,
    tmp_path: Path,
) -> None:
    """Found in review: a signed SigningTime is the signer's own word, so a revoked key that
    claimed an earlier time was valid."""
    template = _template(document(), NOW - timedelta(days=days_ago))
    result = check(checker, _xmlsec1_signed(template, getattr(pki, who), tmp_path))
    assert result.status is expect, result.summary()
    if said is not None:
        assert said in (result.reason or ""), result.reason
    assert "as the signature states" in result.summary()


def _for(purposes: list[x509.ObjectIdentifier], pki: Pki) -> Identity:
    """The signer's key, certified by the province for ``purposes`` only."""
    key = pki.signer.key
    certificate = (
        x509.CertificateBuilder()
        .subject_name(pki.signer.certificate.subject)
        .issuer_name(pki.province.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
        .sign(pki.province.key, hashes.SHA256())
    )
    return Identity(key, certificate, pki.signer.chain)


@pytest.mark.parametrize(
    ("purposes", "expect"),
    [
        ([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH], SignatureStatus.INVALID),
        ([x509.oid.ExtendedKeyUsageOID.TIME_STAMPING], SignatureStatus.INVALID),
        # What Vietnamese signing certificates commonly state: client and e-mail protection.
        (
            [
                x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH,
                x509.oid.ExtendedKeyUsageOID.EMAIL_PROTECTION,
            ],
            SignatureStatus.VALID,
        ),
    ],
)
def test_a_certificate_for_other_purposes_does_not_sign_documents(
    purposes: list[x509.ObjectIdentifier], expect: SignatureStatus, pki: Pki, checker: Checker
) -> None:
    result = check(checker, sign_edxml(document(), _for(purposes, pki)))
    assert result.status is expect, result.summary()
    if expect is SignatureStatus.INVALID:
        assert "not for signing" in (result.reason or "")


def test_a_block_outside_the_xmldsig_schema_is_malformed_without_a_traceback(
    pki: Pki, checker: Checker, caplog: pytest.LogCaptureFixture
) -> None:
    """Found in review: each such packet logged a traceback as if the checker had a bug."""

    def change(root: etree._Element) -> None:
        info = root.find(f".//{_ds('SignedInfo')}")
        assert info is not None
        etree.SubElement(info, _ds("Bogus"))

    with caplog.at_level("WARNING"):
        result = check(checker, _edit(sign_edxml(document(), pki.signer), change))
    assert result.status is SignatureStatus.MALFORMED
    assert (result.reason or "").startswith("its signature block does not follow the XML-DSig")
    assert not [r for r in caplog.records if r.exc_info], caplog.text


WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
XADES = "http://uri.etsi.org/01903/v1.3.2#"


def _hand_signed_with_namespaced_id(pki: Pki) -> bytes:
    """The whole envelope and XAdES SignedProperties named by ``wsu:Id``, signed by hand (no
    signer here writes a namespaced Id, but real ones do)."""
    exclusive = "http://www.w3.org/2001/10/xml-exc-c14n#"

    def c14n(element: etree._Element) -> bytes:
        return etree.tostring(element, method="c14n", exclusive=True)

    root = etree.fromstring(document())
    header = root.find(".//{*}edXMLHeader")
    assert header is not None
    signature = etree.SubElement(header, _ds("Signature"), nsmap={"ds": DS})
    info = etree.SubElement(signature, _ds("SignedInfo"))
    etree.SubElement(info, _ds("CanonicalizationMethod"), Algorithm=exclusive)
    etree.SubElement(
        info, _ds("SignatureMethod"), Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    )
    value = etree.SubElement(signature, _ds("SignatureValue"))
    data = etree.SubElement(etree.SubElement(signature, _ds("KeyInfo")), _ds("X509Data"))
    for cert in (pki.signer.certificate, *pki.signer.chain):
        text = b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        etree.SubElement(data, _ds("X509Certificate")).text = text
    holder = etree.SubElement(signature, _ds("Object"))
    properties = etree.SubElement(
        holder,
        f"{{{XADES}}}SignedProperties",
        {f"{{{WSU}}}Id": "props"},
        nsmap={"wsu": WSU, "xades": XADES},
    )
    etree.SubElement(properties, f"{{{XADES}}}SigningTime").text = NOW.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    whole = copy.deepcopy(root)
    inner = whole.find(f".//{_ds('Signature')}")
    assert inner is not None
    parent = inner.getparent()
    assert parent is not None
    parent.remove(inner)
    for uri, digested, enveloped in (("", whole, True), ("#props", properties, False)):
        reference = etree.SubElement(info, _ds("Reference"), URI=uri)
        transforms = etree.SubElement(reference, _ds("Transforms"))
        if enveloped:
            etree.SubElement(transforms, _ds("Transform"), Algorithm=ENVELOPED)
        etree.SubElement(transforms, _ds("Transform"), Algorithm=exclusive)
        etree.SubElement(
            reference, _ds("DigestMethod"), Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"
        )
        digest = hashes.Hash(hashes.SHA256())
        digest.update(c14n(digested))
        etree.SubElement(reference, _ds("DigestValue")).text = b64encode(digest.finalize()).decode()
    value.text = b64encode(
        pki.signer.key.sign(c14n(info), padding.PKCS1v15(), hashes.SHA256())
    ).decode()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def test_a_namespaced_id_is_resolved_as_signxml_resolves_it(pki: Pki, checker: Checker) -> None:
    """Found in review: only unnamespaced Ids were matched here, while signxml matches any
    namespace; a wrapper with ID="props" around the real wsu:Id properties, holding a forged
    header, was taken for the signed object and the packet called valid."""
    signed = _hand_signed_with_namespaced_id(pki)
    assert check(checker, signed).status is SignatureStatus.VALID

    def wrap(root: etree._Element) -> None:
        holder = root.find(f".//{_ds('Object')}")
        assert holder is not None
        properties = holder[0]
        wrapper = etree.SubElement(holder, root.find(".//{*}edXMLHeader").tag, ID="props")  # type: ignore[union-attr]
        wrapper.append(_forged_header(root)[0])
        wrapper.append(properties)

    result = check(checker, _edit(signed, wrap))
    assert result.status is SignatureStatus.INVALID, result.summary()
    assert "names 2 element(s)" in (result.reason or "")


def test_a_signer_no_anchor_vouches_for_is_not_named_to_the_agency(
    pki: Pki, checker: Checker
) -> None:
    """Found in review: an untrusted signature's certificate verified the value, so its
    self-made name went out in X-LGSP-Signature-Signer and the sender's receipt."""
    result = check(checker, sign_edxml(document(), pki.stranger))
    assert result.status is SignatureStatus.UNTRUSTED
    assert "X-LGSP-Signature-Signer" not in result.headers()
    assert "(no anchor vouches for it)" in result.summary()


def test_a_packets_verdict_is_made_once_for_its_attempts_and_fetches(pki: Pki) -> None:
    """Found in review: each retry and each pull fetch checked again, at a hostile PDF's
    seconds of CPU each time."""

    class Counting(Checker):
        calls = 0

        async def check(self, payload: bytes, *, now: datetime | None = None) -> SignatureResult:
            self.calls += 1
            return await super().check(payload, now=now)

    payload = sign_edxml(document(), pki.signer)
    packet = StoredPacket(
        id=uuid.uuid4(),
        kind="edoc",
        sender="000.00.00.H56",
        recipients=["000.21.00.H56"],
        document_id=None,
        content_type="application/xml",
        payload=payload,
        sha256=hashlib.sha256(payload).hexdigest(),
    )
    counting = Counting(TrustAnchors([pki.root.certificate]))
    gate = SignatureGate(counting)
    endpoint = Endpoint.model_validate({"url": "http://127.0.0.1:9/", "timeout_s": 2})

    async def three_times() -> list[str]:
        first = await gate.judge(packet, "000.21.00.H56", endpoint)
        second = await gate.judge(packet, "000.21.00.H56", endpoint)
        fetched = await gate.headers(packet)
        assert first.result is not None
        assert second.result is not None
        return [str(first.result.status), str(second.result.status), fetched["X-LGSP-Signature"]]

    assert asyncio.run(three_times()) == ["valid"] * 3
    assert counting.calls == 1

    # At once for several recipients: one check too (found in review: four ran).
    other = packet.model_copy(
        update={"id": uuid.uuid4(), "payload": payload + b" ", "sha256": "0" * 64}
    )

    async def at_once() -> set[str]:
        checked = await asyncio.gather(
            *(gate.judge(other, "000.21.00.H56", endpoint) for _ in range(4))
        )
        return {str(c.result.status) for c in checked if c.result is not None}

    assert asyncio.run(at_once()) == {"valid"}
    assert counting.calls == 2
