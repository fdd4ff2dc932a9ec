"""Serving one pivot_req, bus-free: bytes in, a :class:`Decision` out.

The order matters for the caller, who hears silence meanwhile:

1. decode and validate the message (a malformed one is dead-lettered, and answered ``failed`` at
   once when it names a call and a reply queue);
2. work out the deadline: the request's own timeout, capped by ``PIVOT_MAX_REQUEST_TIMEOUT_MS`` and
   by what is left before ``PIVOT_STALE_AFTER_MS`` (measured from the AMQP timestamp when present);
3. fetch, classify, validate or translate;
4. if the stale point passed meanwhile, answer ``failed`` and never ``CHANNEL_PIVOT``: a late flow
   would take over a call that already failed over.

Nothing here raises: every problem becomes a ``Failure`` with a stable reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from . import twiml
from .callflow import validate_flow
from .contracts import validate_pivot_req
from .errors import PivotError, Reason, RequestRejected, StaleRequest, TranslationError
from .fetch import ACCEPT_KAZOO, ACCEPT_TWIML, Fetcher, FetchResult, HttpRequestSpec
from .netguard import AddressPolicy, check_url
from .params import request_params
from .request import PivotRequest, reply_identity
from .response import classify, parse_kazoo_json
from .settings import Settings
from .trace import Outcome, PivotTrace

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Decision:
    """What the worker must put on the bus for one message, and the trace that explains why."""

    outcome: Outcome
    call_id: str | None = None
    controller_queue: str | None = None
    flow: dict[str, Any] | None = None
    reason: Reason | None = None
    message: str = ""
    trace: PivotTrace | None = None
    dead_letter: bool = False


def origin_time(timestamp: datetime | None, received_at: float) -> float:
    """Wall-clock start of the request's life: the AMQP timestamp unless absent or in the future."""
    if timestamp is None:
        return received_at
    sent = timestamp.timestamp()
    return sent if sent <= received_at + 1.0 else received_at


