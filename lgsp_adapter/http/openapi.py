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
from lgsp_adapter.http.openapi_parts import packet_schemas, registry_schemas
from lgsp_adapter.http.openapi_paths import PATHS


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
            "schemas": {**registry_schemas(), **packet_schemas()},
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
