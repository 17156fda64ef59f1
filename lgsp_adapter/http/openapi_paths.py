"""Every route of the HTTP API, as OpenAPI operations: one entry per path and method, in the
order of the areas (packets, inbox, agency list, audit, registry, dead letters)."""

from __future__ import annotations

from typing import Any

from lgsp_adapter.http.openapi_admin_paths import ADMIN_PATHS
from lgsp_adapter.http.openapi_audit_paths import AUDIT_PATHS
from lgsp_adapter.http.openapi_parts import (
    AGENCY_CODE,
    ERROR,
    ID_PARAMETER,
    WHOLE,
    json_content,
    operation,
    query_parameter,
)

PATHS: dict[str, dict[str, Any]] = {
    "/v1/packets": {
        "post": operation(
            "Submit a packet (edXML as XML, tax–transport as JSON); 202 once it is durable",
            "packets",
            {
                "202": json_content(
                    "Accepted: the packet id, its deliveries and any warnings (a repeat under "
                    "the same Idempotency-Key: the first answer, with Idempotent-Replayed: true)"
                ),
                "409": ERROR,
                "413": ERROR,
                "422": ERROR,
            },
            parameters=[
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "Names this submission, so that a repeat (its answer lost) "
                    "is kept once and answered alike, for [http] idempotency_window_h.",
                    "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
                }
            ],
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
    **AUDIT_PATHS,
    **ADMIN_PATHS,
    "/v1/openapi.json": {
        "get": {
            "summary": "This description",
            "tags": ["meta"],
            "responses": {"200": json_content("OpenAPI 3.1")},
        }
    },
}
