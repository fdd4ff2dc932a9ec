"""What a TwiML call carries from one request to the next, sealed into the callback URL.

A verb that calls back (Gather, Record, Dial action, Redirect) becomes a nested ``pivot`` node.
Whatever the next request needs that Kazoo does not keep for us (the verbs after a Gather that
got no input, ``<Set>`` variables, the iteration count, which DTMF collection holds the digits,
the recording's URL, the Dial outcome of a failure branch) is written into one reserved query
parameter, ``_pivot_k``, of that node's ``voice_url``. The token is::

    base64url( version | HMAC-SHA256(key, domain | version | body)[:16] | body )

with ``body`` the JSON payload, zlib-compressed (version 2) once it is large enough to gain from
it, raw otherwise (version 1). Any worker holding the shared key (``PIVOT_CONTINUATION_KEY``)
can verify and read it, so the next request may land on any worker and no worker keeps call
state. The token is appended as the last query parameter, before any fragment, and removed
byte-for-byte before the developer's server is called, so the developer never sees it.

The payload names the call it belongs to; :func:`~pivot_worker.twiml.followup.plan_followup`
refuses a token presented for another call.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import PivotError, Reason
from .limits import MAX_TOKEN_CHARS, MAX_VARIABLES

TOKEN_PARAM = "_pivot_k"  # noqa: S105 - a query parameter name, not a secret
"""The reserved query parameter; a developer URL must not end with its own ``_pivot_k``."""

GATHER = "gather"
RECORD = "record"
DIAL = "dial"
REDIRECT = "redirect"
ENQUEUE = "enqueue"
RESUME = "resume"
"""Kinds of callback; ``resume`` means "no fetch: translate the carried verbs"."""
PROMPTS = "prompts"
"""A prompt hop inside a ``<Gather>`` (see :mod:`.gather`): never a fetch; the carried Gather goes
on, with or without its prompts left, depending on the keys pressed so far. Its token keeps the
iteration of the request that made it."""
AFTER_DIAL = "after_dial"
"""An answered ``<Dial>`` ended: fetch ``url`` (the Dial action) or run the carried verbs.

