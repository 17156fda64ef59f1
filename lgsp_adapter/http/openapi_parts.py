"""The building blocks of the OpenAPI document: parameters, bodies and responses written once,
and the component schemas (the registry's records, the packets' answers) drawn from the models
themselves where a model exists, so that the document and the code cannot say different things.
"""

from __future__ import annotations

from typing import Any

from lgsp_adapter.audit.entry import AuditEvent
from lgsp_adapter.packets import tax_transport
from lgsp_adapter.registry.agencies import ServedAgency
from lgsp_adapter.registry.checks import TOKEN_LABEL, TOKEN_SHAPE
from lgsp_adapter.store import DeadLetter

ERROR = {"$ref": "#/components/responses/Error"}
ID_PARAMETER = {
    "name": "packet_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


def query_parameter(
    name: str, description: str, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def json_content(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }


def operation(summary: str, tag: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    codes = {"400": ERROR, "401": ERROR, "403": ERROR, **responses}
    return {
        "summary": summary,
        "tags": [tag],
        "security": [{"bearer": []}],
        "responses": codes,
        **more,
    }


def described(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def body_of(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"required": True, "content": {media: {"schema": schema}}}


WHOLE = 10**18 - 1  # an index or a size: at most 18 digits (web.whole_number)
AGENCY_CODE = {"type": "string", "pattern": r"^[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}$"}
CODE_PARAMETER = {
    "name": "code",
    "in": "path",
    "required": True,
    "description": "The agency's code (000.00.00.X00).",
    "schema": AGENCY_CODE,
}
RECIPIENT_PARAMETER = {
    "name": "recipient",
    "in": "path",
    "required": True,
    "description": "The agency the delivery was for.",
    "schema": AGENCY_CODE,
}
IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'The revision the change is based on, e.g. "3" (the ETag read).',
    "schema": {"type": "string", "pattern": '^(W/)?"?[0-9]{1,18}"?$'},
}


# What `POST /v1/endpoints/{code}/test` answers.
TEST_REPORT: dict[str, Any] = {
    "type": "object",
    "required": ["code", "url", "ok", "verdict", "latency_ms"],
    "properties": {
        "code": {"type": "string"},
        "url": {"type": "string"},
        "method": {"type": "string"},
        "ok": {"type": "boolean"},
        "verdict": {
            "type": "string",
            "enum": [
                "answers",
                "credentials_refused",
                "not_found",
                "redirects",
                "server_error",
                "unreachable",
                "tls_failed",
                "misconfigured",
            ],
        },
        "status": {"type": ["integer", "null"]},
        "latency_ms": {"type": "number"},
        "tls": {"type": ["object", "null"]},
        "error": {"type": "object"},
    },
}


def dead_letter_schemas() -> dict[str, Any]:
    """A dead letter as the API shows it (without the store's cursor), and a page of them."""
    dead_letter = DeadLetter.model_json_schema(mode="serialization")
    dead_letter["properties"].pop("cursor")
    dead_letter["required"].remove("cursor")
    dead_letter_list = {
        "type": "object",
        "required": ["dead_letters", "next"],
        "properties": {
            "dead_letters": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/DeadLetter"},
            },
            "next": {
                "anyOf": [
                    {"type": "null"},
                    {"type": "object", "properties": {"after": {"type": "integer"}}},
                ]
            },
        },
    }
    return {"DeadLetter": dead_letter, "DeadLetterList": dead_letter_list}


def registry_schemas() -> dict[str, Any]:
    """The endpoint record's schema, from the model the registry validates with."""
    ref = "#/components/schemas/{model}"
    agency = ServedAgency.model_json_schema(ref_template=ref, mode="validation")
    schemas: dict[str, Any] = agency.pop("$defs", {})
    # One object rather than allOf: the record admits no other fields, so an allOf with the
    # token's fields beside it would admit no registration at all.
    schemas["Registration"] = {
        **agency,
        "title": "Registration",
        "properties": {
            **agency["properties"],
            "token": {
                "type": "string",
                "pattern": f"^{TOKEN_SHAPE}$",
                "description": "The system's own token (default: one is made).",
            },
            "issue_token": {"type": "boolean", "default": True},
            "token_label": {"type": "string", "pattern": TOKEN_LABEL},
        },
    }
    # Not "Endpoint": the record's own model has an Endpoint (where and how to deliver).
    schemas["EndpointRecord"] = {
        "type": "object",
        "description": "A record as shown: secrets as **********, and the registry's bookkeeping.",
        "required": ["code", "name", "endpoint", "revision", "source"],
        "properties": {
            **{name: {} for name in agency["properties"]},
            "revision": {"type": "integer"},
            "source": {"type": "string", "enum": ["settings", "registry"]},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "updated_by": {"type": "string"},
            "token": {"type": "string", "description": "Only in the answer to a registration."},
            "tokens": {"type": "array", "items": {"type": "object"}},
        },
    }
    schemas["EndpointList"] = {
        "type": "object",
        "required": ["endpoints"],
        "properties": {
            "endpoints": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/EndpointRecord"},
            },
            "next": {"type": "string"},
        },
    }
    schemas.update(dead_letter_schemas())
    schemas["TestReport"] = TEST_REPORT
    return schemas


def packet_schemas() -> dict[str, Any]:
    """The tax–transport packet's schema (docs/schema), its definitions among the components."""
    schema = tax_transport.json_schema(ref_template="#/components/schemas/{model}")
    definitions: dict[str, Any] = schema.pop("$defs")
    return {
        **definitions,
        "TaxTransport": {"oneOf": schema["oneOf"], "discriminator": schema["discriminator"]},
    }


FILTERS = [
    query_parameter(
        "since",
        "From this time (ISO 8601 with zone), inclusive.",
        {"type": "string", "format": "date-time"},
    ),
    query_parameter(
        "until", "Up to this time, exclusive.", {"type": "string", "format": "date-time"}
    ),
    query_parameter("agency", "Sender or recipient agency code (000.00.00.X00).", AGENCY_CODE),
    query_parameter(
        "kind",
        "Packet kind: edoc, status, tax-transport/…",
        {"type": "string", "minLength": 1, "maxLength": 200},
    ),
    query_parameter(
        "document_id", "The document's id.", {"type": "string", "minLength": 1, "maxLength": 500}
    ),
    query_parameter(
        "outcome",
        "ok, an error code, a status.",
        {"type": "string", "minLength": 1, "maxLength": 200},
    ),
    query_parameter(
        "event", "What happened.", {"type": "string", "enum": [e.value for e in AuditEvent]}
    ),
    query_parameter("packet_id", "One packet's entries.", {"type": "string", "format": "uuid"}),
]
PAGE = [
    query_parameter(
        "after",
        "Entries after this index (the next page).",
        {"type": "integer", "minimum": -1, "maximum": WHOLE},
    ),
    query_parameter(
        "before", "Entries before this index.", {"type": "integer", "minimum": 0, "maximum": WHOLE}
    ),
    query_parameter(
        "limit", "Entries per page.", {"type": "integer", "minimum": 1, "maximum": 1000}
    ),
    query_parameter("newest_first", "Latest entries first.", {"type": "boolean"}),
]