class Pipeline:
    """Holds the per-process pieces (HTTP client, address policy); ``handle`` is concurrency-safe."""

    def __init__(
        self,
        settings: Settings,
        fetcher: Fetcher,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.policy: AddressPolicy = fetcher.policy
        self._now = wall_clock
        self._continuation_key = settings.continuation_key.encode() or _derived_key(settings)
        self.translations = twiml.TranslationMemo(settings.translation_memo)

    async def handle(self, body: bytes, timestamp: datetime | None = None) -> Decision:
        received_at = self._now()
        try:
            msg = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return Decision(
                Outcome.DEAD_LETTERED,
                reason=Reason.INVALID_REQUEST,
                message=f"pivot_req is not JSON: {exc}",
                dead_letter=True,
            )
        try:
            validate_pivot_req(msg)
        except RequestRejected as exc:
            return self._rejected(msg, exc, received_at)
        request = PivotRequest.from_message(msg)
        trace = PivotTrace(
            call_id=request.call_id,
            account_id=request.account_id,
            debug=request.debug,
            node=self.settings.node,
            voice_uri=request.voice_uri,
            method=request.method,
            request_format=request.request_format,
            received_at=received_at,
        )
        decision = Decision(
            Outcome.FAILED, call_id=request.call_id, controller_queue=request.controller_queue, trace=trace
        )
        stale_at = origin_time(timestamp, received_at) + self.settings.stale_after_ms / 1000.0
        try:
            decision.flow = await self._serve(request, trace, stale_at)
            if self._now() >= stale_at:
                raise StaleRequest(
                    f"answer ready {round((self._now() - stale_at) * 1000)} ms after the stale point "
                    f"(PIVOT_STALE_AFTER_MS={self.settings.stale_after_ms}); the callflow has failed over"
                )
            decision.outcome = Outcome.SUCCESS
        except PivotError as exc:
            decision.reason, decision.message = exc.reason, str(exc)
            if isinstance(exc, TranslationError):
                trace.errors.extend(exc.findings)
                trace.warnings.extend(exc.warnings)
        except Exception as exc:  # a bug must still answer the caller
            logger.exception("internal error serving call %s", request.call_id)
            decision.reason, decision.message = Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"
        trace.outcome, trace.reason, trace.message = decision.outcome, decision.reason, decision.message
        trace.flow = decision.flow
        trace.total_ms = (self._now() - received_at) * 1000.0
        return decision

    def _rejected(self, msg: Any, exc: RequestRejected, received_at: float) -> Decision:
        """A pivot_req that breaks the contract: dead-lettered, and answered ``failed`` (and
        recorded for the debug API) when it still names a call and a reply queue."""
        identity = reply_identity(msg)
        if identity is None:
            return Decision(
                Outcome.DEAD_LETTERED, reason=Reason.INVALID_REQUEST, message=str(exc), dead_letter=True
            )
        call_id, queue = identity
        call = msg["Call"]
        account = call.get("Account-ID")
        trace = PivotTrace(
            call_id=call_id,
            account_id=account if isinstance(account, str) else None,
            debug=False,
            node=self.settings.node,
            voice_uri=str(msg.get("Voice-URI", "")),
            method=str(msg.get("HTTP-Method", "get")).lower(),
            request_format=str(msg.get("Request-Format", "twiml")),
            received_at=received_at,
            outcome=Outcome.FAILED,
            reason=Reason.INVALID_REQUEST,
            message=str(exc),
        )
        return Decision(
            Outcome.FAILED,
            call_id=call_id,
            controller_queue=queue,
            reason=Reason.INVALID_REQUEST,
            message=str(exc),
            trace=trace,
            dead_letter=True,
        )

    async def _serve(self, request: PivotRequest, trace: PivotTrace, stale_at: float) -> dict[str, Any]:
        remaining_s = stale_at - self._now()
        if remaining_s <= 0:
            raise StaleRequest(
                f"request is {round(-remaining_s * 1000 + self.settings.stale_after_ms)} ms old, past "
                f"PIVOT_STALE_AFTER_MS={self.settings.stale_after_ms}; the callflow has failed over"
            )
        timeout_ms = min(
            request.timeout_ms or self.settings.request_timeout_ms, self.settings.max_request_timeout_ms
        )
        deadline = asyncio.get_running_loop().time() + min(timeout_ms / 1000.0, remaining_s)

        url, continuation = twiml.open_continuation(request.voice_uri, key=self._continuation_key)
        params = request_params(request.call, request.request_format)
        if continuation is not None:
            followup = twiml.plan_followup(continuation, request.call, request.request_format)
            trace.iteration = followup.iteration
            params = _merge_followup(params, followup.params)
            if followup.local_document is not None:
                trace.response_format = "twiml"
                base = followup.document_url or url
                return self._translate_twiml(followup.local_document, base, request, continuation, trace)

        spec = HttpRequestSpec(
            method=request.method,
            url=url,
            params=params,
            body_format=request.body_format,
            accept=ACCEPT_KAZOO if request.request_format == "kazoo" else ACCEPT_TWIML,
        )
        result = await self.fetcher.fetch(spec, deadline=deadline, trace=trace)
        return self._document_to_flow(result, request, continuation, trace)

    def _document_to_flow(
        self,
        result: FetchResult,
        request: PivotRequest,
        continuation: twiml.Continuation | None,
        trace: PivotTrace,
    ) -> dict[str, Any]:
        trace.content_type = result.content_type
        kind = classify(result.content_type, result.body)
        trace.response_format, trace.sniffed = kind.format, kind.sniffed
        if kind.format == "kazoo":
            return validate_flow(parse_kazoo_json(result.body, kind.charset))
        return self._translate_twiml(result.body, result.url, request, continuation, trace)

    def _translate_twiml(
        self,
        body: bytes,
        document_url: str,
        request: PivotRequest,
        continuation: twiml.Continuation | None,
        trace: PivotTrace,
    ) -> dict[str, Any]:
        ctx = twiml.TwimlContext(
            document_url=document_url,
            request_format=request.request_format,
            request_body_format=request.body_format,
            call_id=request.call_id,
            continuation=continuation,
            continuation_key=self._continuation_key,
            max_iterations=self.settings.max_iterations,
            recording_url=self.settings.recording_url,
            check_url=self._check_followup_url,
            account_id=request.account_id or "",
            debug=request.debug,
            request_timeout_ms=request.timeout_ms,
        )
        translation = self.translations.translate(body, ctx)
        trace.warnings.extend(translation.warnings)
        return translation.flow

    def _check_followup_url(self, url: str) -> None:
        check_url(url, self.policy)


def _merge_followup(base: dict[str, Any], followup: dict[str, Any]) -> dict[str, Any]:
    """Kazoo's precedence (kazoo-wire.md 4.3): format params win over request and user vars.

    ``Digits`` is the exception: on a follow-up only the translation knows which collection holds
    this step's digits, so its value (flat, as Twilio sends it) replaces the call's whole
    ``dtmf_collections`` object, and without one no stale digits are sent.
    """
    merged = {**followup, **base}
    merged.pop("Digits", None)
    if "Digits" in followup:
        merged["Digits"] = followup["Digits"]
    return merged


def _derived_key(settings: Settings) -> bytes:
    """Fallback continuation key shared by every worker on the same broker account.

    All workers of a cluster share ``PIVOT_AMQP_URL``, so a key derived from it lets any of them
    verify another's continuation tokens. Operators should still set ``PIVOT_CONTINUATION_KEY``; the
    worker logs a warning at start-up when it is unset.
    """
    return hashlib.sha256(b"pivot-worker continuation key\x00" + settings.amqp_url.encode()).digest()
