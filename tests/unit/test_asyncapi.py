"""``amqp_schemas/asyncapi.yaml``: a valid AsyncAPI 3.0.0 document that says what the code does.

The AsyncAPI schema is committed (``tests/data/asyncapi``), so nothing is fetched at test time.
The declarations are recorded by running the code's own ``declare``/``start`` against fake
channels, so the document cannot drift from ``Bus.declare``, the debug publisher, the collector
or the CDR poster.
"""

from __future__ import annotations

import copy
import json
import pathlib
from typing import Any

import aio_pika
import pytest
import yaml
from jsonschema import Draft7Validator
from referencing import Registry
from referencing.jsonschema import DRAFT7

from pivot_worker import cdr, names
from pivot_worker.bus import Bus
from pivot_worker.collector.consumer import EventConsumer, queue_name_for
from pivot_worker.debug.publisher import DebugPublisher
from pivot_worker.debug.routing import BINDING_KEY, debug_routing_key
from pivot_worker.settings import Settings

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "amqp_schemas"
DOCUMENT = SCHEMA_DIR / "asyncapi.yaml"
ASYNCAPI_SCHEMA = REPO / "tests" / "data" / "asyncapi" / "3.0.0.json"
JSON_SCHEMA_2020_12 = "application/schema+json;version=2020-12"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _amqp(doc: dict[str, Any], channel: str) -> dict[str, Any]:
    binding: dict[str, Any] = doc["channels"][channel]["bindings"]["amqp"]
    return binding


def _address(doc: dict[str, Any], channel: str, **parts: str) -> str:
    address: str = doc["channels"][channel]["address"]
    for name, value in parts.items():
        address = address.replace("{" + name + "}", value)
    assert "{" not in address, f"{channel}: parameter left in {address!r}"
    return address


# -- the document is valid AsyncAPI 3.0.0 -------------------------------------------------------


def _asyncapi_validator() -> Draft7Validator:
    schema = json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8"))
    # Draft-07 whose definitions are keyed by their own "$id"s and reference one another by them.
    registry: Registry[Any] = Registry()
    for uri, definition in schema["definitions"].items():
        registry = registry.with_resource(uri, DRAFT7.create_resource(definition))
    return Draft7Validator(schema, registry=registry)


def test_document_is_valid_asyncapi_3_0_0(doc: dict[str, Any]) -> None:
    errors = sorted(_asyncapi_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors)


def test_an_invalid_document_is_refused(doc: dict[str, Any]) -> None:
    """The validation above really checks something: a wrong exchange type, a binding with both
    an exchange and a queue, an operation without its channel."""
    validator = _asyncapi_validator()
    bad = copy.deepcopy(doc)
    bad["channels"]["pivotReq"]["bindings"]["amqp"]["exchange"]["type"] = "sideways"
    assert not validator.is_valid(bad)
    bad = copy.deepcopy(doc)
    bad["channels"]["pivotReq"]["bindings"]["amqp"]["queue"] = {"name": "pivot_worker"}
    assert not validator.is_valid(bad)
    bad = copy.deepcopy(doc)
    del bad["operations"]["receivePivotReq"]["channel"]
    assert not validator.is_valid(bad)


def test_internal_references_resolve(doc: dict[str, Any]) -> None:
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and value.startswith("#/"):
                    yield value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    refs = list(walk(doc))
    assert refs
    for ref in refs:
        target: Any = doc
        for part in ref[2:].split("/"):
            assert isinstance(target, dict) and part in target, f"unresolved {ref}"
            target = target[part]


# -- the document says what the code does -------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.exchanges: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, dict[str, Any]] = {}
        self.bindings: list[tuple[str, str, str]] = []


class _Exchange:
    def __init__(self, name: str) -> None:
        self.name = name


class _Queue:
    def __init__(self, recorder: _Recorder, name: str) -> None:
        self.recorder = recorder
        self.name = name

    async def bind(self, exchange: _Exchange, routing_key: str) -> None:
        self.recorder.bindings.append((exchange.name, self.name, routing_key))

    async def consume(self, callback: Any) -> str:
        return "ctag"

    async def cancel(self, tag: str) -> None:
        return None


class _Channel:
    is_closed = False

    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    async def declare_exchange(
        self, name: str, type: Any, *, durable: bool = False, auto_delete: bool = False
    ) -> _Exchange:
        kind = type.value if isinstance(type, aio_pika.ExchangeType) else str(type)
        self.recorder.exchanges[name] = {"type": kind, "durable": durable, "autoDelete": auto_delete}
        return _Exchange(name)

    async def declare_queue(self, name: str, **kwargs: Any) -> _Queue:
        if not kwargs.get("passive"):
            self.recorder.queues[name] = {
                "durable": bool(kwargs.get("durable", False)),
                "exclusive": bool(kwargs.get("exclusive", False)),
                "autoDelete": bool(kwargs.get("auto_delete", False)),
            }
        return _Queue(self.recorder, name)

    async def set_qos(self, **kwargs: Any) -> None:
        return None

    async def close(self) -> None:
        self.is_closed = True


class _Connection:
    is_closed = False

    def __init__(self, recorder: _Recorder) -> None:
        self.recorder = recorder

    async def channel(self, **kwargs: Any) -> _Channel:
        return _Channel(self.recorder)

    async def close(self) -> None:
        self.is_closed = True