This token travels in the call's ``Custom-Application-Vars`` (see :mod:`.after_dial`), not in a
``voice_url``, so it names the URL and method to request itself."""

_KIND_CODES = {
    GATHER: "g",
    RECORD: "r",
    DIAL: "d",
    REDIRECT: "x",
    ENQUEUE: "q",
    RESUME: "s",
    AFTER_DIAL: "a",
    PROMPTS: "p",
}
_CODE_KINDS = {code: kind for kind, code in _KIND_CODES.items()}

_RAW = 1
_ZLIB = 2
_MAC_BYTES = 16
_DOMAIN = b"pivot-worker continuation\x00"
_COMPRESS_OVER = 400  # below this zlib costs more time than the bytes it saves
_MAX_PAYLOAD = 64 * 1024
_URLSAFE = bytes.maketrans(b"+/", b"-_")  # base64 -> base64url, as base64.urlsafe_b64encode does
_TRAILING_TOKEN = re.compile(r"[?&]" + TOKEN_PARAM + r"=([^&]*)$")


@dataclass(frozen=True, slots=True)
class Continuation:
    """State for the request a nested ``pivot`` node will trigger.

    ``iteration`` is that request's number (1-based over the whole call). ``remaining`` is TwiML
    (``<Response>…</Response>``) for the verbs to run when no fetch is needed, resolved against
    ``base_url``.
    """

    call_id: str
    iteration: int
    kind: str
    variables: dict[str, str] = field(default_factory=dict)
    collection: str = ""
    action_on_empty: bool = False
    remaining: str = ""
    base_url: str = ""
    recording_url: str = ""
    dial_status: str = ""
    url: str = ""
    method: str = ""
    request_format: str = ""
    body_format: str = ""
    """``url`` to ``body_format``: what a nested ``pivot`` node would say, for a token carried
    outside one (``after_dial``)."""


def _require_key(key: bytes) -> None:
    if not key:
        raise PivotError(
            "PIVOT_CONTINUATION_KEY is empty: TwiML callbacks cannot be signed or verified",
            reason=Reason.INTERNAL_ERROR,
        )


_TEXT_FIELDS = {
    "collection": "n",
    "remaining": "r",
    "base_url": "u",
    "recording_url": "ru",
    "dial_status": "ds",
    "url": "a",
    "method": "m",
    "request_format": "rf",
    "body_format": "bf",
}
"""The :class:`Continuation` text fields and their short names in a token (left out when empty)."""


def _payload(cont: Continuation) -> dict[str, Any]:
    text = {name: getattr(cont, name) for name in _TEXT_FIELDS}
    return payload(
        cont.call_id, cont.iteration, cont.kind, cont.variables, action_on_empty=cont.action_on_empty, **text
    )


def payload(
    call_id: str,
    iteration: int,
    kind: str,
    variables: dict[str, str],
    *,
    action_on_empty: bool = False,
    **text: str,
) -> dict[str, Any]:
    """The JSON object a token carries for these :class:`Continuation` fields (defaults left out).

    ``text`` takes the text fields by their :class:`Continuation` names (:data:`_TEXT_FIELDS`).
    """
    out: dict[str, Any] = {"c": call_id, "i": iteration, "k": _KIND_CODES[kind]}
    if variables:
        out["v"] = variables
    if action_on_empty:
        out["e"] = 1
    for name, value in text.items():
        if value:
            out[_TEXT_FIELDS[name]] = value
    return out


@functools.lru_cache(maxsize=4)
def _keyed(key: bytes) -> hmac.HMAC:
    """HMAC state after the key and the domain, so each token hashes only its own bytes."""
    return hmac.new(key, _DOMAIN, "sha256")


def _mac(key: bytes, version: int, body: bytes) -> bytes:
    """HMAC-SHA256(key, domain | version | body), truncated."""
    mac = _keyed(key).copy()
    mac.update(bytes((version,)) + body)
    return mac.digest()[:_MAC_BYTES]


def seal_continuation(cont: Continuation, key: bytes) -> str:
    """Encode and sign ``cont``; raises ``PivotError(limit_exceeded)`` if the token is too large."""
    return seal_payload(_payload(cont), key)


def seal_payload(data: dict[str, Any], key: bytes) -> str:
    """Encode and sign a :func:`payload` (the translator builds one without a ``Continuation``)."""
    return seal_json(orjson.dumps(data), key)


def seal_json(raw: bytes, key: bytes) -> str:
    """Encode and sign a :func:`payload` already serialised with ``orjson.dumps``."""
    _require_key(key)
    if len(raw) > _COMPRESS_OVER:
        version, body = _ZLIB, zlib.compress(raw, 6)
    else:
        version, body = _RAW, raw
    blob = bytes((version,)) + _mac(key, version, body) + body
    token = binascii.b2a_base64(blob, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")
    if len(token) > MAX_TOKEN_CHARS:
        raise PivotError(
            f"the state carried to the next request needs {len(token)} characters; at most "
            f"{MAX_TOKEN_CHARS} fit in a callback URL",
            reason=Reason.LIMIT_EXCEEDED,
        )
    return token


def call_prefix(call_id: str) -> bytes:
    """How a serialised :func:`payload` of ``call_id`` starts: the call id is its first field, never its last.

    ``call_prefix(c) + payload_after_call(raw, c0)`` is, byte for byte, what :func:`payload` with
    call id ``c`` and the other fields of ``raw`` serialises to.
    """
    return b'{"c":' + orjson.dumps(call_id) + b","


def payload_after_call(raw: bytes, call_id: str) -> bytes:
    """The serialised payload ``raw`` of ``call_id`` without its call id (see :func:`call_prefix`)."""
    prefix = call_prefix(call_id)
    if not raw.startswith(prefix):
        raise ValueError("not a serialised payload of this call")
    return raw[len(prefix) :]


def attach_token(url: str, token: str) -> str:
    """Append ``_pivot_k=<token>`` as the last query parameter, keeping any fragment last."""
    hash_at = url.find("#")
    head, fragment = (url, "") if hash_at == -1 else (url[:hash_at], url[hash_at:])
    separator = "&" if "?" in head else "?"
    return f"{head}{separator}{TOKEN_PARAM}={token}{fragment}"


def _invalid(why: str) -> PivotError:
    return PivotError(f"continuation token rejected: {why}", reason=Reason.INVALID_CONTINUATION)


def open_token(token: str, *, key: bytes) -> Continuation:
    """Verify and read a bare token (one kept outside a URL); ``PivotError`` as :func:`open_continuation`."""
    _require_key(key)
    return _decode(token, key)


def open_continuation(voice_uri: str, *, key: bytes) -> tuple[str, Continuation | None]:
    """Strip and verify the token of ``voice_uri``.

    Returns the URL the developer wrote (byte-for-byte) and the continuation, or
    ``(voice_uri, None)`` when the URL carries no token. A token that was altered, forged for
    another key, or does not decode raises ``PivotError(reason=invalid_continuation)``.
    """
    hash_at = voice_uri.find("#")
    head, fragment = (voice_uri, "") if hash_at == -1 else (voice_uri[:hash_at], voice_uri[hash_at:])
    match = _TRAILING_TOKEN.search(head)
    if match is None:
        return voice_uri, None
    _require_key(key)
    url = head[: match.start()] + fragment
    return url, _decode(match.group(1), key)


def _decode(token: str, key: bytes) -> Continuation:
    if len(token) > MAX_TOKEN_CHARS:
        raise _invalid("too long")
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _invalid("not base64url") from exc
    if len(blob) < 1 + _MAC_BYTES + 2:
        raise _invalid("truncated")
    version, mac, body = blob[0], blob[1 : 1 + _MAC_BYTES], blob[1 + _MAC_BYTES :]
    if version not in (_RAW, _ZLIB):
        raise _invalid(f"unknown version {version}")
    if not hmac.compare_digest(mac, _mac(key, version, body)):
        raise _invalid("signature mismatch (altered, or signed with another key)")
    if version == _ZLIB:
        try:
            inflater = zlib.decompressobj()
            body = inflater.decompress(body, _MAX_PAYLOAD)
        except zlib.error as exc:
            raise _invalid("corrupt compression") from exc
        if inflater.unconsumed_tail:
            raise _invalid("payload too large")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _invalid("payload is not JSON") from exc
    return _from_payload(data)


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise _invalid(f"field {key!r} is not a string")
    return value


def _from_payload(data: object) -> Continuation:
    if not isinstance(data, dict):
        raise _invalid("payload is not an object")
    iteration = data.get("i")
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 1:
        raise _invalid("bad iteration")
    code = data.get("k")
    kind = _CODE_KINDS.get(code) if isinstance(code, str) else None
    if kind is None:
        raise _invalid("unknown kind")
    variables = data.get("v", {})
    if (
        not isinstance(variables, dict)
        or len(variables) > MAX_VARIABLES
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in variables.items())
    ):
        raise _invalid("bad variables")
    call_id = _str(data, "c")
    if not call_id:
        raise _invalid("no call id")
    return Continuation(
        call_id=call_id,
        iteration=iteration,
        kind=kind,
        variables=variables,
        action_on_empty=bool(data.get("e", 0)),
        **{name: _str(data, short) for name, short in _TEXT_FIELDS.items()},
    )
