"""The HTTP API: Kazoo's ``/v2/accounts/{ACCOUNT_ID}/pivot/debug`` endpoints on our store.

``GET .../pivot/debug`` lists one row per call (crossbar's ``cb_pivot.erl``), newest first, paginated;
``GET .../pivot/debug/{CALL_ID or YYYYMM-CALL_ID}`` returns every record of a call, oldest first.
Both answer in crossbar's envelope. Our additions ride on the same paths: ``failed=true`` on the
list, ``failed``/``reason`` on each row, and the translated ``callflow`` on each result record.

As crossbar does: a missing, unknown, expired or badly signed token gets 401; a valid token for
another account gets 403 ``forbidden``; an unknown call on a readable account is a 200 with no data.
Tokens come from ``PIVOT_API_TOKENS_FILE`` or are Kazoo's own JWTs (see :mod:`.auth`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy.exc as sa_exc
from aiohttp import web

from ..debug.gregorian import gregorian_to_unix, month_bounds, month_prefix
from . import envelope
from .auth import TokenBook
from .openapi import openapi_document
from .query import UNPAGINATED_LIMIT, BadParameter, encode_start_key, list_query, read_range
from .store import CallRow, Store

logger = logging.getLogger(__name__)

DEBUG_PATH = "/v2/accounts/{account_id}/pivot/debug"
DEBUG_ID = re.compile(r"(\d{4})(\d{2})-(.+)", re.DOTALL)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
KEY_SLOTS = 1_000_000 * 1000  # order-key units per second (microseconds x seq slots)
MAX_KEY = 2**63 - 1


@dataclass
class ApiState:
    store: Store
    tokens: TokenBook
    node: str
    broker_connected: Callable[[], bool] | None = None


STATE = web.AppKey("state", ApiState)
REQUEST_ID = web.RequestKey("request_id", str)


class ApiError(Exception):
    """An answer in crossbar's error envelope."""

    def __init__(self, status: int, name: str, data: dict[str, Any]) -> None:
        super().__init__(name)
        self.status = status
        self.name = name
        self.data = data


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _token(request: web.Request) -> str | None:
    token = request.headers.get("X-Auth-Token")
    if token:
        return token.strip()
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def crossbar_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure, ours or the router's, leaves in crossbar's error envelope."""
    rid = _request_id(request)
    request[REQUEST_ID] = rid
    node = request.app[STATE].node
    token = _token(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return envelope.error(exc.status, exc.name, exc.data, request_id=rid, auth_token=token, node=node)
    except BadParameter as exc:
        data = envelope.validation_data(exc.parameter, exc.code, exc.message, exc.cause)
        return envelope.error(400, "validation error", data, request_id=rid, auth_token=token, node=node)
    except web.HTTPMethodNotAllowed as exc:
        response = envelope.error(
            405, "invalid_method", {"message": "invalid method"}, request_id=rid, auth_token=token, node=node
        )
        response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods)) or "GET"
        return response
    except web.HTTPNotFound:
        return envelope.error(
            404,
            "not_found",
            {"message": "not found", "cause": request.path},
            request_id=rid,
            auth_token=token,
            node=node,
        )
    except web.HTTPException as exc:
        name = exc.reason.lower().replace(" ", "_")
        return envelope.error(
            exc.status, name, {"message": exc.reason}, request_id=rid, auth_token=token, node=node
        )
    except sa_exc.SQLAlchemyError:
        logger.exception("debug store failed while serving %s", request.path)
        return envelope.error(
            503,
            "datastore_fault",
            {"message": "datastore fatal error"},
            request_id=rid,
            auth_token=token,
            node=node,
        )
    except Exception:
        logger.exception("unexpected failure while serving %s", request.path)
        return envelope.error(
            500,
            "unspecified_fault",
            {"message": "unspecified fault"},
            request_id=rid,
            auth_token=token,
            node=node,
        )


def _authorize(request: web.Request, account_id: str) -> str:
    """The caller's token when it may read ``account_id``; else 401 (no valid token) or 403 (another's)."""
    state = request.app[STATE]
    token = _token(request)
    grant = state.tokens.accounts(token)
    if grant is None:
        message = "invalid credentials"
        if not state.tokens.configured:
            message += ": no API tokens are configured (set PIVOT_API_TOKENS_FILE or PIVOT_KAZOO_AUTH_KEYS)"
        raise ApiError(401, "invalid_credentials", {"message": message})
    if not TokenBook.allows(grant, account_id):
        raise ApiError(403, "forbidden", {"message": "forbidden", "cause": account_id})
    assert token is not None
    return token


def _row(row: CallRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "call_id": row.call_id,
        "created": row.created,
        "node": row.node,
        "iteration": row.iteration,
        "has_schema_errors": row.has_schema_errors,
        "has_json_errors": row.has_json_errors,
        "debug_id": f"{month_prefix(row.created)}-{row.call_id}",
        "failed": row.failed,
        "reason": row.reason,
    }
    if row.uri is not None:
        out["uri"] = row.uri
    if row.status_code is not None:
        out["status_code"] = row.status_code
    return out


def _record(event: dict[str, Any]) -> dict[str, Any]:
    event["id"] = event["event_id"]
    event["debug_id"] = f"{month_prefix(int(event['created']))}-{event['call_id']}"
    return event


def _key_of(gregorian_s: int, *, end: bool = False) -> int:
    """The order key at the start (or end) of a Gregorian second, clamped to a 64-bit column."""
    key = (gregorian_to_unix(gregorian_s) + (1 if end else 0)) * KEY_SLOTS - (1 if end else 0)
    return min(max(key, 0), MAX_KEY)


async def list_calls(request: web.Request) -> web.Response:
    account_id = request.match_info["account_id"]
    token = _authorize(request, account_id)
    query = list_query(request.query)
    state = request.app[STATE]
    limit = UNPAGINATED_LIMIT if query.page_size is None else query.page_size + 1
    rows = await state.store.list_calls(
        account_id,
        from_key=_key_of(query.range.created_from),
        to_key=_key_of(query.range.created_to, end=True),
        descending=query.descending,
        limit=limit,
        start=query.start,
        failed_only=query.failed_only,
    )
    pagination: dict[str, Any] | None = None
    if query.page_size is not None:
        page, rest = rows[: query.page_size], rows[query.page_size :]
        rows = page
        pagination = {
            "page_size": len(page),
            "start_key": query.start_key,
            "next_start_key": encode_start_key(rest[0].first_key, rest[0].call_id) if rest else None,
        }
    return envelope.success(
        [_row(r) for r in rows],
        request_id=request[REQUEST_ID],
        auth_token=token,
        node=state.node,
        pagination=pagination,
    )


async def read_call(request: web.Request) -> web.Response:
    account_id = request.match_info["account_id"]
    ident = request.match_info["debug_id"]
    token = _authorize(request, account_id)
    bounds = read_range(request.query)
    state = request.app[STATE]
    lo = bounds.created_from if bounds else None
    hi = bounds.created_to if bounds else None
    records: list[dict[str, Any]] = []
    match = DEBUG_ID.fullmatch(ident)
    if match is not None and 1 <= int(match.group(2)) <= 12 and int(match.group(1)) >= 1970:
        month_lo, month_hi = month_bounds(int(match.group(1)), int(match.group(2)))
        lo, hi = max(lo or month_lo, month_lo), min(hi if hi is not None else month_hi - 1, month_hi - 1)
        records = await state.store.call_events(account_id, match.group(3), created_from=lo, created_to=hi)
        if not records:  # a call id that merely looks like a debug id
            lo = bounds.created_from if bounds else None
            hi = bounds.created_to if bounds else None
    if not records:
        records = await state.store.call_events(account_id, ident, created_from=lo, created_to=hi)
    return envelope.success(
        [_record(e) for e in records], request_id=request[REQUEST_ID], auth_token=token, node=state.node
    )


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(openapi_document()), content_type=envelope.JSON)


HEALTH_DB_TIMEOUT_S = 2.0


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers a trivial query and the consumer's broker connection is open;
    else 503 naming the check that failed."""
    state = request.app[STATE]
    failed = None
    try:
        await asyncio.wait_for(state.store.ping(), HEALTH_DB_TIMEOUT_S)
    except Exception as exc:
        logger.warning("/healthz: the database check failed (%s: %s)", type(exc).__name__, exc)
        failed = "database"
    if failed is None and state.broker_connected is not None and not state.broker_connected():
        failed = "broker"
    if failed is not None:
        body = orjson.dumps({"status": "unavailable", "failed": failed})
        return web.Response(status=503, body=body, content_type=envelope.JSON)
    return web.Response(body=b'{"status":"ok"}', content_type=envelope.JSON)


