"""The bare reference pipeline: what one worker process can do with the same libraries and no extras.

Straight line per delivery, each in aio-pika's own task: ``orjson.loads`` -> params by hand ->
GET on one shared aiohttp ``ClientSession`` -> ``orjson.loads`` (JSON) or a hardened lxml parse plus a
hand-built equivalent callflow (TwiML) -> ``orjson.dumps`` -> ``pivot.processing`` to ``targeted``
and ``CHANNEL_PIVOT`` to ``callevt`` on a confirm channel, each confirm awaited in order -> ack.
uvloop, prefetch 50, no validation, no retries, no deadlines, no logging on the hot path: the
ceiling the real worker is compared with (issue 5).

``--per-call-queue`` adds Kazoo's pivot_call design around that line: per request a channel, a
server-named exclusive auto-delete queue bound to ``targeted`` (its own name) and ``callevt``
(``call.*.<encoded call id>``), a consumer, then cancel, delete, close (docs/kazoo-contract.md §1.5).

Usage: ``python bench/bare_worker.py --queue NAME [--per-call-queue] [--prefetch 50]``. It consumes
``NAME`` (durable, bound to ``callmgr`` with ``pivot.req.*``, as the worker's) until SIGTERM/SIGINT,
then prints a one-line summary on stderr. Voice URIs outside ``--allow-prefix`` are refused, so the
process only ever talks to loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any
from urllib.parse import urljoin

if __package__ in (None, ""):
    import _bootstrap  # type: ignore[import-not-found]  # noqa: F401

import aio_pika
import aiohttp
import orjson
import uvloop
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractRobustConnection
from lxml import etree

from pivot_worker import amqp_compat
from pivot_worker.names import encode_key_part

DTMF_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#")
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
JSON = "application/json"
NODE = f"bare_worker@{os.uname().nodename}"


def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flat(f"{prefix}[{key}]", sub, out)
    elif value is not None and value != "":
        out[prefix] = "true" if value is True else "false" if value is False else str(value)


def kazoo_params(call: dict[str, Any]) -> dict[str, str]:
    """The Kazoo request params (docs/kazoo-contract.md §4.1), flattened for aiohttp's query encoder."""
    kvs = call.get("Key-Value-Store") or {}
    out: dict[str, str] = {}
    for name, value in (
        ("Account-ID", call.get("Account-ID")),
        ("Api-Version", "4.x"),
        ("Call-ID", call.get("Call-ID")),
        ("Caller-ID-Name", call.get("Caller-ID-Name")),
        ("Caller-ID-Number", call.get("Caller-ID-Number")),
        ("Custom-Application-Vars", call.get("Custom-Application-Vars")),
        ("Custom-SIP-Headers", call.get("Custom-SIP-Headers")),
        ("Digits", kvs.get("digit_pressed") or kvs.get("dtmf_collections")),
        ("Direction", call.get("Call-Direction") or "inbound"),
        ("From", call.get("From-User")),
        ("From-Realm", call.get("From-Realm")),
        ("Language", call.get("Language")),
        ("Request", call.get("Request-User")),
        ("Request-Realm", call.get("Request-Realm")),
        ("To", call.get("To-User")),
        ("To-Realm", call.get("To-Realm")),
        ("User-ID", call.get("Owner-ID")),
    ):
        _flat(name, value, out)
    return out


def twiml_params(call: dict[str, Any]) -> dict[str, str]:
    """The TwiML request params (docs/kazoo-contract.md §4.2), flattened for aiohttp's query encoder."""
    kvs = call.get("Key-Value-Store") or {}
    out: dict[str, str] = {}
    for name, value in (
        ("AccountSid", call.get("Account-ID")),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", call.get("Call-ID")),
        ("Called", call.get("To-User")),
        ("Caller", call.get("From-User")),
        ("CallerName", call.get("Caller-ID-Name")),
        ("CallerNumber", call.get("Caller-ID-Number")),
        ("Digits", kvs.get("digit_pressed") or kvs.get("dtmf_collections")),
        ("Direction", call.get("Call-Direction") or "inbound"),
        ("From", call.get("From-User")),
        ("FromRealm", call.get("From-Realm")),
        ("To", call.get("To-User")),
        ("ToRealm", call.get("To-Realm")),
    ):
        _flat(name, value, out)
    return out


