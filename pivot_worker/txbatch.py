"""Group commit of AMQP transactions on the consuming channel: replies and the ack, all or nothing.

Why transactions: with publisher confirms, a worker killed after the broker routed its
``CHANNEL_PIVOT`` but before its ack reached the broker gets the request served again by another
worker, and Kazoo's ``cf_exe`` runs the second flow (the caller's IVR restarts). In a transaction
the replies *and* the ack of the request commit together (AMQP 0-9-1 ``tx`` covers publishes and
acks on one channel): a worker that dies before the commit published nothing and its request comes
back; one that dies after it acked the request, which never comes back. A client crash cannot
split them, so there is no window left.

Why group commit: ``tx.commit`` is a round trip and commits everything written on the channel
since the previous one. Each request writes its frames (publishes, ack) under :attr:`gate`, so no
commit ever falls between two frames of one request; one commit then covers every request that
wrote while the previous commit was in flight. At load a commit carries many requests, so a request
costs less than one round trip of broker work.

Returns: replies are ``mandatory``. In transaction mode aiormq has no confirmation to attach a
``basic.return`` to and drops it with a log line; :func:`watch_return` registers one per reply
(a future under a negative delivery tag, which no broker ack can ever name), so a reply the broker
could not route is known once its commit is done (RabbitMQ sends the return before ``commit-ok``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

_return_tags = itertools.count(1)


class ReturnWatch:
    """Whether the broker returned one published message (unroutable)."""

    __slots__ = ("_channel", "_message_id", "_tag", "future")

    def __init__(self, channel: Any, message_id: str) -> None:
        self._channel = channel
        self._message_id = message_id
        self._tag = -next(_return_tags)
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        channel.message_id_delivery_tag[message_id] = self._tag
        channel.confirmations[self._tag] = self.future

    @property
    def returned(self) -> bool:
        return self.future.done() and not self.future.cancelled()

    def close(self) -> None:
        """Forget the registration (after the commit: a return, if any, has arrived by then)."""
        if self._channel.message_id_delivery_tag.get(self._message_id) == self._tag:
            del self._channel.message_id_delivery_tag[self._message_id]
        self._channel.confirmations.pop(self._tag, None)
        if not self.future.done():
            self.future.cancel()


def watch_return(channel: Any, message_id: str) -> ReturnWatch:
    return ReturnWatch(channel, message_id)


class TxBatcher:
    """Commits on one channel in ``tx`` mode; :meth:`commit` is safe to call from many tasks."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel  # aiormq's channel, already ``tx.select``-ed
        self.gate = asyncio.Lock()
        self._next: asyncio.Future[None] | None = None
        self._committer: asyncio.Task[None] | None = None
        self.commits = 0

    async def commit(self, write: Callable[[], Awaitable[None]]) -> None:
        """Write one request's frames, then wait until a commit covering them is done.

        Raises what the commit raised (the channel or connection failed): the outcome is then
        unknown, as with a publish whose confirm never came.
        """
        async with self.gate:
            try:
                await write()
            except BaseException:
                # Part of this request may be written, and the next commit would carry it without
                # the rest: close the channel, which discards everything uncommitted (the broker
                # requeues its requests; the other writers' commits fail and go the broker-failure
                # way), rather than commit a torn request.
                with contextlib.suppress(Exception):
                    await self.channel.close()
                raise
            if self._next is None:
                loop = asyncio.get_running_loop()
                self._next = loop.create_future()
                self._next.add_done_callback(_consume_outcome)
                self._committer = loop.create_task(self._commit())
            done = self._next
        await asyncio.shield(done)

    async def _commit(self) -> None:
        async with self.gate:  # FIFO: every writer that queued before us is in this commit
            done, self._next = self._next, None
            assert done is not None
            try:
                await self.channel.tx_commit()
            except BaseException as exc:
                done.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return
            self.commits += 1
            done.set_result(None)


def _consume_outcome(future: asyncio.Future[None]) -> None:
    """Mark a commit's error as seen: its waiters may all have been cancelled meanwhile."""
    if not future.cancelled():
        future.exception()
