"""Signature benchmark: what checking an edXML envelope's signature costs, per document.

Signs a 2 KB status packet and a 5 MB document (one large attachment) with a throwaway CA made
here, then times ``Checker.check`` (parse, reference and digest checks, signature value,
certificate path) against lxml's bare parse of the same bytes, the floor of any check.

    python bench/signatures.py [--seconds 3] [--json bench/results/signatures.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

from lgsp_adapter.cli.demo_packets import document
from lgsp_adapter.exchange.arrival import arrival_status
from lgsp_adapter.packets.safe_xml import XmlLimits
from lgsp_adapter.signatures import Checker, EnvelopeSigner, SignatureStatus, TrustAnchors


def _identity() -> tuple[EnvelopeSigner, x509.Certificate]:
    now = datetime.now(UTC)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench root")])
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench signer")]))
        .issuer_name(root_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    return EnvelopeSigner(key, [leaf, root]), root


def _large(size_bytes: int) -> bytes:
    root = etree.fromstring(document())
    attachment = root.find(".//{*}ContentTransferEncoded")
    assert attachment is not None
    attachment.text = b64encode(b"\x00" * (size_bytes * 3 // 4)).decode()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _rate(action: object, seconds: float) -> float:
    """Seconds per call of ``action`` (a callable), over about ``seconds``."""
    calls, started = 0, time.perf_counter()
    while True:
        action()  # type: ignore[operator]
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and calls >= 3:
            return elapsed / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    signer, root = _identity()
    limits = XmlLimits()
    checker = Checker(TrustAnchors([root]), limits=limits)
    status = arrival_status(
        document(), recipient="000.21.00.H56", recipient_name="Xa", limits=limits
    )
    assert status is not None
    figures = {}
    loop = asyncio.new_event_loop()
    for name, unsigned in (("2 KB", status), ("5 MB", _large(5_000_000))):
        signed = signer.sign(unsigned, limits)
        verdict = loop.run_until_complete(checker.check(signed))
        assert verdict.status is SignatureStatus.VALID, verdict.summary()
        check_s = _rate(
            lambda signed=signed: loop.run_until_complete(checker.check(signed)), args.seconds
        )
        parse_s = _rate(
            lambda signed=signed: etree.fromstring(signed, etree.XMLParser(huge_tree=True)),
            args.seconds,
        )
        figures[name] = {
            "bytes": len(signed),
            "check_ms": round(check_s * 1000, 3),
            "lxml_parse_ms": round(parse_s * 1000, 3),
            "ratio_to_parse": round(check_s / parse_s, 1),
        }
        print(
            f"signature check {name} ({len(signed):,} bytes): {check_s * 1000:.2f} ms a document "
            f"({1 / check_s:,.0f}/s); lxml's parse alone {parse_s * 1000:.2f} ms "
            f"({check_s / parse_s:.1f}x)"
        )
    loop.close()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
