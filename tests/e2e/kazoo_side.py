"""A stand-in for Kazoo's callflow side of the pivot conversation, on a real RabbitMQ.

It does what ``cf_pivot``/``cf_exe`` do on the wire: publish a real-shaped ``pivot_req`` on
``callmgr`` with a ``pid://`` Controller-Queue and the AMQP timestamp Kazoo sets
(``kz_time:now_us()``, Gregorian microseconds), listen on its own queue bound to ``targeted`` for
``pivot.processing``/``pivot.failed``, and on ``callevt`` for the call's events (``CHANNEL_PIVOT``).
"""

from __future__ import annotations

import asyncio
import copy
import struct
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pamqp.encode
from aio_pika.abc import AbstractIncomingMessage, ExchangeType

from pivot_worker import amqp_compat
from pivot_worker.names import encode_key_part

_U64 = struct.Struct(">Q")
_original_timestamp_encoder = pamqp.encode.METHODS["timestamp"]


# Gregorian seconds at 1970-01-01T00:00:00Z (kz_time.erl's ?UNIX_EPOCH_IN_GREGORIAN), written out here
# rather than imported from the worker, whose reading of it is under test.
GREGORIAN_UNIX_EPOCH_S = 62_167_219_200


def kazoo_now_us(offset_s: float = 0.0) -> int:
    """The ``pivot_req`` AMQP timestamp Kazoo would set ``offset_s`` seconds from now (negative = ago).

    ``kz_amqp_util.erl`` stamps every message with ``kz_time:now_us()``: Gregorian microseconds,
    i.e. Unix microseconds plus 62,167,219,200 s x 10^6 (``kz_time.erl`` ``now_us/0``), ~6.4e16 today.
    """
    return int((time.time() + offset_s) * 1_000_000) + GREGORIAN_UNIX_EPOCH_S * 1_000_000


def _kazoo_timestamp(value: Any) -> bytes:
    """Encode an ``int`` timestamp raw, as Kazoo's Erlang client sends its Gregorian microseconds."""
    if isinstance(value, int):
        return _U64.pack(value)
    return _original_timestamp_encoder(value)  # type: ignore[no-any-return]


pamqp.encode.METHODS["timestamp"] = _kazoo_timestamp
amqp_compat.install()  # this side reads its own Kazoo timestamps back (e.g. in returned messages)


_EXAMPLE_CALL: dict[str, Any] = orjson.loads(
    (
        Path(__file__).resolve().parents[2] / "amqp_schemas/examples/valid/pivot_req/kazoo_wire_example.json"
    ).read_bytes()
)["Call"]
ACCOUNT_ID = "3a1b2c4d5e6f708192a3b4c5d6e7f809"


def base_call(call_id: str, controller_queue: str, realm: str = "sip.example.com") -> dict[str, Any]:
    """A serialized ``Call`` (``kapps_call:to_json/1``, as the contract's example ships it) for one test call.

    Differences from the example, on purpose: a 32-hex account id like Kazoo's, a caller name with a
    space and a SIP header value with ``&`` (both must survive encoding), and ``realm`` everywhere.
    """
    call = copy.deepcopy(_EXAMPLE_CALL)
    call.update(
        {
            "Account-DB": "account%2F3a%2F1b%2F2c4d5e6f708192a3b4c5d6e7f809",
            "Account-ID": ACCOUNT_ID,
            "Call-ID": call_id,
            "Caller-ID-Name": "Alice Smith",
            "Controller-Queue": controller_queue,
            "Custom-SIP-Headers": {"X-Tenant": "acme & co"},
        }
    )
    call["Custom-Channel-Vars"].update({"Account-ID": ACCOUNT_ID, "Realm": realm})
    for key in ("From", "Request", "To"):
        call[key] = f"{call[key].split('@', 1)[0]}@{realm}"
    for key in ("From-Realm", "Request-Realm", "To-Realm"):
        call[key] = realm
    return call


def pivot_req(call: dict[str, Any], voice_uri: str, **fields: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "App-Name": "callflow",
        "App-Version": "4.0.0",
        "Event-Category": "dialplan",
        "Event-Name": "pivot_req",
        "Msg-ID": uuid.uuid4().hex,
        "Node": "kazoo_apps@apps1.example.com",
        "Voice-URI": voice_uri,
        "HTTP-Method": "get",
        "Request-Format": "kazoo",
        "Request-Body-Format": "form",
        "Debug": False,
        "Call": call,
    }
    msg.update(fields)
    return msg


