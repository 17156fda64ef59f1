"""The auditors' routes as OpenAPI operations: entries, export, checkpoints, proofs, bundle and
verification (part of ``openapi_paths.PATHS``)."""

from __future__ import annotations

from typing import Any

from lgsp_adapter.http.openapi_parts import (
    ERROR,
    FILTERS,
    ID_PARAMETER,
    PAGE,
    WHOLE,
    json_content,
    operation,
    query_parameter,
)

AUDIT_PATHS: dict[str, dict[str, Any]] = {
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
}
