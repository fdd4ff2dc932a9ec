"""Crossbar's response envelopes, so Kazoo API clients can read our answers unchanged.

Success: ``auth_token``, ``data``, ``node``, ``request_id``, ``revision``, ``status: "success"``,
``timestamp`` (ISO 8601), ``version``, plus ``page_size``/``start_key``/``next_start_key`` when
paginating. Error: the same frame with ``status: "error"``, ``error`` (the HTTP code as a string)
and ``message`` (crossbar's error name, e.g. ``bad_identifier``), ``data`` holding the details.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from typing import Any

import orjson
from aiohttp import web

from .. import __version__

JSON = "application/json"


def _frame(request_id: str, auth_token: str | None, node: str) -> dict[str, Any]:
    return {
        "auth_token": auth_token or "",
        "node": node,
        "request_id": request_id,
        "timestamp": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "version": __version__,
    }


def success(
    data: Any,
    *,
    request_id: str,
    auth_token: str | None,
    node: str,
    pagination: dict[str, Any] | None = None,
) -> web.Response:
    body = _frame(request_id, auth_token, node)
    data_json = orjson.dumps(data)
    body["revision"] = hashlib.md5(data_json, usedforsecurity=False).hexdigest()
    body["status"] = "success"
    if pagination is not None:
        body.update({k: v for k, v in pagination.items() if v is not None})
    body["data"] = data
    return web.Response(
        body=orjson.dumps(body),
        content_type=JSON,
        headers={"X-Request-ID": request_id, "ETag": f'"{body["revision"]}"'},
    )


def error(
    status: int,
    name: str,
    data: dict[str, Any],
    *,
    request_id: str,
    auth_token: str | None,
    node: str,
) -> web.Response:
    body = _frame(request_id, auth_token, node)
    body.update({"status": "error", "error": str(status), "message": name, "data": data})
    return web.Response(
        status=status, body=orjson.dumps(body), content_type=JSON, headers={"X-Request-ID": request_id}
    )


def validation_data(parameter: str, code: str, message: str, cause: object) -> dict[str, Any]:
    """Crossbar's validation-error ``data``: ``{parameter: {code: {message, cause}}}``."""
    return {parameter: {code: {"message": message, "cause": cause}}}