def _say(element: etree._Element, in_gather: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "text": (element.text or "").strip(),
        "voice": "male" if element.get("voice") == "man" else "female",
        "language": (element.get("language") or "en-US").lower(),
        "terminators": list(DTMF_KEYS) if in_gather else [],
    }
    return {"module": "tts", "data": data}


def twiml_flow(root: etree._Element, document_url: str) -> dict[str, Any]:
    """The callflow for a Say / Gather / Redirect document, built by hand.

    Same shape the translator gives such a document: ``tts``; for ``<Gather>`` a discarding
    ``collect_dtmf``, the nested prompts, the collecting ``collect_dtmf`` and a ``pivot`` to the
    action, then ``hangup``; ``<Redirect>`` a ``pivot``. Nodes are chained through their ``_``
    child; a Gather or a Redirect ends the chain. Not modelled: the signed continuation token the
    translator adds to the action URL (the verbs after the Gather), which is the worker's design.
    """
    nodes: list[dict[str, Any]] = []
    for element in root:
        tag = element.tag
        if tag == "Say":
            nodes.append(_say(element))
        elif tag == "Gather":
            nodes.append(
                {
                    "module": "collect_dtmf",
                    "data": {
                        "collection_name": "pivot_discard",
                        "max_digits": 1,
                        "timeout": 1,
                        "interdigit_timeout": 1,
                        "terminator": "#",
                    },
                }
            )
            nodes.extend(_say(child, in_gather=True) for child in element if child.tag == "Say")
            timeout_ms = int(element.get("timeout") or 5) * 1000
            nodes.append(
                {
                    "module": "collect_dtmf",
                    "data": {
                        "collection_name": "pivot_g1",
                        "max_digits": int(element.get("numDigits") or 128),
                        "timeout": timeout_ms,
                        "interdigit_timeout": timeout_ms,
                        "terminator": element.get("finishOnKey") or "#",
                    },
                }
            )
            nodes.append(_pivot(urljoin(document_url, element.get("action") or ""), element))
            nodes.append({"module": "hangup", "data": {}})
            break
        elif tag == "Redirect":
            nodes.append(_pivot(urljoin(document_url, (element.text or "").strip()), element))
            break
    flow: dict[str, Any] = {}
    for node in reversed(nodes):
        node["children"] = {"_": flow} if flow else {}
        flow = node
    return flow


def _pivot(url: str, element: etree._Element) -> dict[str, Any]:
    method = (element.get("method") or "POST").lower()
    data = {
        "voice_url": url,
        "method": method,
        "req_format": "twiml",
        "req_body_format": "form",
        "debug": False,
    }
    return {"module": "pivot", "data": data}


