"""Kazoo's AMQP names and the encodings that build routing keys from call data.

Sources: ``kz_amqp_util.erl`` (``encode/1``, ``pid://`` targets), ``kapi_call.erl`` (event keys).

Every exchange name, routing-key prefix and literal header value the worker puts on the bus lives
here, so the wire contract is in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

# Exchanges, declared exactly as Kazoo declares them (durable=false, auto_delete=false).
EXCHANGE_CALLMGR = "callmgr"  # topic: pivot_req
EXCHANGE_TARGETED = "targeted"  # direct: pivot.processing / pivot.failed to the requester
EXCHANGE_CALLEVT = "callevt"  # topic: call events, CHANNEL_PIVOT

PIVOT_REQ_BINDING = "pivot.req.*"
PIVOT_REQ_PREFIX = "pivot.req."

# Values Kazoo's own publishers use; the callflow side does not check them, but operators grep for them.
APP_NAME_TRANSLATOR = "translator"
APP_NAME_PIVOT = "pivot"
APP_VERSION = "4.0.0"

EVENT_CATEGORY_PIVOT = "pivot"
EVENT_NAME_PROCESSING = "processing"
EVENT_NAME_FAILED = "failed"
EVENT_CATEGORY_CALL_EVENT = "call_event"
EVENT_NAME_CHANNEL_PIVOT = "CHANNEL_PIVOT"

HEADER_DELIVER_TO_PID = "Deliver-To-PID"
HEADER_CALL_ID = "call-id"
HEADER_DEAD_REASON = "x-pivot-reason"
HEADER_DEAD_DETAIL = "x-pivot-detail"

_PID_QUEUE = re.compile(r"pid://(.*)/(.*)", re.DOTALL)

MAX_ROUTING_KEY_BYTES = 255
"""AMQP 0-9-1 carries a routing key as a ``shortstr``: one length byte, so at most 255 bytes."""


def encode_key_part(value: str) -> str:
    """Encode one variable routing-key part as Kazoo's ``kz_amqp_util:encode/1`` does.

    ``""``, ``"*"`` and ``"#"`` pass unchanged; otherwise each UTF-8 byte is kept when it is
    ``[A-Za-z0-9-~_]``, a space becomes ``+``, and any other byte becomes ``%XX`` (upper-case hex),
    so ``.`` becomes ``%2E`` and the part can never add a level to a topic key.
    """
    if value in ("", "*", "#"):
        return value
    # urllib's quote keeps exactly [A-Za-z0-9_.~-] and writes upper-case %XX; Kazoo also escapes
    # "." and writes a space as "+" (a literal "%" is always quoted, so "%20" can only be a space).
    return quote(value, safe="").replace(".", "%2E").replace("%20", "+")


def routing_key_bytes(key: str) -> int | None:
    """The UTF-8 length of ``key`` on the wire, or ``None`` when it cannot be encoded at all."""
    try:
        return len(key.encode())
    except UnicodeEncodeError:  # a lone surrogate
        return None


def routing_key_fits(key: str) -> bool:
    """Whether ``key`` can be sent as an AMQP routing key (at most 255 bytes of UTF-8).

    A longer key makes the client refuse the publish, after whatever was published before it.
    """
    size = routing_key_bytes(key)
    return size is not None and size <= MAX_ROUTING_KEY_BYTES


def pivot_req_routing_key(from_realm: str) -> str:
    return PIVOT_REQ_PREFIX + encode_key_part(from_realm)


def call_event_routing_key(event_name: str, call_id: str) -> str:
    """``call.<EventName>.<encoded call id>``; the event name is not encoded (docs/kazoo-contract.md §1.3)."""
    return f"call.{event_name}.{encode_key_part(call_id)}"


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """Where a targeted reply goes: routing key on ``targeted`` and, for ``pid://`` queues, the PID header."""

    routing_key: str
    deliver_to_pid: str | None = None

    def headers(self) -> dict[str, str]:
        return {HEADER_DELIVER_TO_PID: self.deliver_to_pid} if self.deliver_to_pid is not None else {}


def reply_target(controller_queue: str) -> ReplyTarget:
    """Split a Call's ``Controller-Queue`` the way Kazoo's publisher does (docs/kazoo-contract.md §1.4).

    ``pid://<0.2345.0>/callflow_route_1`` -> key ``callflow_route_1``, header ``Deliver-To-PID: <0.2345.0>``
    (greedy match, as Kazoo's regex: the queue is what follows the last ``/``). A plain name is the key.
    """
    if controller_queue.startswith("pid://"):
        match = _PID_QUEUE.fullmatch(controller_queue)
        if match is not None:
            return ReplyTarget(routing_key=match.group(2), deliver_to_pid=match.group(1))
    return ReplyTarget(routing_key=controller_queue)


def reply_target_problem(controller_queue: str) -> str | None:
    """Why no targeted reply can be sent to ``controller_queue``, or ``None`` when one can.

    After the ``pid://<pid>/<queue>`` split the queue is the routing key: it must be non-empty and
    fit 255 bytes, and the pid (sent as ``Deliver-To-PID``) must be non-empty text.
    """
    target = reply_target(controller_queue)
    key = target.routing_key
    if not key:
        return f"Controller-Queue {controller_queue[:80]!r} names no queue to reply to"
    if not routing_key_fits(key):
        size = routing_key_bytes(key)
        shown = f"{size} bytes" if size is not None else "text that is not valid UTF-8"
        return (
            f"Controller-Queue's reply routing key is {shown} (starts {key[:40]!r}); "
            f"AMQP routing keys hold at most {MAX_ROUTING_KEY_BYTES} bytes"
        )
    pid = target.deliver_to_pid
    if pid is not None and (not pid or routing_key_bytes(pid) is None):
        return (
            f"Controller-Queue {controller_queue[:80]!r} has an unusable {HEADER_DELIVER_TO_PID} {pid[:40]!r}"
        )
    return None
