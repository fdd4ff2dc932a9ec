"""deploy/rabbitmq-definitions.json against what the worker and the collector declare."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, cast

import pytest

from pivot_worker import names
from pivot_worker.bus import Bus
from pivot_worker.cdr import CDR_BINDING
from pivot_worker.collector.consumer import queue_name_for
from pivot_worker.debug.routing import BINDING_KEY
from pivot_worker.queues import bounds
from pivot_worker.settings import Settings

from .conftest import DEPLOY, load_json

SETTINGS = Settings(queue_type="quorum")


@pytest.fixture(scope="module")
def definitions() -> dict[str, Any]:
    result: dict[str, Any] = load_json(DEPLOY / "rabbitmq-definitions.json")
    return result


def bus() -> Bus:
    return Bus(SETTINGS, cast(Any, None), cast(Any, None))


def test_exchanges_as_kazoo_and_the_debug_publisher_declare_them(definitions: dict[str, Any]) -> None:
    got = {e["name"]: (e["type"], e["durable"], e["auto_delete"]) for e in definitions["exchanges"]}
    assert got == {
        names.EXCHANGE_CALLMGR: ("topic", False, False),
        names.EXCHANGE_TARGETED: ("direct", False, False),
        names.EXCHANGE_CALLEVT: ("topic", False, False),
        SETTINGS.debug_exchange: ("topic", True, False),
    }


def test_queues_and_their_arguments(definitions: dict[str, Any]) -> None:
    got = {q["name"]: q["arguments"] for q in definitions["queues"]}
    assert all(q["durable"] and not q["auto_delete"] for q in definitions["queues"])
    work = bus()
    assert got == {
        SETTINGS.queue: work.queue_arguments(),
        work.dead_queue_name: bounds(SETTINGS.dead_letter_max_length, SETTINGS.dead_letter_ttl_s),
        f"{SETTINGS.queue}.cdr": {},  # pivot_worker.cdr.CdrPoster.queue_name
        queue_name_for(SETTINGS.debug_exchange): bounds(
            SETTINGS.debug_queue_max_length, SETTINGS.debug_queue_ttl_s
        ),
    }
    assert got[SETTINGS.queue]["x-delivery-limit"] == 5
    assert got[SETTINGS.queue]["x-dead-letter-routing-key"] == f"{SETTINGS.queue}.dead"


def test_bindings(definitions: dict[str, Any]) -> None:
    got = {
        (b["source"], b["destination"], b["destination_type"], b["routing_key"])
        for b in definitions["bindings"]
    }
    assert got == {
        (names.EXCHANGE_CALLMGR, SETTINGS.queue, "queue", names.PIVOT_REQ_BINDING),
        (names.EXCHANGE_CALLEVT, f"{SETTINGS.queue}.cdr", "queue", CDR_BINDING),
        (SETTINGS.debug_exchange, queue_name_for(SETTINGS.debug_exchange), "queue", BINDING_KEY),
    }
    assert CDR_BINDING == "call.CHANNEL_DESTROY.*"


def test_policies_bound_the_unread_queues_like_their_arguments(definitions: dict[str, Any]) -> None:
    arguments = {q["name"]: q["arguments"] for q in definitions["queues"]}
    policies = {p["pattern"]: p for p in definitions["policies"]}
    for pattern, queue in (
        (r"^pivot_worker\.dead$", "pivot_worker.dead"),
        (r"^pivot\.debug$", "pivot.debug"),
    ):
        policy = policies[pattern]
        assert policy["apply-to"] == "queues"
        assert policy["definition"] == {
            "max-length": arguments[queue]["x-max-length"],
            "message-ttl": arguments[queue]["x-message-ttl"],
        }


def test_the_user_is_the_documented_placeholder(definitions: dict[str, Any]) -> None:
    (user,) = definitions["users"]
    assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
    raw = base64.b64decode(user["password_hash"])
    salt, digest = raw[:4], raw[4:]
    assert hashlib.sha256(salt + b"change-me").digest() == digest
    (permission,) = definitions["permissions"]
    assert (permission["user"], permission["vhost"]) == (user["name"], "/")