class BareWorker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ok = 0
        self.errors = 0
        self.connection: AbstractRobustConnection | None = None
        self.http: aiohttp.ClientSession | None = None
        self.targeted: AbstractExchange | None = None
        self.callevt: AbstractExchange | None = None

    async def start(self) -> None:
        self.connection = await aio_pika.connect_robust(
            self.args.amqp_url, client_properties={"connection_name": f"bare_worker {self.args.queue}"}
        )
        channel = await self.connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=self.args.prefetch)
        topic, direct = aio_pika.ExchangeType.TOPIC, aio_pika.ExchangeType.DIRECT
        callmgr = await channel.declare_exchange("callmgr", topic, durable=False)
        self.targeted = await channel.declare_exchange("targeted", direct, durable=False)
        self.callevt = await channel.declare_exchange("callevt", topic, durable=False)
        queue = await channel.declare_queue(self.args.queue, durable=True)
        await queue.bind(callmgr, "pivot.req.*")
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200))
        handler = self.per_call_queue if self.args.per_call_queue else self.handle
        await queue.consume(handler)

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self.connection is not None:
            await self.connection.close()

    async def handle(self, message: AbstractIncomingMessage) -> None:
        try:
            await self.serve(message)
        except Exception as exc:
            self.errors += 1
            print(f"bare_worker: delivery {message.delivery_tag} failed: {exc!r}", file=sys.stderr)
            await message.reject(requeue=False)

    async def per_call_queue(self, message: AbstractIncomingMessage) -> None:
        """Kazoo's pivot_call lifecycle around the same straight line (docs/kazoo-contract.md §1.5)."""
        assert self.connection is not None and self.targeted is not None and self.callevt is not None
        try:
            call_id = orjson.loads(message.body)["Call"]["Call-ID"]
            channel = await self.connection.channel(publisher_confirms=False)
            listener = await channel.declare_queue("", exclusive=True, auto_delete=True)
            await listener.bind(self.targeted, listener.name)
            await listener.bind(self.callevt, f"call.*.{encode_key_part(call_id)}")
            tag = await listener.consume(_ignore, no_ack=True)
            await self.serve(message)
            await listener.cancel(tag)
            await listener.delete(if_unused=False, if_empty=False)
            await channel.close()
        except Exception as exc:
            self.errors += 1
            print(f"bare_worker: delivery {message.delivery_tag} failed: {exc!r}", file=sys.stderr)
            if not message.processed:
                await message.reject(requeue=False)

    async def serve(self, message: AbstractIncomingMessage) -> None:
        assert self.http is not None and self.targeted is not None and self.callevt is not None
        msg = orjson.loads(message.body)
        call = msg["Call"]
        url = msg["Voice-URI"]
        if not url.startswith(self.args.allow_prefix):
            raise ValueError(f"Voice-URI {url!r} is outside --allow-prefix {self.args.allow_prefix!r}")
        fmt = msg.get("Request-Format") or "twiml"
        params = kazoo_params(call) if fmt == "kazoo" else twiml_params(call)
        async with self.http.get(url, params=params) as resp:
            body = await resp.read()
            content_type = resp.headers.get("Content-Type", "")
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status} from {url}")
        if "json" in content_type:
            flow = orjson.loads(body)
        else:
            flow = twiml_flow(etree.fromstring(body, PARSER), url)
        call_id = call["Call-ID"]
        pid, _, reply_key = call["Controller-Queue"].removeprefix("pid://").rpartition("/")
        processing = {
            "App-Name": "translator",
            "App-Version": "4.0.0",
            "Call-ID": call_id,
            "Event-Category": "pivot",
            "Event-Name": "processing",
            "Msg-ID": os.urandom(16).hex(),
            "Node": NODE,
        }
        await self.targeted.publish(
            aio_pika.Message(orjson.dumps(processing), content_type=JSON, headers={"Deliver-To-PID": pid}),
            routing_key=reply_key,
        )
        event = {
            "App-Name": "translator",
            "App-Version": "4.0.0",
            "Application-Data": orjson.dumps(flow).decode(),
            "Call-ID": call_id,
            "Event-Category": "call_event",
            "Event-Name": "CHANNEL_PIVOT",
            "Msg-ID": os.urandom(16).hex(),
            "Node": NODE,
        }
        await self.callevt.publish(
            aio_pika.Message(orjson.dumps(event), content_type=JSON, headers={"call-id": call_id}),
            routing_key=f"call.CHANNEL_PIVOT.{encode_key_part(call_id)}",
        )
        await message.ack()
        self.ok += 1


async def _ignore(_message: AbstractIncomingMessage) -> None:
    return None


async def run(args: argparse.Namespace) -> int:
    amqp_compat.install()  # read Kazoo's microsecond timestamps, exactly as the worker does
    worker = BareWorker(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await worker.start()
        await stop.wait()
    finally:
        await worker.close()
        print(f"bare_worker: {worker.ok} ok, {worker.errors} failed", file=sys.stderr, flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", required=True, help="queue to consume (durable, on callmgr)")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--prefetch", type=int, default=50)
    parser.add_argument("--per-call-queue", action="store_true", help="model Kazoo's queue per call")
    parser.add_argument("--allow-prefix", default="http://127.0.0.1:", help="refuse other Voice-URIs")
    return uvloop.run(run(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
