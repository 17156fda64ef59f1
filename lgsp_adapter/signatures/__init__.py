"""Digital signatures: what agencies sign, checked; what the adapter writes, signed.

A layer of its own, just above ``packets``: it reads packets (XML-DSig over edXML, signed PDF
attachments) and knows nothing of the bus, the store or the audit log, which carry its results
as text (``SignatureResult.summary``). The exchange asks ``Checker.check`` before a delivery and
applies the endpoint's ``SignaturePolicy``; ``EnvelopeSigner`` signs the status packets the
adapter writes on an agency's behalf. What each result means: ``docs/signatures.md``. May
import ``packets`` and ``errors`` only.
"""

from lgsp_adapter.signatures.checker import Checker
from lgsp_adapter.signatures.policy import SignaturePolicy, refusal
from lgsp_adapter.signatures.result import SignatureResult, SignatureStatus, Signer
from lgsp_adapter.signatures.signer import EnvelopeSigner
from lgsp_adapter.signatures.trust import TrustAnchors

__all__ = [
    "Checker",
    "EnvelopeSigner",
    "SignaturePolicy",
    "SignatureResult",
    "SignatureStatus",
    "Signer",
    "TrustAnchors",
    "refusal",
]
