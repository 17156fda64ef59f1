"""What each endpoint policy lets through, verdict by verdict."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lgsp_adapter.signatures.policy import SignaturePolicy, refusal
from lgsp_adapter.signatures.result import SignatureResult, SignatureStatus, Signer

SIGNER = Signer(
    "CN=Nguyen Van An",
    "1f",
    "CN=CA Thanh Hoa",
    datetime(2025, 1, 1, tzinfo=UTC),
    datetime(2027, 1, 1, tzinfo=UTC),
)
S = SignatureStatus
CASES = [
    # (result, passes require-signed, passes require-valid)
    (SignatureResult(S.VALID, signer=SIGNER, intact=True), True, True),
    (SignatureResult(S.INVALID, "altered", SIGNER), True, False),
    # A near-empty XML-DSig block: no certificate, so nobody signed (found in review).
    (SignatureResult(S.INVALID, "its SignatureMethod x is not supported"), False, False),
    (SignatureResult(S.UNTRUSTED, "unknown CA", SIGNER, intact=True), True, False),
    (SignatureResult(S.WRONG_NAMESPACE, "QCVN namespace", SIGNER), True, False),
    # An empty <Signature/> in the QCVN namespace names nobody: no signature at all.
    (SignatureResult(S.WRONG_NAMESPACE, "QCVN namespace"), False, False),
    (SignatureResult(S.MALFORMED, "its SignatureValue is not base64"), False, False),
    (SignatureResult(S.UNSIGNED), False, False),
]


@pytest.mark.parametrize(
    ("result", "signed", "valid"), CASES, ids=lambda c: getattr(c, "status", "")
)
def test_each_policy_passes_what_it_promises(
    result: SignatureResult, signed: bool, valid: bool
) -> None:
    assert refusal(SignaturePolicy.RECORD, result) is None
    assert (refusal(SignaturePolicy.REQUIRE_SIGNED, result) is None) is signed
    assert (refusal(SignaturePolicy.REQUIRE_VALID, result) is None) is valid


def test_a_refusal_names_the_verdict_and_its_reason() -> None:
    said = refusal(SignaturePolicy.REQUIRE_SIGNED, SignatureResult(S.MALFORMED, "no SignedInfo"))
    assert said == "the recipient requires signed documents; this one is malformed (no SignedInfo)"
