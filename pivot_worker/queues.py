"""Bounded durable queues, declared so that an existing queue without the bounds keeps working.

A queue's arguments cannot change once it exists: declaring it again with other ``x-max-length`` /
``x-message-ttl`` makes the broker close the channel (PRECONDITION_FAILED). So the bounds are tried
on a throwaway channel first; a queue created by an older version keeps its arguments, the worker
says so once, and the README explains how to bound it with a policy instead.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from aio_pika.abc import AbstractConnection
from aiormq.exceptions import ChannelPreconditionFailed

logger = logging.getLogger(__name__)


def bounds(max_length: int, ttl_s: float) -> dict[str, Any]:
    """``x-max-length`` (oldest dropped first) and ``x-message-ttl``; 0 leaves a bound out."""
    arguments: dict[str, Any] = {}
    if max_length > 0:
        arguments["x-max-length"] = max_length
    if ttl_s > 0:
        arguments["x-message-ttl"] = int(ttl_s * 1000)
    return arguments


async def declare_bounded(connection: AbstractConnection, name: str, arguments: dict[str, Any]) -> bool:
    """Make sure durable queue ``name`` exists; ``True`` when it carries ``arguments``.

    ``False``: it existed already with other arguments (left as it is: declare it passively).
    """
    probe = await connection.channel()
    try:
        await probe.declare_queue(name, durable=True, arguments=arguments or None)
    except ChannelPreconditionFailed:
        logger.warning(
            "queue %s exists with other arguments than %s: left as it is; to bound it, apply a "
            "RabbitMQ policy (see the README, 'Queue type and bounds')",
            name,
            arguments,
        )
        return False
    finally:
        with contextlib.suppress(Exception):
            await probe.close()
    return True
