"""What a receiving endpoint demands of the signatures on what it gets.

``record`` (the default) delivers everything and says what was found; ``require-signed``
refuses a document that carries no signature at all; ``require-valid`` refuses anything whose
envelope signature is not valid. A refusal goes back to the sender as a status 02 naming the
reason, and into the audit log; nothing is delivered.
"""

from __future__ import annotations

from enum import StrEnum

from lgsp_adapter.signatures.result import SignatureResult, SignatureStatus


class SignaturePolicy(StrEnum):
    """Per endpoint: what signatures its agency's system requires."""

    RECORD = "record"
    REQUIRE_SIGNED = "require-signed"
    REQUIRE_VALID = "require-valid"


def refusal(policy: SignaturePolicy, result: SignatureResult) -> str | None:
    """Why ``policy`` refuses a packet with ``result``, or None when it is delivered."""
    if policy is SignaturePolicy.RECORD:
        return None
    if policy is SignaturePolicy.REQUIRE_SIGNED and result.status is SignatureStatus.UNSIGNED:
        return "the recipient requires signed documents; this one carries no signature"
    if policy is SignaturePolicy.REQUIRE_VALID and result.status is not SignatureStatus.VALID:
        why = f": {result.reason}" if result.reason else ""
        return f"the recipient requires a valid signature; this one is {result.status}{why}"
    return None
