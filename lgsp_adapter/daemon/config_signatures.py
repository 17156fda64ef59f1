"""The signatures' settings (``[signatures]``): whom this daemon trusts to vouch for signers,
which CRLs it applies, and what it lets a signature use (``docs/signatures.md``).

Which documents an agency's system requires signed is its endpoint's ``signature_policy``;
with which key the adapter signs on an agency's behalf is the agency's ``signing``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lgsp_adapter.packets.safe_xml import XmlLimits
from lgsp_adapter.signatures import Checker, TrustAnchors
from lgsp_adapter.signatures.dsig_shape import Rules


class SignatureSettings(BaseModel):
    """How signatures on delivered packets are checked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    check: bool = Field(
        True,
        description="Check the signatures of edXML packets before delivering them. Off: no "
        "result is recorded, and an endpoint that requires signatures refuses everything.",
    )
    trust_anchors: list[Path] = Field(
        default_factory=list,
        description="PEM or DER files of the CAs whose certificates are trusted: the Government "
        "CA roots and provincial CAs. None: every signature is `untrusted`.",
    )
    crls: list[Path] = Field(
        default_factory=list,
        description="CRL files (PEM or DER) applied to the certificates their issuers signed; "
        "nothing is ever fetched.",
    )
    allow_sha1: bool = Field(
        True,
        description="Accept rsa-sha1 and sha1, as real packets use (reported as weak); false: "
        "such signatures are `invalid`.",
    )
    max_references: int = Field(
        8, ge=1, le=100, description="Most references a signature may have before it is refused."
    )

    def checker(self, limits: XmlLimits) -> Checker | None:
        """The checker these settings describe (None: checks are off); unreadable anchor
        files stop the start-up."""
        if not self.check:
            return None
        anchors = TrustAnchors.from_files(
            self.trust_anchors, crls=self.crls, allow_sha1=self.allow_sha1
        )
        rules = Rules(allow_sha1=self.allow_sha1, max_references=self.max_references)
        return Checker(anchors, rules=rules, limits=limits)
