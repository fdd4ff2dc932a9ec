"""Reuse a document's translation for the next call that gets the same document.

A developer's server usually answers the first request of every call with the same document (the
menu of an IVR): same bytes, same URL, same request settings. Its callflow is then the same for
every call but for the continuation tokens of its callbacks, which are signed for one call. The
memo keeps such a translation as JSON plus, for each callback node, where it sits and the payload
its token sealed. For the next call it loads the JSON and seals those payloads again for that
call: byte for byte the flow a fresh translation would give, for a fraction of the CPU
(README, Performance).

Never reused: a flow whose data names the call (``<Record>``'s recording location), a document that
failed (errors are re-translated each time, so every failure carries its own findings), a body
over :data:`MAX_MEMO_BODY` bytes. The memo holds at most ``size`` entries, least recently used
out first.

URL checks (``ctx.check_url``) ran when an entry was made and are not run again: one memo serves
one worker, whose address policy is fixed for its life.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import fields
from typing import Any

import orjson

from ..errors import Finding, PivotError
from .context import Translation, TwimlContext
from .continuation import TOKEN_PARAM, attach_token, call_prefix, payload_after_call, seal_json
from .state import State
from .translate import translate_document, translate_twiml

MAX_MEMO_BODY = 16 * 1024
"""Larger documents are translated every time: they are rarely static, and would crowd the memo."""


class _Callback:
    __slots__ = ("path", "payload_rest", "url")

    def __init__(self, path: tuple[str, ...], url: str, payload_rest: bytes) -> None:
        self.path = path
        """Child keys from the root to the callback's node."""
        self.url = url
        self.payload_rest = payload_rest
        """The token's payload after its call id (:func:`~.continuation.payload_after_call`)."""


class _Entry:
    """One translation, ready to be given to another call."""

    __slots__ = ("callbacks", "flow_json", "warnings")

    def __init__(
        self, flow_json: bytes, callbacks: tuple[_Callback, ...], warnings: tuple[Finding, ...]
    ) -> None:
        self.flow_json = flow_json
        self.callbacks = callbacks
        self.warnings = warnings

    @classmethod
    def of(cls, translation: Translation, st: State) -> _Entry | None:
        """The entry for a finished translation, or ``None`` when it must not be reused."""
        if st.call_bound:
            return None
        sealed = {id(callback.data): callback for callback in st.sealed}
        call_id = st.ctx.call_id
        callbacks: list[_Callback] = []
        stack: list[tuple[tuple[str, ...], dict[str, Any]]] = [((), translation.flow)]
        while stack:
            path, node = stack.pop()
            data = node.get("data")
            callback = sealed.pop(id(data), None)
            if callback is not None:
                callbacks.append(_Callback(path, callback.url, payload_after_call(callback.payload, call_id)))
            elif isinstance(data, dict) and TOKEN_PARAM in str(data.get("voice_url", "")):
                return None  # a token this entry could not seal again: never hand it to another call
            for key, child in node.get("children", {}).items():
                stack.append(((*path, key), child))
        return cls(orjson.dumps(translation.flow), tuple(callbacks), tuple(translation.warnings))

    def flow_for(self, call_id: str, key: bytes) -> dict[str, Any]:
        """A fresh copy of the flow, its callbacks sealed for ``call_id``.

        Raises ``PivotError`` when a token does not fit (a longer call id can push one over the
        limit); the caller then translates afresh, which reports it where it happens.
        """
        flow: dict[str, Any] = orjson.loads(self.flow_json)
        prefix = call_prefix(call_id)
        for callback in self.callbacks:
            node = flow
            for child_key in callback.path:
                node = node["children"][child_key]
            node["data"]["voice_url"] = attach_token(
                callback.url, seal_json(prefix + callback.payload_rest, key)
            )
        return flow


# The fields of TwimlContext the key leaves out, each for a reason. Every other field is part of
# the key, so a field added later keys the memo by itself instead of handing one call's flow to
# another; tests/unit/twiml/test_memo.py fails until a new field's place is decided.
NOT_IN_KEY = {
    "call_id": "the one thing a reused flow changes: its tokens are sealed again for the call",
    "continuation": "in the key as what shapes the flow: its iteration and its <Set> variables",
    "check_url": "the worker's address policy, one per process",
}
_keyed = operator.attrgetter(*(f.name for f in fields(TwimlContext) if f.name not in NOT_IN_KEY))


def _key(body: bytes, ctx: TwimlContext) -> Hashable:
    """Everything a translation depends on but the call id (see :class:`TwimlContext`)."""
    continuation = ctx.continuation
    variables = tuple(continuation.variables.items()) if continuation is not None else ()
    return (body, _keyed(ctx), ctx.iteration, variables)


class TranslationMemo:
    """:func:`~pivot_worker.twiml.translate.translate_twiml` with reuse across calls."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        """Translations served from the memo."""
        self.misses = 0
        """Translations made afresh (also those that could not be kept)."""
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def translate(self, body: bytes, ctx: TwimlContext) -> Translation:
        """The same result as ``translate_twiml(body, ctx)``, and the same errors."""
        if self.size <= 0 or len(body) > MAX_MEMO_BODY:
            return translate_twiml(body, ctx)
        key = _key(body, ctx)
        entry = self._entries.get(key)
        if entry is not None:
            try:
                flow = entry.flow_for(ctx.call_id, ctx.continuation_key)
            except PivotError:
                pass
            else:
                self._entries.move_to_end(key)
                self.hits += 1
                return Translation(flow=flow, warnings=list(entry.warnings))
        self.misses += 1
        translation, st = translate_document(body, ctx)
        made = _Entry.of(translation, st)
        if made is not None and entry is None:
            self._entries[key] = made
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return translation
