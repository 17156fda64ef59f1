"""Every route of the HTTP API, as OpenAPI operations: one entry per path and method, in the
order of the areas (packets, inbox, agency list, audit, registry, dead letters)."""

from __future__ import annotations

from typing import Any

from lgsp_adapter.exchange import dead_letters
from lgsp_adapter.http.openapi_parts import (
    AGENCY_CODE,
    CODE_PARAMETER,
    ERROR,
    FILTERS,
    ID_PARAMETER,
    IF_MATCH,
    PAGE,
    RECIPIENT_PARAMETER,
    WHOLE,
    body_of,
    described,
    json_content,
    operation,
    query_parameter,
)
from lgsp_adapter.registry.checks import TOKEN_LABEL, TOKEN_SHAPE

PATHS: dict[str, dict[str, Any]] = {
    "/v1/packets": {
        "post": operation(
            "Submit a packet (edXML as XML, tax–transport as JSON); 202 once it is durable",
            "packets",
            {
                "202": json_content("Accepted: the packet id, its deliveries and any warnings"),
                "413": ERROR,
                "422": ERROR,
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
        "get": operation(
            "A packet's deliveries and history, for its sender or recipients",
            "packets",
            {"200": json_content("The packet's state"), "404": ERROR},
            parameters=[ID_PARAMETER],
        )
    },
    "/v1/inbox": {
        "get": operation(
            "Packets waiting in the pull inboxes of the caller's agencies, oldest first",
            "inbox",
            {"200": json_content("A page of waiting packets and the cursor to the next")},
            parameters=[
                query_parameter("kind", "Only packets of this kind."),
                query_parameter(
                    "after",
                    "The cursor of the previous page.",
                    {"type": "integer", "minimum": 0, "maximum": WHOLE},
                ),
                query_parameter(
                    "limit", "Packets per page.", {"type": "integer", "minimum": 1, "maximum": 500}
                ),
            ],
        )
    },
    "/v1/inbox/{packet_id}": {
        "get": operation(
            "One waiting packet, byte for byte as submitted",
            "inbox",
            {
                "200": {"description": "The packet, with X-LGSP-* headers"},
                "404": ERROR,
            },
            parameters=[
                ID_PARAMETER,
                query_parameter("recipient", "Which of the caller's agencies, if several."),
            ],
        )
    },
    "/v1/inbox/{packet_id}/ack": {
        "post": operation(
            "Acknowledge a fetched packet: done (delivered) or fail (refused)",
            "inbox",
            {"200": json_content("The delivery's new state"), "404": ERROR, "409": ERROR},
            parameters=[
                ID_PARAMETER,
                query_parameter("recipient", "Which of the caller's agencies, if several."),
            ],
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
        "get": operation(
            "Who the caller can send to: codes, names, hierarchy, reachability",
            "agencies",
            {"200": json_content("A page of agencies and the cursor to the next")},
            parameters=[
                query_parameter(
                    "under", "Only the agencies directly under this code.", AGENCY_CODE
                ),
                query_parameter("q", "Name or code containing this (any case)."),
                query_parameter("after", "The last code of the previous page.", AGENCY_CODE),
                query_parameter(
                    "limit",
                    "Agencies per page.",
                    {"type": "integer", "minimum": 1, "maximum": 1000},
                ),
            ],
        )
    },
    "/v1/audit/entries": {
        "get": operation(
            "Search the audit log (auditors)",
            "audit",
            {"200": json_content("A page of entries and the cursor to the next")},
            parameters=[*FILTERS, *PAGE],
        )
    },
    "/v1/audit/packets/{packet_id}": {
        "get": operation(
            "Every audit entry about one packet (auditors)",
            "audit",
            {"200": json_content("The packet's entries"), "404": ERROR},
            parameters=[ID_PARAMETER],
        )
    },
    "/v1/audit/export": {
        "get": operation(
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
            parameters=[
                query_parameter("format", "csv or jsonl.", {"enum": ["csv", "jsonl"]}),
                *FILTERS,
            ],
        )
    },
    "/v1/audit/checkpoints": {
        "get": operation(
            "Every signed checkpoint (auditors)", "audit", {"200": json_content("The checkpoints")}
        ),
        "post": operation(
            "Sign a checkpoint now (auditors)",
            "audit",
            {
                "200": json_content("The latest, the log has not grown"),
                "201": json_content("A new one"),
                "404": ERROR,
            },
        ),
    },
    "/v1/audit/checkpoints/latest": {
        "get": operation(
            "The latest checkpoint as a signed note (auditors)",
            "audit",
            {
                "200": {
                    "description": "C2SP signed note",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "409": ERROR,
            },
        )
    },
    "/v1/audit/public-key": {
        "get": operation(
            "The log's verifier key (auditors)", "audit", {"200": json_content("Key forms")}
        )
    },
    "/v1/audit/proofs/inclusion": {
        "get": operation(
            "An inclusion proof (auditors; docs/audit.md)",
            "audit",
            {"200": json_content("The proof"), "404": ERROR, "409": ERROR},
            parameters=[
                {
                    "name": "index",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0, "maximum": WHOLE},
                },
                query_parameter(
                    "size",
                    "A checkpoint's size (default: the latest).",
                    {"type": "integer", "minimum": 1, "maximum": WHOLE},
                ),
            ],
        )
    },
    "/v1/audit/proofs/consistency": {
        "get": operation(
            "A consistency proof between two checkpoints (auditors; docs/audit.md)",
            "audit",
            {"200": json_content("The proof"), "404": ERROR, "409": ERROR},
            parameters=[
                {
                    "name": "old",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 1, "maximum": WHOLE},
                },
                query_parameter(
                    "new",
                    "The newer checkpoint's size (default: the latest).",
                    {"type": "integer", "minimum": 1, "maximum": WHOLE},
                ),
            ],
        )
    },
    "/v1/audit/bundle": {
        "get": operation(
            "An evidence bundle of a packet or a range, checkable offline (auditors)",
            "audit",
            {"200": json_content("The bundle"), "404": ERROR, "409": ERROR},
            parameters=FILTERS,
        )
    },
    "/v1/audit/verify": {
        "get": operation(
            "The whole log verified (auditors; kept 30 s)",
            "audit",
            {"200": json_content("The verification")},
        )
    },
    "/v1/endpoints": {
        "get": operation(
            "The registry's endpoints by code (integrators and auditors)",
            "registry",
            {"200": described("A page", {"$ref": "#/components/schemas/EndpointList"})},
            parameters=[
                query_parameter("after", "Codes after this one (the next page)."),
                query_parameter(
                    "limit", "Per page.", {"type": "integer", "minimum": 1, "maximum": 1000}
                ),
            ],
        ),
        "post": operation(
            "Register an agency's endpoint; its system's token is in the answer, this once "
            "(integrators)",
            "registry",
            {
                "201": described("Registered", {"$ref": "#/components/schemas/EndpointRecord"}),
                "409": ERROR,
            },
            requestBody=body_of({"$ref": "#/components/schemas/Registration"}),
        ),
    },
    "/v1/endpoints/{code}": {
        "get": operation(
            "One endpoint, with its tokens' ids; ETag is its revision",
            "registry",
            {
                "200": described("The record", {"$ref": "#/components/schemas/EndpointRecord"}),
                "404": ERROR,
            },
            parameters=[CODE_PARAMETER],
        ),
        "patch": operation(
            "Change fields (JSON merge patch; auth is replaced whole); If-Match guards it "
            "(integrators)",
            "registry",
            {
                "200": described("Changed", {"$ref": "#/components/schemas/EndpointRecord"}),
                "404": ERROR,
                "412": ERROR,
            },
            parameters=[CODE_PARAMETER, IF_MATCH],
            requestBody=body_of({"type": "object"}, "application/merge-patch+json"),
        ),
        "delete": operation(
            "Stop serving the agency; its tokens are revoked (integrators)",
            "registry",
            {"204": {"description": "Removed"}, "404": ERROR, "412": ERROR},
            parameters=[CODE_PARAMETER, IF_MATCH],
        ),
    },
    "/v1/endpoints/{code}/enable": {
        "post": operation(
            "Take packets again (integrators)",
            "registry",
            {"200": json_content("The record"), "404": ERROR, "412": ERROR},
            parameters=[CODE_PARAMETER, IF_MATCH],
        )
    },
    "/v1/endpoints/{code}/disable": {
        "post": operation(
            "Refuse packets to and from it; its deliveries wait on the retry schedule "
            "(integrators)",
            "registry",
            {"200": json_content("The record"), "404": ERROR, "412": ERROR},
            parameters=[CODE_PARAMETER, IF_MATCH],
        )
    },
    "/v1/endpoints/{code}/test": {
        "post": operation(
            "Does the push endpoint answer, how fast, over what TLS (integrators)",
            "registry",
            {
                "200": described("The report", {"$ref": "#/components/schemas/TestReport"}),
                "404": ERROR,
            },
            parameters=[CODE_PARAMETER],
        )
    },
    "/v1/endpoints/{code}/tokens": {
        "post": operation(
            "Another token for the agency's system, shown this once (integrators)",
            "registry",
            {"201": json_content("The token"), "404": ERROR, "409": ERROR},
            parameters=[CODE_PARAMETER],
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
        "delete": operation(
            "Revoke a token (integrators)",
            "registry",
            {"204": {"description": "Revoked"}, "404": ERROR},
            parameters=[
                CODE_PARAMETER,
                {"name": "token_id", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
        )
    },
    "/v1/dead-letters": {
        "get": operation(
            "Dead-lettered deliveries, oldest first (operators)",
            "operations",
            {"200": described("A page", {"$ref": "#/components/schemas/DeadLetterList"})},
            parameters=[
                query_parameter("agency", "Only those to this agency.", AGENCY_CODE),
                query_parameter("sender", "Only those from this agency.", AGENCY_CODE),
                query_parameter(
                    "kind", "Only packets of this kind.", {"type": "string", "minLength": 1}
                ),
                query_parameter(
                    "after",
                    "The cursor of the previous page.",
                    {"type": "integer", "minimum": 0, "maximum": WHOLE},
                ),
                query_parameter(
                    "limit",
                    "Per page.",
                    {"type": "integer", "minimum": 1, "maximum": dead_letters.MAX_PAGE},
                ),
            ],
        )
    },
    "/v1/dead-letters/{packet_id}/{recipient}": {
        "get": operation(
            "One dead letter and its packet's history, metadata only (operators)",
            "operations",
            {"200": json_content("The dead letter and its history"), "404": ERROR},
            parameters=[ID_PARAMETER, RECIPIENT_PARAMETER],
        )
    },
    "/v1/dead-letters/{packet_id}/{recipient}/replay": {
        "post": operation(
            "Back to the outbox, on a fresh retry schedule; audited (operators)",
            "operations",
            {"200": json_content("The delivery's new state"), "404": ERROR, "409": ERROR},
            parameters=[ID_PARAMETER, RECIPIENT_PARAMETER],
        )
    },
    "/v1/dead-letters/{packet_id}/{recipient}/drop": {
        "post": operation(
            "Give it up for good, saying why; audited (operators)",
            "operations",
            {"200": json_content("The delivery's new state"), "404": ERROR, "409": ERROR},
            parameters=[ID_PARAMETER, RECIPIENT_PARAMETER],
            requestBody=body_of(
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
            "responses": {"200": json_content("OpenAPI 3.1")},
        }
    },
}
