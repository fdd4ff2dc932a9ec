"""The OpenAPI 3.1 document of the debug API, served at ``GET /openapi.json``.

Written by hand next to the handlers it describes; ``tests/collector`` fuzzes the running API
from this document and checks every answer against the response schemas here.
"""

from __future__ import annotations

import functools
from typing import Any

from .. import __version__
from .query import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_RANGE_S

_GREGORIAN = {"type": "integer", "minimum": 1, "maximum": 1_000_000_000_000}


def _param(name: str, schema: dict[str, Any], description: str, where: str = "query") -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "schema": schema,
        "description": description,
    }


def _envelope(data: dict[str, Any], *, paginated: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "auth_token": {"type": "string"},
        "data": data,
        "node": {"type": "string"},
        "request_id": {"type": "string"},
        "revision": {"type": "string"},
        "status": {"const": "success"},
        "timestamp": {"type": "string"},
        "version": {"type": "string"},
    }
    if paginated:
        props |= {
            "page_size": {"type": "integer", "minimum": 0},
            "start_key": {"type": "string"},
            "next_start_key": {"type": "string"},
        }
    return {"type": "object", "required": ["data", "status", "request_id", "revision"], "properties": props}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


@functools.cache
def openapi_document() -> dict[str, Any]:
    account = _param(
        "account_id", {"type": "string", "minLength": 1}, "Kazoo account id (32 hex digits).", "path"
    )
    created_from = _param(
        "created_from",
        _GREGORIAN,
        "Start of the range, Gregorian seconds (default: created_to minus 31 days).",
    )
    created_to = _param("created_to", _GREGORIAN, "End of the range, Gregorian seconds (default: now).")
    errors = {
        "400": _error(
            "Validation error: a query parameter is unusable (wrong type, out of range, repeated, "
            "a bad start_key, a created range over the limit or ascending with descending); "
            "`data` is `{parameter: {code: {message, cause}}}`."
        ),
        "401": _error("Missing, unknown, expired or badly signed X-Auth-Token."),
        "403": _error("The token is valid but for another account (`forbidden`)."),
        "404": _error("`not_found`: the path (e.g. a malformed one) reaches no endpoint."),
        "503": _error("The debug store is unavailable."),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pivot debug API",
            "version": __version__,
            "description": (
                "Kazoo-compatible `/pivot/debug` endpoints served by pivot-collector: what was sent to the "
                "developer's server, what came back (with the real status code) and the callflow it became."
            ),
        },
        "security": [{"authToken": []}],
        "paths": {
            "/v2/accounts/{account_id}/pivot/debug": {
                "get": {
                    "operationId": "listPivotDebug",
                    "summary": "One row per call, newest first.",
                    "parameters": [
                        account,
                        created_from,
                        created_to,
                        _param(
                            "page_size",
                            {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_PAGE_SIZE,
                                "default": DEFAULT_PAGE_SIZE,
                            },
                            "Rows per page.",
                        ),
                        _param("start_key", {"type": "string"}, "The next_start_key of the previous page."),
                        _param(
                            "paginate",
                            {"type": "boolean", "default": True},
                            "false: one answer, no pagination keys.",
                        ),
                        _param("ascending", {"type": "boolean", "default": False}, "Oldest first."),
                        _param(
                            "descending", {"type": "boolean", "default": True}, "Newest first (the default)."
                        ),
                        _param(
                            "failed",
                            {"type": "boolean", "default": False},
                            "Only calls with a failed result (ours).",
                        ),
                    ],
                    "responses": {
                        "200": {
                            "description": "Calls in the range.",
                            "content": {
                                "application/json": {
                                    "schema": _envelope(
                                        {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/DebugSummary"},
                                        },
                                        paginated=True,
                                    )
                                }
                            },
                        },
                        **errors,
                    },
                }
            },
            "/v2/accounts/{account_id}/pivot/debug/{debug_id}": {
                "get": {
                    "operationId": "readPivotDebug",
                    "summary": "Every record of one call, oldest first.",
                    "parameters": [
                        account,
                        _param(
                            "debug_id",
                            {"type": "string", "minLength": 1},
                            "A call id (URL-encoded) or a debug id `YYYYMM-<call id>` (that month only).",
                            "path",
                        ),
                        created_from,
                        created_to,
                    ],
                    "responses": {
                        "200": {
                            "description": "The call's records.",
                            "content": {
                                "application/json": {
                                    "schema": _envelope(
                                        {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/DebugRecord"},
                                        },
                                        paginated=False,
                                    )
                                }
                            },
                        },
                        **errors,
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"authToken": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}},
            "schemas": {
                "DebugSummary": {
                    "type": "object",
                    "required": [
                        "call_id",
                        "created",
                        "node",
                        "iteration",
                        "has_schema_errors",
                        "has_json_errors",
                        "debug_id",
                    ],
                    "properties": {
                        "call_id": {"type": "string"},
                        "created": {
                            "type": "integer",
                            "description": "Gregorian seconds of the call's first record.",
                        },
                        "uri": {"type": "string"},
                        "status_code": {
                            "type": "string",
                            "description": "First response's real HTTP status.",
                        },
                        "node": {"type": "string"},
                        "iteration": {"type": "integer"},
                        "has_schema_errors": {"type": "boolean"},
                        "has_json_errors": {"type": "boolean"},
                        "debug_id": {"type": "string", "description": "YYYYMM-<call_id>"},
                        "failed": {"type": "boolean", "description": "A result of this call failed (ours)."},
                        "reason": {
                            "type": ["string", "null"],
                            "description": "Latest failure reason code (ours).",
                        },
                    },
                },
                "DebugRecord": {
                    "type": "object",
                    "description": (
                        "One stored debug event (amqp_schemas/debug_event.json) plus `id` and `debug_id`. "
                        "request: uri, method, req_headers, req_body; "
                        "response: resp_status_code, resp_headers, resp_body, timings; "
                        "error: reason, message, timings; "
                        "result: outcome, reason, message, callflow, warnings, json_errors/schema_errors."
                    ),
                    "required": ["id", "debug_id", "call_id", "created", "node", "iteration", "event_type"],
                    "properties": {
                        "id": {"type": "string"},
                        "debug_id": {"type": "string"},
                        "call_id": {"type": "string"},
                        "created": {"type": "integer"},
                        "node": {"type": "string"},
                        "iteration": {"type": "integer"},
                        "event_type": {"enum": ["request", "response", "error", "result"]},
                        "uri": {"type": "string"},
                        "method": {"type": "string"},
                        "role": {
                            "enum": ["primary", "fallback"],
                            "description": "Which URL an HTTP exchange went to (ours).",
                        },
                        "req_headers": {"type": "object", "additionalProperties": {"type": "string"}},
                        "req_body": {"type": "string"},
                        "resp_status_code": {"type": "string"},
                        "resp_headers": {"type": "object", "additionalProperties": {"type": "string"}},
                        "resp_body": {"type": "string"},
                        "callflow": {"type": ["object", "null"]},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["status", "error", "message", "data", "request_id"],
                    "properties": {
                        "status": {"const": "error"},
                        "error": {"type": "string", "pattern": "^[0-9]{3}$"},
                        "message": {"type": "string"},
                        "data": {"type": "object"},
                        "request_id": {"type": "string"},
                        "auth_token": {"type": "string"},
                    },
                },
            },
        },
        "x-max-range-seconds": MAX_RANGE_S,
    }