@dataclass
class Received:
    body: dict[str, Any]
    routing_key: str
    headers: dict[str, Any]
    exchange: str
    at: float


@dataclass
class CallSide:
    """One call's view: the replies and call events it received, in arrival order."""

    call_id: str
    controller_queue: str
    events: list[Received] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    published_at: float = 0.0

    def names(self) -> list[str]:
        return [f"{r.body.get('Event-Category')}.{r.body.get('Event-Name')}" for r in self.events]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.events) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"call {self.call_id}: expected {count} messages within {timeout}s, got {self.names()}"
                )
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), remaining)
            except TimeoutError:
                continue
        return self.events


class KazooCallflow:
    """Kazoo's callflow node: one ``callflow_route_<n>`` queue on ``targeted`` plus call events."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.route_queue = f"callflow_route_{uuid.uuid4().hex[:8]}"
        self.calls: dict[str, CallSide] = {}
        self._connection: aio_pika.abc.AbstractConnection | None = None

    async def __aenter__(self) -> KazooCallflow:
        self._connection = await aio_pika.connect(self.amqp_url)
        channel = await self._connection.channel()
        # Kazoo declares its exchanges non-durable and not auto-delete.
        self.callmgr = await channel.declare_exchange("callmgr", ExchangeType.TOPIC, durable=False)
        targeted = await channel.declare_exchange("targeted", ExchangeType.DIRECT, durable=False)
        self.callevt = await channel.declare_exchange("callevt", ExchangeType.TOPIC, durable=False)
        # Kazoo's queue defaults: non-durable, auto-delete, x-max-length 100, x-message-ttl 60000.
        args = {"x-max-length": 100, "x-message-ttl": 60000}
        route = await channel.declare_queue(self.route_queue, auto_delete=True, arguments=args)
        await route.bind(targeted, self.route_queue)
        self.events_queue = await channel.declare_queue(
            f"{self.route_queue}_events", auto_delete=True, exclusive=True, arguments=args
        )
        await route.consume(self._on_message, no_ack=True)
        await self.events_queue.consume(self._on_message, no_ack=True)
        self.channel = channel
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        body = orjson.loads(message.body)
        call_id = body.get("Call-ID")
        side = self.calls.get(call_id)
        if side is None:
            return
        side.events.append(
            Received(
                body,
                message.routing_key or "",
                dict(message.headers or {}),
                message.exchange or "",
                time.monotonic(),
            )
        )
        side.changed.set()

    def new_call(
        self, realm: str = "sip.example.com", call_id: str | None = None
    ) -> tuple[CallSide, dict[str, Any]]:
        call_id = call_id or f"{uuid.uuid4()}@10.0.0.5"
        controller = f"pid://<0.{len(self.calls) + 2345}.0>/{self.route_queue}"
        side = CallSide(call_id, controller)
        self.calls[call_id] = side
        return side, base_call(call_id, controller, realm)

    async def subscribe(self, side: CallSide) -> None:
        """Bind call events for this call, as pivot/cf_exe see them: ``call.*.<encoded call id>``."""
        await self.events_queue.bind(self.callevt, f"call.*.{encode_key_part(side.call_id)}")

    async def publish(
        self,
        side: CallSide,
        msg: dict[str, Any],
        *,
        timestamp_us: int | None = None,
        raw: bytes | None = None,
    ) -> None:
        """Publish ``msg`` as ``cf_pivot`` does; ``timestamp_us`` as :func:`kazoo_now_us` makes it."""
        await self.subscribe(side)
        realm = msg.get("Call", {}).get("From-Realm", "norealm") if isinstance(msg.get("Call"), dict) else "x"
        side.published_at = time.monotonic()
        stamp = timestamp_us if timestamp_us is not None else kazoo_now_us()
        message = aio_pika.Message(
            raw if raw is not None else orjson.dumps(msg), content_type="application/json"
        )
        message.timestamp = stamp  # type: ignore[assignment]  # raw Gregorian µs, as Kazoo sends them
        await self.callmgr.publish(message, routing_key=f"pivot.req.{encode_key_part(realm)}")


def clone(obj: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(obj)


@dataclass
class FlowRun:
    """What a stand-in ``cf_exe`` did with one flow: the nodes it ran and the pivot node it reached."""

    modules: list[str]
    pivot: dict[str, Any] | None


def run_flow(flow: dict[str, Any], call: dict[str, Any], gather_digits: list[str]) -> FlowRun:
    """Walk a flow the way Kazoo's callflow engine would on the happy path, following ``_`` children.

    ``collect_dtmf`` for a Gather's collection (``pivot_g*``) stores the next scripted digits in the
    call's ``dtmf_collections``, as Kazoo's module does; other collections (digit flushing) get none.
    The walk stops at a ``pivot`` node (whose pivot_req the caller sends next) or at ``hangup``.
    """
    modules: list[str] = []
    node: dict[str, Any] | None = flow
    kvs = call.setdefault("Key-Value-Store", {})
    while node is not None:
        module, data = node["module"], node.get("data", {})
        modules.append(module)
        if module == "pivot":
            return FlowRun(modules, node)
        if module == "hangup":
            return FlowRun(modules, None)
        if module == "collect_dtmf":
            name = data.get("collection_name", "default")
            if name.startswith("pivot_g") and gather_digits:
                kvs.setdefault("dtmf_collections", {})[name] = gather_digits.pop(0)
        node = node.get("children", {}).get("_")
    return FlowRun(modules, None)


def next_pivot_req(pivot_node: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    """The pivot_req ``cf_pivot`` builds from a nested pivot node's data (``cf_pivot.erl``)."""
    data = pivot_node["data"]
    return pivot_req(
        call,
        data["voice_url"],
        **{
            "HTTP-Method": str(data.get("method", "get")).lower(),
            "Request-Format": data.get("req_format", "kazoo"),
            "Request-Body-Format": data.get("req_body_format", "form"),
            "Debug": bool(data.get("debug", False)),
        },
    )


