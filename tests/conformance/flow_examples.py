"""One realistic ``data`` per supported callflow module, plus flows built from them.

Shared by the unit tests (each module accepts its example) and the Kazoo conformance tests (what we
accept, Kazoo accepts). Values are the kind a developer's server or our TwiML translator sends.
"""

from __future__ import annotations

import copy
from typing import Any

MODULE_EXAMPLES: dict[str, dict[str, Any]] = {
    "pivot": {"voice_url": "https://ivr.example.com/pivot/next", "method": "post", "req_format": "twiml"},
    "tts": {"text": "Thanks for calling. Press 1 for sales.", "language": "en-US", "engine": "flite"},
    "play": {"id": "https://media.example.com/welcome.mp3", "loop_count": 2},
    "collect_dtmf": {"max_digits": 4, "timeout": 8000, "terminators": ["#"], "collection_name": "account"},
    "flush_dtmf": {"collection_name": "account"},
    "record_caller": {"url": "https://ivr.example.com/recordings", "format": "mp3", "time_limit": 120},
    "record_call": {"action": "start", "format": "wav", "record_on_answer": True, "label": "support"},
    "response": {"code": 486, "message": "Busy Here"},
    "hangup": {},
    "sleep": {"duration": 2, "unit": "s"},
    "set_variables": {"custom_application_vars": {"campaign": "spring", "tier": "gold"}, "export": True},
    "set_variable": {"variable": "language_choice", "value": "fr", "channel": "both"},
    "set": {},
    "send_dtmf": {"digits": "1234#", "duration_ms": 250},
    "device": {"id": "9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a", "timeout": 25, "can_call_self": False},
    "user": {"id": "6d2f0c1b2a3948576a5b4c3d2e1f0a9b", "timeout": 30, "strategy": "single"},
    "ring_group": {
        "endpoints": [
            {"endpoint_type": "user", "id": "6d2f0c1b2a3948576a5b4c3d2e1f0a9b"},
            {"endpoint_type": "device", "id": "9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a", "delay": 5, "weight": 50},
        ],
        "strategy": "weighted_random",
        "timeout": 30,
    },
    "resources": {
        "to_did": "+14155550123",
        "timeout": 30,
        "custom_sip_headers": {"X-Campaign": "spring"},
        "outbound_flags": ["fax"],
    },
    "offnet": {"to_did": "+442071838750", "caller_id_type": "external", "ignore_early_media": True},
    "conference": {"config": {"name": "support-room-7", "max_participants": 10}, "moderator": False},
    "callflow": {"id": "c0ffee00c0ffee00c0ffee00c0ffee00"},
    "voicemail": {"id": "0123456789abcdef0123456789abcdef", "action": "compose"},
    "manual_presence": {"presence_id": "2000@sip.example.com", "status": "busy"},
    "language": {"language": "fr-ca"},
    "menu": {"id": "f00dfeedf00dfeedf00dfeedf00dfeed", "interdigit_timeout": 2000},
    "answer": {},
    "noop": {},
    "dead_air": {},
    "wait_for_hangup": {},
    "set_cid": {"caller_id_name": "Support", "caller_id_number": "+14155550100"},
    "branch_variable": {"variable": "tier", "scope": "custom_channel_vars"},
    "webhook": {"uri": "https://hooks.example.com/call", "http_verb": "post", "retries": 2},
}


def single_node(module: str) -> dict[str, Any]:
    """A one-node flow using ``module``'s example data (a fresh copy every call)."""
    return {"module": module, "data": copy.deepcopy(MODULE_EXAMPLES[module]), "children": {}}


def menu_flow() -> dict[str, Any]:
    """A typical IVR: greet, collect a digit, hand the digit to the next pivot request."""
    return {
        "module": "tts",
        "data": {"text": "Press 1 for sales, 2 for support."},
        "children": {
            "_": {
                "module": "collect_dtmf",
                "data": {"max_digits": 1, "collection_name": "menu"},
                "children": {
                    "_": {
                        "module": "pivot",
                        "data": {"voice_url": "https://ivr.example.com/menu", "method": "post"},
                        "children": {},
                    }
                },
            }
        },
    }
