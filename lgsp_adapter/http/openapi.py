"""The HTTP API's OpenAPI 3.1 description, served at ``/v1/openapi.json``.

Written by hand, next to the routes it describes: a test checks that every route the daemon
serves is described here and nothing else is, and that the document is valid OpenAPI, so the
description cannot drift from the code unnoticed. Other vendors generate clients from it, and
issue 6's fuzzing drives the API from it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lgsp_adapter import __version__
from lgsp_adapter.audit.entry import AuditEvent
from lgsp_adapter.exchange import dead_letters
from lgsp_adapter.packets import tax_transport
from lgsp_adapter.registry.agencies import ServedAgency
from lgsp_adapter.registry.service import TOKEN_LABEL, TOKEN_SHAPE
from lgsp_adapter.store import DeadLetter

_ERROR = {"$ref": "#/components/responses/Error"}
_ID = {
    "name": "packet_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _json(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }


def _op(summary: str, tag: str, responses: dict[str, Any], **more: Any) -> dict[str, Any]:
    codes = {"400": _ERROR, "401": _ERROR, "403": _ERROR, **responses}
    return {
        "summary": summary,
        "tags": [tag],
        "security": [{"bearer": []}],
        "responses": codes,
        **more,
    }


def _schema(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body_of(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"required": True, "content": {media: {"schema": schema}}}


_WHOLE = 10**18 - 1  # an index or a size: at most 18 digits (web.whole_number)
_AGENCY_CODE = {"type": "string", "pattern": r"^[0-9]{3}\.[0-9]{2}\.[0-9]{2}\.[A-Z][0-9]{2}$"}
_CODE = {
    "name": "code",
    "in": "path",
    "required": True,
    "description": "The agency's code (000.00.00.X00).",
    "schema": _AGENCY_CODE,
}
_RECIPIENT = {
    "name": "recipient",
    "in": "path",
    "required": True,
    "description": "The agency the delivery was for.",
    "schema": _AGENCY_CODE,
}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'The revision the change is based on, e.g. "3" (the ETag read).',
    "schema": {"type": "string", "pattern": '^(W/)?"?[0-9]{1,18}"?$'},
}


def _registry_schemas() -> dict[str, Any]:
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
    dead_letter = DeadLetter.model_json_schema(mode="serialization")
    dead_letter["properties"].pop("cursor")
    dead_letter["required"].remove("cursor")
    schemas["DeadLetter"] = dead_letter
    schemas["DeadLetterList"] = {
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
    schemas["TestReport"] = {
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
    return schemas


def _packet_schemas() -> dict[str, Any]:
    """The tax–transport packet's schema (docs/schema), its definitions among the components."""
    schema = tax_transport.json_schema(ref_template="#/components/schemas/{model}")
    definitions: dict[str, Any] = schema.pop("$defs")
    return {
        **definitions,
        "TaxTransport": {"oneOf": schema["oneOf"], "discriminator": schema["discriminator"]},
    }


_FILTERS = [
    _query(
        "since",
        "From this time (ISO 8601 with zone), inclusive.",
        {"type": "string", "format": "date-time"},
    ),
    _query("until", "Up to this time, exclusive.", {"type": "string", "format": "date-time"}),
    _query("agency", "Sender or recipient agency code (000.00.00.X00).", _AGENCY_CODE),
    _query(
        "kind",
        "Packet kind: edoc, status, tax-transport/…",
        {"type": "string", "minLength": 1, "maxLength": 200},
    ),
    _query(
        "document_id", "The document's id.", {"type": "string", "minLength": 1, "maxLength": 500}
    ),
    _query(
        "outcome",
        "ok, an error code, a status.",
        {"type": "string", "minLength": 1, "maxLength": 200},
    ),
    _query("event", "What happened.", {"type": "string", "enum": [e.value for e in AuditEvent]}),
    _query("packet_id", "One packet's entries.", {"type": "string", "format": "uuid"}),
]
_PAGE = [
    _query(
        "after",
        "Entries after this index (the next page).",
        {"type": "integer", "minimum": -1, "maximum": _WHOLE},
    ),
    _query(
        "before", "Entries before this index.", {"type": "integer", "minimum": 0, "maximum": _WHOLE}
    ),
    _query("limit", "Entries per page.", {"type": "integer", "minimum": 1, "maximum": 1000}),
    _query("newest_first", "Latest entries first.", {"type": "boolean"}),
]