def channel_destroy(call_id: str, cavs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A ``CHANNEL_DESTROY`` as ecallmgr publishes it when a channel ends (``kapi.call.event`` fields;
    docs/kazoo-contract.md §6). ``cavs`` is the channel's ``Custom-Application-Vars``: in Kazoo,
    whatever a ``set_variables`` node stored on the channel; here, what the test puts there."""
    event: dict[str, Any] = {
        "App-Name": "ecallmgr",
        "App-Version": "4.3.0",
        "Event-Category": "call_event",
        "Event-Name": "CHANNEL_DESTROY",
        "Msg-ID": uuid.uuid4().hex,
        "Node": "ecallmgr@fs1.example.com",
        "Call-ID": call_id,
        "Call-Direction": "inbound",
        "Caller-ID-Name": "Alice Smith",
        "Caller-ID-Number": "1001",
        "Callee-ID-Name": "IVR",
        "Callee-ID-Number": "2000",
        "From": "1001@sip.example.com",
        "To": "2000@sip.example.com",
        "Request": "2000@sip.example.com",
        "Hangup-Cause": "NORMAL_CLEARING",
        "Hangup-Code": "sip:200",
        "Disposition": "SUCCESS",
        "Billing-Seconds": "42",
        "Duration-Seconds": "45",
        "Ringing-Seconds": "3",
        "Timestamp": 63_873_214_000,
        "Media-Server": "fs1.example.com",
        "Switch-Hostname": "fs1.example.com",
        "Switch-Nodename": "freeswitch@fs1.example.com",
        "User-Agent": "Yealink SIP-T46S",
        "Custom-SIP-Headers": {"X-Tenant": "acme & co"},
        "Custom-Channel-Vars": {"Account-ID": ACCOUNT_ID, "Realm": "sip.example.com", "Username": "alice"},
        "Custom-Application-Vars": dict(cavs),
    }
    event.update(extra)
    return event


async def publish_channel_destroy(callevt: aio_pika.abc.AbstractExchange, event: dict[str, Any]) -> None:
    """Publish ``event`` as ecallmgr does (``kapi_call:publish_event/1``): on ``callevt`` with key
    ``call.CHANNEL_DESTROY.<encoded call id>`` and the ``call-id`` header (docs/kazoo-contract.md §1.3)."""
    call_id = event["Call-ID"]
    message = aio_pika.Message(
        orjson.dumps(event), content_type="application/json", headers={"call-id": call_id}
    )
    message.timestamp = kazoo_now_us()  # type: ignore[assignment]  # raw Gregorian µs, as Kazoo sends them
    await callevt.publish(message, routing_key=f"call.CHANNEL_DESTROY.{encode_key_part(call_id)}")
