"""The fixed inputs every benchmark shares: a Kazoo-shaped pivot_req and the developer's two answers.

One source for the message and the documents, so the bare pipelines, the real worker, the
micro-benchmarks and the HTTP client comparison all work on the same bytes. The pivot_req has the
shape of Kazoo's (docs/kazoo-contract.md §2.3 and §2.6; about 2.4 KB): a full serialized ``Call``
with channel variables, the key-value store holding the calling flow, and a ``Controller-Queue`` in
Kazoo's ``pid://`` form.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson

KAZOO_PATH = "/kazoo"
TWIML_PATH = "/twiml"

# About 400 bytes: Say, Gather with a nested Say, then Redirect (the document the reference
# measurements used, see bench/README.md).
TWIML_DOCUMENT = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Response>\n"
    b'  <Say voice="woman" language="en-US">Thank you for calling the example company, Alice.</Say>\n'
    b'  <Gather action="/twiml/menu" method="GET" numDigits="1" timeout="5">\n'
    b'    <Say voice="woman" language="en-US">'
    b"For sales press 1, for support press 2, for billing press 3.</Say>\n"
    b"  </Gather>\n"
    b'  <Redirect method="GET">/twiml</Redirect>\n'
    b"</Response>\n"
)


def kazoo_flow(base_url: str) -> dict[str, Any]:
    """The Kazoo callflow the developer server answers on ``/kazoo``: tts -> collect_dtmf -> pivot.

    The same three steps as the TwiML document, so both answers lead to comparable work.
    """
    return {
        "module": "tts",
        "data": {"text": "Thank you for calling the example company.", "language": "en-US"},
        "children": {
            "_": {
                "module": "collect_dtmf",
                "data": {"collection_name": "menu", "max_digits": 1, "timeout": 5000},
                "children": {
                    "_": {
                        "module": "pivot",
                        "data": {
                            "voice_url": base_url + KAZOO_PATH + "/menu",
                            "method": "get",
                            "req_format": "kazoo",
                        },
                        "children": {},
                    }
                },
            }
        },
    }


def kazoo_document(base_url: str) -> bytes:
    return orjson.dumps(kazoo_flow(base_url))


# Kazoo's example pivot_req (docs/kazoo-contract.md §2.6), as the message contract ships it, plus what
# makes the Call as heavy as the 2.4 KB one the reference measurements used (more CCVs, CAVs, SIP
# headers, inception).
_EXAMPLE: dict[str, Any] = orjson.loads(
    (
        Path(__file__).resolve().parents[1] / "amqp_schemas/examples/valid/pivot_req/kazoo_wire_example.json"
    ).read_bytes()
)
_CALL: dict[str, Any] = {
    **_EXAMPLE["Call"],
    "Controller-Queue": "pid://<0.1.0>/callflow_route_1",
    "Custom-Application-Vars": {"campaign": "spring-2026"},
    "Custom-Channel-Vars": {
        **_EXAMPLE["Call"]["Custom-Channel-Vars"],
        "Call-Interaction-ID": "63856295847-8a7d3f1c",
    },
    "Custom-SIP-Headers": {"X-Tenant-Ref": "example-company-eu1"},
    "Inception": "onnet",
    "Key-Value-Store": {
        **_EXAMPLE["Call"]["Key-Value-Store"],
        "cf_flow": {
            "module": "pivot",
            "data": {
                "voice_url": "https://ivr.example.com/pivot/start",
                "req_format": "kazoo",
                "method": "get",
                "debug": False,
            },
            "children": {},
        },
    },
}
_REQUEST: dict[str, Any] = {
    **{k: v for k, v in _EXAMPLE.items() if k not in ("Call", "Request-Body-Format")},
    "HTTP-Method": "get",
    "Debug": False,
}


def call(call_id: str | None = None, controller_queue: str | None = None) -> dict[str, Any]:
    """A fresh copy of the serialized ``Call`` (docs/kazoo-contract.md §2.3), optionally with its own ids."""
    out = copy.deepcopy(_CALL)
    if call_id is not None:
        out["Call-ID"] = call_id
    if controller_queue is not None:
        out["Controller-Queue"] = controller_queue
    return out


def pivot_req(
    voice_uri: str,
    request_format: str,
    call_id: str | None = None,
    controller_queue: str | None = None,
    msg_id: str | None = None,
) -> dict[str, Any]:
    """A complete pivot_req asking for ``voice_uri`` with ``request_format`` (``kazoo`` or ``twiml``)."""
    msg = copy.deepcopy(_REQUEST)
    msg["Voice-URI"] = voice_uri
    msg["Request-Format"] = request_format
    if msg_id is not None:
        msg["Msg-ID"] = msg_id
    msg["Call"] = call(call_id, controller_queue)
    return msg


def controller_queue(reply_queue: str) -> str:
    """Kazoo's ``pid://<pid>/<queue>`` form of a reply queue name (docs/kazoo-contract.md §1.4)."""
    return f"pid://<0.1.0>/{reply_queue}"


class RequestFactory:
    """Cheap bodies for many requests: one template, only the ids change per message.

    Builds each body with one ``orjson.dumps`` of a two-level shallow copy, so a load driver can
    produce thousands per second without deep copies.
    """

    def __init__(
        self,
        voice_uri: str,
        request_format: str,
        call_id_prefix: str,
        reply_queue: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """``extra`` adds top-level pivot_req keys, e.g. ``{"Request-Timeout": 2000}``."""
        self._template = pivot_req(voice_uri, request_format, controller_queue=controller_queue(reply_queue))
        self._template.update(extra or {})
        self._call = self._template["Call"]
        self.prefix = call_id_prefix

    def call_id(self, seq: int) -> str:
        return f"{self.prefix}-{seq:08d}"

    def body(self, seq: int) -> bytes:
        msg = dict(self._template)
        msg["Msg-ID"] = f"{seq:032x}"
        msg["Call"] = {**self._call, "Call-ID": self.call_id(seq)}
        return orjson.dumps(msg)