PATHS: dict[str, dict[str, Any]] = {
    "/v1/packets": {
        "post": _op(
            "Submit a packet (edXML as XML, tax–transport as JSON); 202 once it is durable",
            "packets",
            {
                "202": _json("Accepted: the packet id, its deliveries and any warnings"),
                "413": _ERROR,
                "422": _ERROR,
            },
            requestBody={
                "required": True,
                "content": {
                    "application/xml": {"schema": {"type": "string", "format": "binary"}},
                    "application/json": {"schema": {"$ref": "#/components/schemas/TaxTransport"}},
                },
            },
        )
    },
    "/v1/packets/{packet_id}": {
        "get": _op(
            "A packet's deliveries and history, for its sender or recipients",
            "packets",
            {"200": _json("The packet's state"), "404": _ERROR},
            parameters=[_ID],
        )
    },
    "/v1/inbox": {
        "get": _op(
            "Packets waiting in the pull inboxes of the caller's agencies, oldest first",
            "inbox",
            {"200": _json("A page of waiting packets and the cursor to the next")},
            parameters=[
                _query("kind", "Only packets of this kind."),
                _query(
                    "after",
                    "The cursor of the previous page.",
                    {"type": "integer", "minimum": 0, "maximum": _WHOLE},
                ),
                _query(
                    "limit", "Packets per page.", {"type": "integer", "minimum": 1, "maximum": 500}
                ),
            ],
        )
    },
    "/v1/inbox/{packet_id}": {
        "get": _op(
            "One waiting packet, byte for byte as submitted",
            "inbox",
            {
                "200": {"description": "The packet, with X-LGSP-* headers"},
                "404": _ERROR,
            },
            parameters=[_ID, _query("recipient", "Which of the caller's agencies, if several.")],
        )
    },
    "/v1/inbox/{packet_id}/ack": {
        "post": _op(
            "Acknowledge a fetched packet: done (delivered) or fail (refused)",
            "inbox",
            {"200": _json("The delivery's new state"), "404": _ERROR, "409": _ERROR},
            parameters=[_ID, _query("recipient", "Which of the caller's agencies, if several.")],
            requestBody={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["status"],
                            "properties": {
                                "status": {"enum": ["done", "fail"]},
                                "reason": {"type": "string"},
                            },
                        }
                    }
                },
            },
        )
    },
    "/v1/agencies": {
        "get": _op(
            "Who the caller can send to: codes, names, hierarchy, reachability",
            "agencies",
            {"200": _json("A page of agencies and the cursor to the next")},
            parameters=[
                _query("under", "Only the agencies directly under this code.", _AGENCY_CODE),
                _query("q", "Name or code containing this (any case)."),
                _query("after", "The last code of the previous page.", _AGENCY_CODE),
                _query(
                    "limit",
                    "Agencies per page.",
                    {"type": "integer", "minimum": 1, "maximum": 1000},
                ),
            ],
        )
    },
    "/v1/audit/entries": {
        "get": _op(
            "Search the audit log (auditors)",
            "audit",
            {"200": _json("A page of entries and the cursor to the next")},
            parameters=[*_FILTERS, *_PAGE],
        )
    },
    "/v1/audit/packets/{packet_id}": {
        "get": _op(
            "Every audit entry about one packet (auditors)",
            "audit",
            {"200": _json("The packet's entries"), "404": _ERROR},
            parameters=[_ID],
        )
    },
    "/v1/audit/export": {
        "get": _op(
            "Every matching entry as CSV or JSON Lines, streamed (auditors)",
            "audit",
            {
                "200": {
                    "description": "The export",
                    "content": {
                        "text/csv": {"schema": {"type": "string"}},
                        "application/jsonl": {"schema": {"type": "string"}},
                    },
                }
            },
            parameters=[_query("format", "csv or jsonl.", {"enum": ["csv", "jsonl"]}), *_FILTERS],
        )
    },
    "/v1/audit/checkpoints": {
        "get": _op(
            "Every signed checkpoint (auditors)", "audit", {"200": _json("The checkpoints")}
        ),
        "post": _op(
            "Sign a checkpoint now (auditors)",
            "audit",
            {
                "200": _json("The latest, the log has not grown"),
                "201": _json("A new one"),
                "404": _ERROR,
            },
        ),
    },
    "/v1/audit/checkpoints/latest": {
        "get": _op(
            "The latest checkpoint as a signed note (auditors)",
            "audit",
            {
                "200": {
                    "description": "C2SP signed note",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "409": _ERROR,
            },
        )
    },
    "/v1/audit/public-key": {
        "get": _op("The log's verifier key (auditors)", "audit", {"200": _json("Key forms")})
    },
    "/v1/audit/proofs/inclusion": {
        "get": _op(
            "An inclusion proof (auditors; docs/audit.md)",
            "audit",
            {"200": _json("The proof"), "404": _ERROR, "409": _ERROR},
            parameters=[
                {
                    "name": "index",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0, "maximum": _WHOLE},
                },
                _query(
                    "size",
                    "A checkpoint's size (default: the latest).",
                    {"type": "integer", "minimum": 1, "maximum": _WHOLE},
                ),
            ],
        )
    },
    "/v1/audit/proofs/consistency": {
        "get": _op(
            "A consistency proof between two checkpoints (auditors; docs/audit.md)",
            "audit",
            {"200": _json("The proof"), "404": _ERROR, "409": _ERROR},
            parameters=[
                {
                    "name": "old",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": _WHOLE},
                },
                _query(
                    "new",
                    "The newer checkpoint's size (default: the latest).",
                    {"type": "integer", "minimum": 1, "maximum": _WHOLE},
                ),
            ],
        )
    },
    "/v1/audit/bundle": {
        "get": _op(
            "An evidence bundle of a packet or a range, checkable offline (auditors)",
            "audit",
            {"200": _json("The bundle"), "404": _ERROR, "409": _ERROR},
            parameters=_FILTERS,
        )
    },
    "/v1/audit/verify": {
        "get": _op(
            "The whole log verified (auditors; kept 30 s)",
            "audit",
            {"200": _json("The verification")},
        )
    },
    "/v1/endpoints": {
        "get": _op(
            "The registry's endpoints by code (integrators and auditors)",
            "registry",
            {"200": _schema("A page", {"$ref": "#/components/schemas/EndpointList"})},
            parameters=[
                _query("after", "Codes after this one (the next page)."),
                _query("limit", "Per page.", {"type": "integer", "minimum": 1, "maximum": 1000}),
            ],
        ),
        "post": _op(
            "Register an agency's endpoint; its system's token is in the answer, this once "
            "(integrators)",
            "registry",
            {
                "201": _schema("Registered", {"$ref": "#/components/schemas/EndpointRecord"}),
                "409": _ERROR,
            },
            requestBody=_body_of({"$ref": "#/components/schemas/Registration"}),
        ),
    },
    "/v1/endpoints/{code}": {
        "get": _op(
            "One endpoint, with its tokens' ids; ETag is its revision",
            "registry",
            {
                "200": _schema("The record", {"$ref": "#/components/schemas/EndpointRecord"}),
                "404": _ERROR,
            },
            parameters=[_CODE],
        ),
        "patch": _op(
            "Change fields (JSON merge patch; auth is replaced whole); If-Match guards it "
            "(integrators)",
            "registry",
            {
                "200": _schema("Changed", {"$ref": "#/components/schemas/EndpointRecord"}),
                "404": _ERROR,
                "412": _ERROR,
            },
            parameters=[_CODE, _IF_MATCH],
            requestBody=_body_of({"type": "object"}, "application/merge-patch+json"),
        ),
        "delete": _op(
            "Stop serving the agency; its tokens are revoked (integrators)",
            "registry",
            {"204": {"description": "Removed"}, "404": _ERROR, "412": _ERROR},
            parameters=[_CODE, _IF_MATCH],
        ),
    },
    "/v1/endpoints/{code}/enable": {
        "post": _op(
            "Take packets again (integrators)",
            "registry",
            {"200": _json("The record"), "404": _ERROR, "412": _ERROR},
            parameters=[_CODE, _IF_MATCH],
        )
    },
    "/v1/endpoints/{code}/disable": {
        "post": _op(
            "Refuse packets to and from it; its deliveries wait on the retry schedule "
            "(integrators)",
            "registry",
            {"200": _json("The record"), "404": _ERROR, "412": _ERROR},
            parameters=[_CODE, _IF_MATCH],
        )
    },
    "/v1/endpoints/{code}/test": {
        "post": _op(
            "Does the push endpoint answer, how fast, over what TLS (integrators)",
            "registry",
            {
                "200": _schema("The report", {"$ref": "#/components/schemas/TestReport"}),
                "404": _ERROR,
            },
            parameters=[_CODE],
        )
    },
    "/v1/endpoints/{code}/tokens": {
        "post": _op(
            "Another token for the agency's system, shown this once (integrators)",
            "registry",
            {"201": _json("The token"), "404": _ERROR, "409": _ERROR},
            parameters=[_CODE],
            requestBody={
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "label": {"type": "string", "pattern": TOKEN_LABEL},
                                "token": {"type": "string", "pattern": f"^{TOKEN_SHAPE}$"},
                            },
                        }
                    }
                },
            },
        )
    },
    "/v1/endpoints/{code}/tokens/{token_id}": {
        "delete": _op(
            "Revoke a token (integrators)",
            "registry",
            {"204": {"description": "Revoked"}, "404": _ERROR},
            parameters=[
                _CODE,
                {"name": "token_id", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
        )
    },
    "/v1/dead-letters": {
        "get": _op(
            "Dead-lettered deliveries, oldest first (operators)",
            "operations",
            {"200": _schema("A page", {"$ref": "#/components/schemas/DeadLetterList"})},
            parameters=[
                _query("agency", "Only those to this agency.", _AGENCY_CODE),
                _query("sender", "Only those from this agency.", _AGENCY_CODE),
                _query("kind", "Only packets of this kind.", {"type": "string", "minLength": 1}),
                _query(
                    "after",
                    "The cursor of the previous page.",
                    {"type": "integer", "minimum": 0, "maximum": _WHOLE},
                ),
                _query(
                    "limit",
                    "Per page.",
                    {"type": "integer", "minimum": 1, "maximum": dead_letters.MAX_PAGE},
                ),
            ],
        )
    },
    "/v1/dead-letters/{packet_id}/{recipient}": {
        "get": _op(
            "One dead letter and its packet's history, metadata only (operators)",
            "operations",
            {"200": _json("The dead letter and its history"), "404": _ERROR},
            parameters=[_ID, _RECIPIENT],
        )
    },
    "/v1/dead-letters/{packet_id}/{recipient}/replay": {
        "post": _op(
            "Back to the outbox, on a fresh retry schedule; audited (operators)",
            "operations",
            {"200": _json("The delivery's new state"), "404": _ERROR, "409": _ERROR},
            parameters=[_ID, _RECIPIENT],
        )
    },
    "/v1/dead-letters/{packet_id}/{recipient}/drop": {
        "post": _op(
            "Give it up for good, saying why; audited (operators)",
            "operations",
            {"200": _json("The delivery's new state"), "404": _ERROR, "409": _ERROR},
            parameters=[_ID, _RECIPIENT],
            requestBody=_body_of(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["reason"],
                    "properties": {"reason": {"type": "string", "pattern": "[^\\s]"}},
                }
            ),
        )
    },
    "/v1/openapi.json": {
        "get": {
            "summary": "This description",
            "tags": ["meta"],
            "responses": {"200": _json("OpenAPI 3.1")},
        }
    },
}


