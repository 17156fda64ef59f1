"""Every error the adapter raises, classified by what the caller must do about it.

    LgspError                 carries a stable ``code`` that the HTTP API and the audit log show
    ├── PermanentError        can never succeed as sent: reject it, dead-letter it, tell the sender
    │   └── InvalidPacket     a packet that fails parsing or validation (the codecs raise these)
    ├── TransientError        may succeed later: retry with backoff
    └── FatalError            the process cannot go on (bad configuration, unusable store)

Third-party exceptions (lxml, pydantic, aio-pika, aiohttp) are translated into these once, in the
module that owns the library, always with ``raise ... from exc``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable error codes: other software matches on them, so never rename one."""

    # XML safety and well-formedness (any XML input)
    XML_MALFORMED = "xml.malformed"
    XML_TOO_LARGE = "xml.too_large"
    XML_TOO_DEEP = "xml.too_deep"
    XML_TOO_MANY_ELEMENTS = "xml.too_many_elements"
    XML_TOO_MANY_NAMESPACES = "xml.too_many_namespaces"
    XML_DTD_FORBIDDEN = "xml.dtd_forbidden"
    XML_EXTERNAL_DTD = "xml.external_dtd"
    XML_ENTITY_DECLARATION = "xml.entity_declaration"
    XML_EXTERNAL_ENTITY = "xml.external_entity"
    XML_UNSUPPORTED_ENCODING = "xml.unsupported_encoding"
    # edXML structure
    EDXML_WRONG_ROOT = "edxml.wrong_root"
    EDXML_LEGACY_NAMESPACE = "edxml.legacy_namespace"
    EDXML_MISSING_ELEMENT = "edxml.missing_element"
    EDXML_INVALID_VALUE = "edxml.invalid_value"
    EDXML_ATTACHMENT_MISMATCH = "edxml.attachment_mismatch"
    EDXML_ATTACHMENT_ENCODING = "edxml.attachment_encoding"
    # JSON packets of the tax–transport exchange
    JSON_MALFORMED = "json.malformed"
    TAX_TRANSPORT_INVALID = "tax_transport.invalid"
    TAX_TRANSPORT_UNSUPPORTED_VERSION = "tax_transport.unsupported_version"
    # Translators of agency systems' own formats
    TRANSLATION_FAILED = "translation.failed"
    TRANSLATOR_UNKNOWN = "translation.unknown_translator"
    # Any packet
    PACKET_UNKNOWN_KIND = "packet.unknown_kind"
    PACKET_TOO_LARGE = "packet.too_large"
    PACKET_FORGED_SENDER = "packet.forged_sender"
    PACKET_UNKNOWN_RECIPIENT = "packet.unknown_recipient"
    PACKET_NOT_FOUND = "packet.not_found"
    PACKET_RECIPIENT_DISABLED = "packet.recipient_disabled"
    PACKET_KIND_NOT_ACCEPTED = "packet.kind_not_accepted"
    PACKET_IDEMPOTENCY_KEY_INVALID = "packet.idempotency_key_invalid"
    PACKET_IDEMPOTENCY_CONFLICT = "packet.idempotency_conflict"
    PACKET_IDEMPOTENCY_EXPIRED = "packet.idempotency_expired"
    PACKET_DUPLICATE_DOCUMENT = "packet.duplicate_document"
    # The pull inbox
    INBOX_BAD_REQUEST = "inbox.bad_request"
    INBOX_ALREADY_ACKNOWLEDGED = "inbox.already_acknowledged"
    # Delivery to an agency system
    DELIVERY_REFUSED = "delivery.refused"
    DELIVERY_UNAVAILABLE = "delivery.unavailable"
    SIGNATURE_REFUSED = "signature.refused"  # the recipient's signature policy refused it
    # Who is calling
    AUTH_MISSING = "auth.missing"
    AUTH_INVALID = "auth.invalid"
    AUTH_FORBIDDEN = "auth.forbidden"
    AUTH_RATE_LIMITED = "auth.rate_limited"
    HTTP_BODY_TIMEOUT = "http.body_timeout"
    HTTP_UNKNOWN_PARAMETER = "http.unknown_parameter"
    AGENCY_CODE_INVALID = "agency_code.invalid"
    # The national axis' protocol (its signed XroadVnpt- headers)
    AXIS_BAD_REQUEST = "axis.bad_request"
    AXIS_SIGNATURE_INVALID = "axis.signature_invalid"
    AXIS_FILE_HASH_MISMATCH = "axis.file_hash_mismatch"
    AXIS_TIMESTAMP_INVALID = "axis.timestamp_invalid"
    AXIS_UNKNOWN_SYSTEM = "axis.unknown_system"
    AXIS_NOT_SUPPORTED = "axis.not_supported"
    AXIS_TOKEN_INVALID = "axis.token_invalid"  # noqa: S105  # an error code, not a token
    AGENCY_LIST_INVALID = "agency_list.invalid"
    # The registry of endpoints
    REGISTRY_INVALID = "registry.invalid"
    REGISTRY_NOT_FOUND = "registry.not_found"
    REGISTRY_DUPLICATE = "registry.duplicate"
    REGISTRY_CONFLICT = "registry.conflict"
    REGISTRY_TOKEN_REUSED = "registry.token_reused"  # noqa: S105  # a code, not a secret
    ENDPOINT_UNREACHABLE = "endpoint.unreachable"
    # Dead letters, for operators
    DEAD_LETTER_BAD_REQUEST = "dead_letter.bad_request"
    DEAD_LETTER_NOT_FOUND = "dead_letter.not_found"
    DEAD_LETTER_NOT_DEAD = "dead_letter.not_dead_lettered"
    DEAD_LETTER_ELSEWHERE = "dead_letter.elsewhere"
    # The audit log
    AUDIT_BAD_QUERY = "audit.bad_query"
    AUDIT_NOT_FOUND = "audit.not_found"
    AUDIT_NO_CHECKPOINT = "audit.no_checkpoint"
    AUDIT_TAMPERED = "audit.tampered"
    AUDIT_BAD_BUNDLE = "audit.bad_bundle"
    WITNESS_INCONSISTENT = "witness.inconsistent"
    # The bus
    OUTBOX_FULL = "bus.outbox_full"
    BUS_TOPOLOGY_MISSING = "bus.topology_missing"
    # Configuration and the process
    CONFIG_INVALID = "config.invalid"
    STORE_UNAVAILABLE = "store.unavailable"
    STORE_FULL = "store.full"


class LgspError(Exception):
    """Base of all our errors; ``code`` is stable, ``message`` is for people."""

    def __init__(self, code: ErrorCode, message: str, *, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body of the HTTP API: ``{"error": {"code", "message", "details"}}``."""
        return {"error": {"code": str(self.code), "message": self.message, "details": self.details}}


class PermanentError(LgspError):
    """Can never succeed as sent: reject, dead-letter and tell the sender."""


class InvalidPacket(PermanentError):
    """A packet that fails parsing or validation; ``details`` locates the fault when known."""


class TransientError(LgspError):
    """May succeed later: retry with backoff."""


class FatalError(LgspError):
    """The process cannot go on: stop and say why."""