@pytest.fixture
async def declared(monkeypatch: pytest.MonkeyPatch) -> _Recorder:
    """What the worker, the debug publisher, the CDR poster and the collector declare."""
    recorder = _Recorder()
    settings = Settings()
    await Bus(settings, _Channel(recorder), tx=None).declare()  # type: ignore[arg-type]

    publisher = DebugPublisher(settings)
    await publisher.start(_Connection(recorder))  # type: ignore[arg-type]
    await publisher.stop(0.1)

    async def connect_robust(*args: Any, **kwargs: Any) -> _Connection:
        return _Connection(recorder)

    monkeypatch.setattr(aio_pika, "connect_robust", connect_robust)
    poster = cdr.CdrPoster(settings)
    await poster.start()
    await poster.stop()

    consumer = EventConsumer(None, _Connection(recorder), exchange=settings.debug_exchange)  # type: ignore[arg-type]
    await consumer.start()
    await consumer.stop()
    return recorder


def test_every_exchange_is_declared_as_the_code_declares_it(doc: dict[str, Any], declared: _Recorder) -> None:
    described: dict[str, dict[str, Any]] = {}
    for name, channel in doc["channels"].items():
        amqp = channel["bindings"]["amqp"]
        if amqp["is"] == "queue":  # published through the default exchange
            continue
        exchange = amqp["exchange"]
        entry = {key: exchange[key] for key in ("type", "durable", "autoDelete")}
        assert described.setdefault(exchange["name"], entry) == entry, f"{name} disagrees on {exchange}"
    assert described == declared.exchanges
    assert {names.EXCHANGE_CALLMGR, names.EXCHANGE_TARGETED, names.EXCHANGE_CALLEVT} <= set(described)
    assert Settings().debug_exchange in described


def test_every_queue_and_binding_is_the_codes(doc: dict[str, Any], declared: _Recorder) -> None:
    settings = Settings()
    queues: dict[str, dict[str, Any]] = {}
    bindings: set[tuple[str, str, str]] = set()
    for channel in doc["channels"].values():
        amqp = channel["bindings"]["amqp"]
        queue = amqp.get("queue") or amqp.get("x-queue")
        if queue is None:
            continue
        queues[queue["name"]] = {key: queue[key] for key in ("durable", "exclusive", "autoDelete")}
        if amqp["is"] == "routingKey":
            bindings.add((amqp["exchange"]["name"], queue["name"], queue["bindingKey"]))
    dead = f"{settings.queue}.dead"
    # The dead-letter queue is created by the broker link (pivot_worker.queues.declare_bounded:
    # durable); Bus.declare only checks it passively.
    assert queues.pop(dead) == {"durable": True, "exclusive": False, "autoDelete": False}
    assert queues == declared.queues
    assert bindings == set(declared.bindings)
    assert queue_name_for(settings.debug_exchange) in queues
    assert f"{settings.queue}.cdr" in queues


def test_routing_keys_have_the_codes_shape(doc: dict[str, Any]) -> None:
    assert _address(doc, "pivotReq", realm="*") == names.PIVOT_REQ_BINDING
    assert _address(doc, "pivotReq", realm="x") == names.pivot_req_routing_key("x")
    assert _address(doc, "channelPivot", callId="x") == names.call_event_routing_key(
        names.EVENT_NAME_CHANNEL_PIVOT, "x"
    )
    assert _address(doc, "channelDestroy", callId="*") == cdr.CDR_BINDING
    assert _address(doc, "debugEvents", accountId="x") == debug_routing_key("x")
    assert _address(doc, "debugEvents", accountId="*") == BINDING_KEY
    assert _address(doc, "deadLetter") == f"{Settings().queue}.dead"
    target = names.reply_target("pid://<0.1.0>/q")
    assert _address(doc, "targetedReply", replyQueue="q") == target.routing_key
    # Every other binding key in the document is one of the code's.
    keys = {a["x-queue"]["bindingKey"] for a in (_amqp(doc, c) for c in doc["channels"]) if "x-queue" in a}
    assert keys == {
        names.PIVOT_REQ_BINDING,
        BINDING_KEY,
        cdr.CDR_BINDING,
    }


def test_headers_are_the_codes(doc: dict[str, Any]) -> None:
    messages = doc["components"]["messages"]
    targeted = doc["components"]["schemas"]["targetedHeaders"]["properties"]
    assert set(targeted) == {names.HEADER_DELIVER_TO_PID}
    assert messages["channelPivot"]["headers"]["required"] == [names.HEADER_CALL_ID]
    dead = messages["deadLetter"]["headers"]["required"]
    assert {names.HEADER_DEAD_REASON, names.HEADER_DEAD_DETAIL} <= set(dead)


def test_payloads_reference_every_contract_and_only_existing_files(doc: dict[str, Any]) -> None:
    referenced: set[str] = set()
    for name, message in doc["components"]["messages"].items():
        payload = message["payload"]
        if "schemaFormat" not in payload:
            continue  # an inline AsyncAPI schema (no contract file of ours)
        assert payload["schemaFormat"] == JSON_SCHEMA_2020_12, name
        ref = payload["schema"]["$ref"]
        path = (DOCUMENT.parent / ref).resolve()
        assert path.parent == SCHEMA_DIR.resolve() and path.is_file(), f"{name}: {ref} is no contract"
        contract = json.loads(path.read_text(encoding="utf-8"))
        assert contract["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        referenced.add(path.name)
    every = {path.name for path in SCHEMA_DIR.glob("*.json")}
    assert referenced == every, f"contracts no message references: {sorted(every - referenced)}"


def test_every_message_is_used_by_an_operation(doc: dict[str, Any]) -> None:
    used = set()
    for operation in doc["operations"].values():
        for ref in operation["messages"]:
            used.add(ref["$ref"].rsplit("/", 1)[-1])
    assert used == set(doc["components"]["messages"])
