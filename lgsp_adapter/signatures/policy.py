"""What a receiving endpoint demands of the signatures on what it gets.

``record`` (the default) delivers everything and says what was found; ``require-signed``
refuses a document that carries nothing a person could call a signature (none at all, an
unreadable one, or a QCVN-namespace block without a readable certificate: an empty
``<Signature/>`` is not a signature); ``require-valid`` refuses anything whose envelope
signature is not valid. A refusal goes back to the sender as a status 02 naming the
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
    if policy is SignaturePolicy.REQUIRE_SIGNED and not _signed(result):
        why = f" ({result.reason})" if result.reason else ""
        return f"the recipient requires signed documents; this one is {result.status}{why}"
    if policy is SignaturePolicy.REQUIRE_VALID and result.status is not SignatureStatus.VALID:
        why = f": {result.reason}" if result.reason else ""
        return f"the recipient requires a valid signature; this one is {result.status}{why}"
    return None


def _signed(result: SignatureResult) -> bool:
    """Whether a signature is there, good or bad: a readable block (XML-DSig's, or the QCVN
    namespace's of real packets) that names its signer by a certificate it carries."""
    if result.status in (SignatureStatus.UNSIGNED, SignatureStatus.MALFORMED):
        return False
    return result.signer is not None  # a block with no readable certificate signs nothing
