"""The callflow modules we accept and their compiled ``data`` validators.

Each module's schema is our own restatement of Kazoo's ``callflows.<module>`` rules (names, types,
enums, bounds, defaults). A validator is compiled with fastjsonschema on first use of its module,
then kept for the life of the process (``pivot_worker.callflow.prepare`` compiles them all up
front).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastjsonschema

from ..schemas import load_schema

DataValidator = Callable[[Any], Any]

#: Every callflow module a developer's Kazoo JSON may use. The first 27 are the modules the pivot
#: documentation describes; the rest are small, self-contained modules that TwiML translation can
#: use (silence, waiting for hangup, caller id, branching on a variable, a webhook).
SUPPORTED_MODULES: frozenset[str] = frozenset(
    {
        "pivot",
        "tts",
        "play",
        "collect_dtmf",
        "flush_dtmf",
        "record_caller",
        "record_call",
        "response",
        "hangup",
        "sleep",
        "set_variables",
        "set_variable",
        "set",
        "send_dtmf",
        "device",
        "user",
        "ring_group",
        "resources",
        "offnet",
        "conference",
        "callflow",
        "voicemail",
        "manual_presence",
        "language",
        "menu",
        "answer",
        "noop",
        "dead_air",
        "wait_for_hangup",
        "set_cid",
        "branch_variable",
        "webhook",
    }
)

#: Modules Kazoo's callflow app has a schema for, but whose ``data`` we do not restate. A flow
#: Kazoo accepts must not be refused here, so these pass with only the node-level checks
#: (``data`` must be an object); Kazoo then validates and defaults their ``data`` itself.
PASS_THROUGH_MODULES: frozenset[str] = frozenset(
    {
        "acdc_agent",
        "acdc_member",
        "acdc_queue",
        "acdc_wait_time",
        "after_bridge",
        "audio_macro",
        "branch_bnumber",
        "call_forward",
        "call_waiting",
        "camping_feature",
        "check_cid",
        "cidlistmatch",
        "conference_feature",
        "directory",
        "disa",
        "do_not_disturb",
        "dynamic_cid",
        "eavesdrop",
        "eavesdrop_feature",
        "edr",
        "fax_detect",
        "faxbox",
        "function",
        "group",
        "group_pickup",
        "group_pickup_feature",
        "hotdesk",
        "intercept",
        "intercept_feature",
        "intercom",
        "lookupcidname",
        "missed_call_alert",
        "move",
        "nomorobo",
        "notification",
        "page_group",
        "park",
        "prepend_cid",
        "privacy",
        "receive_fax",
        "ring_group_toggle",
        "route_to_cid",
        "set_alert_info",
        "skel",
        "temporal_route",
        "transfer",
    }
)

_compiled: dict[str, DataValidator] = {}


def data_schema(module: str) -> dict[str, Any]:
    """Our schema for the ``data`` of ``module`` (KeyError if the module is not supported)."""
    if module not in SUPPORTED_MODULES:
        raise KeyError(module)
    return load_schema(f"callflows/{module}.json")


def data_validator(module: str) -> DataValidator | None:
    """The compiled validator for ``module``'s ``data``, or None for a module we do not support.

    The validator fills schema defaults into the dict it is given and raises
    ``fastjsonschema.JsonSchemaValueException`` at the first broken rule.
    """
    validator = _compiled.get(module)
    if validator is None and module in SUPPORTED_MODULES:
        validator = fastjsonschema.compile(data_schema(module), use_default=True)
        _compiled[module] = validator
    return validator
