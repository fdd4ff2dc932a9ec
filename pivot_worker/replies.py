"""The replies one decided answer puts on the bus, in order (docs/kazoo-contract.md §3).

A flow is ``pivot.processing`` to the requester, then ``CHANNEL_PIVOT`` carrying it; a failure is
``pivot.failed``. ``processing`` is *at most once*: ``cf_exe`` runs a ``CHANNEL_PIVOT`` whether or
not ``cf_pivot`` saw ``processing``, so a worker that cannot tell whether it went out skips it,
while the final reply is published again until it is confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import envelope, names
from .errors import Reason
from .ledger import Answer


@dataclass(frozen=True, slots=True)
class Reply:
    exchange: str
    routing_key: str
    body: dict[str, Any]
    headers: dict[str, Any]
    at_most_once: bool = False


def _targeted(controller_queue: str, body: dict[str, Any], *, at_most_once: bool = False) -> Reply:
    target = names.reply_target(controller_queue)
    return Reply(names.EXCHANGE_TARGETED, target.routing_key, body, dict(target.headers()), at_most_once)


def replies_for(answer: Answer, node: str) -> list[Reply]:
    if answer.reason is not None:
        return [
            _targeted(answer.controller_queue, envelope.failed(answer.call_id, node, Reason(answer.reason)))
        ]
    assert answer.flow is not None
    return [
        _targeted(answer.controller_queue, envelope.processing(answer.call_id, node), at_most_once=True),
        Reply(
            names.EXCHANGE_CALLEVT,
            names.call_event_routing_key(names.EVENT_NAME_CHANNEL_PIVOT, answer.call_id),
            envelope.channel_pivot_json(answer.call_id, node, answer.flow.decode()),
            {names.HEADER_CALL_ID: answer.call_id},
        ),
    ]
