"""The integrators' and operators' routes as OpenAPI operations: the registry of endpoints and
their tokens, and the dead letters (part of ``openapi_paths.PATHS``)."""

from __future__ import annotations

from typing import Any

from lgsp_adapter.exchange import dead_letters
from lgsp_adapter.http.openapi_parts import (
    AGENCY_CODE,
    CODE_PARAMETER,
    ERROR,
    ID_PARAMETER,
    IF_MATCH,
    RECIPIENT_PARAMETER,
    WHOLE,
    body_of,
    described,
    json_content,
    operation,
    query_parameter,
)
from lgsp_adapter.registry.axis_systems import SECRET_SHAPE, SYSTEM_ID
from lgsp_adapter.registry.checks import TOKEN_LABEL, TOKEN_SHAPE
from lgsp_adapter.registry.endpoint_auth import MASK

SYSTEM_ID_PARAMETER = {
    "name": "system_id",
    "in": "path",
    "required": True,
    "description": "The system id its software sends as systemid.",
    "schema": {"type": "string", "pattern": SYSTEM_ID},
}


def _axis_system(required: list[str]) -> dict[str, Any]:
    named = (
        {"system_id": {"type": "string", "pattern": SYSTEM_ID}} if "system_id" in required else {}
    )
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": {
            **named,
            "agencies": {
                "type": "array",
                "items": AGENCY_CODE,
                "minItems": 1,
                "maxItems": 1000,
                "uniqueItems": True,
            },
            "label": {"type": "string", "maxLength": 200},
            "secret": {
                "type": "string",
                "pattern": f"^{SECRET_SHAPE}$",
                "not": {"const": MASK},
                "description": "The secret its software holds; left out, one is made.",
            },
        },
    }


ADMIN_PATHS: dict[str, dict[str, Any]] = {
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
    "/v1/axis-systems": {
        "get": operation(
            "The agency systems that call the national axis facade (integrators and auditors)",
            "registry",
            {"200": json_content("Every system, without its secret")},
        ),
        "post": operation(
            "Register a system; a secret made for it is in the answer, this once (integrators)",
            "registry",
            {"201": json_content("Registered"), "404": ERROR, "409": ERROR},
            requestBody=body_of(_axis_system(["system_id", "agencies"])),
        ),
    },
    "/v1/axis-systems/{system_id}": {
        "put": operation(
            "Its agencies and label, and its secret when given (integrators)",
            "registry",
            {"200": json_content("Changed"), "404": ERROR},
            parameters=[SYSTEM_ID_PARAMETER],
            requestBody=body_of(_axis_system(["agencies"])),
        ),
        "delete": operation(
            "Remove it: its requests are refused from now on (integrators)",
            "registry",
            {"204": {"description": "Removed"}, "404": ERROR},
            parameters=[SYSTEM_ID_PARAMETER],
        ),
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
}