_STATIC = Path(__file__).with_name("static")
_INSPECTOR_FILES = {
    "/inspector": ("inspector.html", "text/html"),
    "/inspector.js": ("inspector.js", "text/javascript"),
    "/inspector.css": ("inspector.css", "text/css"),
}
# The page talks only to this server and runs only its own script: a response body shown in it
# can never load or run anything.
_INSPECTOR_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def inspector(request: web.Request) -> web.Response:
    """The request inspector (a static page over this API; the token is entered in the page)."""
    name, content_type = _INSPECTOR_FILES[request.path]
    return web.Response(
        body=(_STATIC / name).read_bytes(),
        content_type=content_type,
        charset="utf-8",
        headers=_INSPECTOR_HEADERS,
    )


def make_app(
    store: Store,
    tokens: TokenBook,
    *,
    node: str,
    broker_connected: Callable[[], bool] | None = None,
) -> web.Application:
    """The aiohttp application; the caller runs it (see :mod:`pivot_worker.collector.service`).

    ``broker_connected`` (the consumer's connection is open) is one of ``/healthz``'s checks."""
    app = web.Application(middlewares=[crossbar_errors])
    app[STATE] = ApiState(store=store, tokens=tokens, node=node, broker_connected=broker_connected)
    app.router.add_get(DEBUG_PATH, list_calls, allow_head=False)
    app.router.add_get(DEBUG_PATH + "/{debug_id:.+}", read_call, allow_head=False)
    app.router.add_get("/openapi.json", openapi, allow_head=False)
    app.router.add_get("/healthz", healthz, allow_head=False)
    for path in _INSPECTOR_FILES:
        app.router.add_get(path, inspector, allow_head=False)
    return app