def document() -> dict[str, Any]:
    """The OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "lgsp-adapter",
            "version": __version__,
            "description": "Agency systems submit and fetch packets; integrators change the "
            "registry of endpoints; auditors read the audit log and the registry; operators "
            "replay or drop dead letters. "
            "Errors are JSON {error: {code, message, details}} with the stable codes of "
            "docs/errors.md.",
        },
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {**_registry_schemas(), **_packet_schemas()},
            "responses": {
                "Error": {
                    "description": "A refusal with a stable code",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["error"],
                                "properties": {
                                    "error": {
                                        "type": "object",
                                        "required": ["code", "message"],
                                        "properties": {
                                            "code": {"type": "string"},
                                            "message": {"type": "string"},
                                            "details": {},
                                        },
                                    }
                                },
                            }
                        }
                    },
                }
            },
        },
    }


async def openapi(request: web.Request) -> web.Response:
    """``GET /v1/openapi.json``."""
    return web.json_response(document())


_QUERY_NAMES: dict[tuple[str, str], frozenset[str]] = {
    (path, method.upper()): frozenset(
        parameter["name"]
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    )
    for path, operations in PATHS.items()
    for method, operation in operations.items()
}


def query_names(path: str, method: str) -> frozenset[str] | None:
    """The query parameters the document gives the operation at ``path`` (a route template,
    e.g. ``/v1/endpoints/{code}``); None for routes it does not describe (the audit page)."""
    return _QUERY_NAMES.get((path, method.upper()))
