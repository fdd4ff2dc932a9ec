"""Serving one pivot_req, bus-free: bytes in, a :class:`Decision` out.

The order matters for the caller, who hears silence meanwhile:

1. decode and validate the message (a malformed one is dead-lettered, and answered ``failed`` at
   once when it names a call and a reply queue that a routing key can reach); a Call-ID too long
   for the ``CHANNEL_PIVOT`` routing key is answered ``failed`` before anything is fetched;
2. work out the deadline: the request's own timeout, capped by ``PIVOT_MAX_REQUEST_TIMEOUT_MS`` and
   by what is left before ``PIVOT_STALE_AFTER_MS`` (measured from the AMQP timestamp when present:
   Kazoo's Gregorian microseconds, read by ``amqp_compat``); a deadline that ran out at the stale
   point is a ``stale`` failure, not a ``timeout``;
3. fetch, classify, validate or translate; if that fails and the call or its account has a
   fallback URL (:mod:`.fallback`), do it again with the fallback, within the same deadline;
4. if the stale point passed meanwhile, answer ``failed`` and never ``CHANNEL_PIVOT``: a late flow
   would take over a call that already failed over.

Nothing here raises: every problem becomes a ``Failure`` with a stable reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from . import cdr, names, twiml
from .callflow import validate_flow
from .callflow.pivots import check_pivot_urls
from .contracts import validate_pivot_req
from .debug.redact import Redactor
from .errors import (
    FetchError,
    Finding,
    PivotError,
    Reason,
    RequestRejected,
    StaleRequest,
    TranslationError,
)
from .fallback import (
    FALLBACK_RESERVE_MS,
    MIN_FALLBACK_MS,
    NO_FALLBACK,
    FallbackTarget,
    FallbackUrls,
    error_params,
    error_url,
)
from .fetch import ACCEPT_KAZOO, ACCEPT_TWIML, Fetcher, FetchResult, HttpRequestSpec
from .netguard import AddressPolicy, check_url, shown_url
from .params import request_params
from .request import PivotRequest, reply_identity
from .response import classify, parse_kazoo_json, xml_for_parser
from .settings import Settings
from .trace import FallbackNote, Outcome, PivotTrace

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
        fallback_urls: FallbackUrls | None = None,
    ) -> None:
        """``fallback_urls`` defaults to ``PIVOT_FALLBACK_URLS_FILE`` (a bad file raises)."""
        self.settings = settings
        self.fetcher = fetcher
        self.policy: AddressPolicy = fetcher.policy
        self._now = wall_clock
        self._continuation_key = settings.continuation_key.encode() or _derived_key(settings)
        self.translations = twiml.TranslationMemo(settings.translation_memo)
        self.fallbacks = (
            fallback_urls if fallback_urls is not None else FallbackUrls.load(settings.fallback_urls_file)
        )
        self._redactor = Redactor(settings.redact_params)

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
        unreachable = names.reply_target_problem(request.controller_queue)
        if unreachable is not None:
            # No reply can be routed: dead-letter it, as a request that names no call.
            message = f"{unreachable}; nothing can be answered"
            trace.outcome, trace.reason = Outcome.DEAD_LETTERED, Reason.INVALID_REQUEST
            trace.message = message
            trace.total_ms = (self._now() - received_at) * 1000.0
            return Decision(
                Outcome.DEAD_LETTERED,
                reason=Reason.INVALID_REQUEST,
                message=message,
                trace=trace,
                dead_letter=True,
            )
        decision = Decision(
            Outcome.FAILED, call_id=request.call_id, controller_queue=request.controller_queue, trace=trace
        )
        stale_at = origin_time(timestamp, received_at) + self.settings.stale_after_ms / 1000.0
        try:
            _check_call_event_key(request.call_id)
            decision.flow = self._with_call_vars(request, await self._serve(request, trace, stale_at))
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
        if trace.fallback is not None:
            decision.message = trace.fallback.describe(decision.message)
        trace.outcome, trace.reason, trace.message = decision.outcome, decision.reason, decision.message
        trace.flow = decision.flow
        trace.total_ms = (self._now() - received_at) * 1000.0
        return decision

    def _rejected(self, msg: Any, exc: RequestRejected, received_at: float) -> Decision:
        """A pivot_req that breaks the contract: dead-lettered, and answered ``failed`` (and
        recorded for the debug API) when it still names a call and a reply queue."""
        identity = reply_identity(msg)
        unreachable = names.reply_target_problem(identity[1]) if identity is not None else None
        if identity is None or unreachable is not None:
            message = str(exc) if unreachable is None else f"{exc}; {unreachable}"
            return Decision(
                Outcome.DEAD_LETTERED, reason=Reason.INVALID_REQUEST, message=message, dead_letter=True
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
        at_stale_point = remaining_s < timeout_ms / 1000.0
        deadline = asyncio.get_running_loop().time() + min(timeout_ms / 1000.0, remaining_s)

        request, url, continuation = self._open_continuation(request)
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
            account_id=request.account_id,
        )
        fallback = self.fallbacks.for_request(request)
        if fallback is not None:
            return await self._serve_with_fallback(spec, fallback, deadline, request, continuation, trace)
        try:
            result = await self.fetcher.fetch(spec, deadline=deadline, trace=trace)
        except FetchError as exc:
            if at_stale_point and exc.reason is Reason.TIMEOUT:
                # The deadline was the stale point, not the request's timeout: cf_pivot has given up.
                raise StaleRequest(
                    f"no answer before the stale point (PIVOT_STALE_AFTER_MS="
                    f"{self.settings.stale_after_ms}), {round(remaining_s * 1000)} ms after receipt; "
                    f"the callflow has failed over: {exc}"
                ) from exc
            raise
        return self._document_to_flow(result, request, continuation, trace)

    def _open_continuation(
        self, request: PivotRequest
    ) -> tuple[PivotRequest, str, twiml.Continuation | None]:
        """The URL to request and the continuation: from the ``Voice-URI``'s token, or, for the
        operator's after-dial callflow, from the call's variables (the request then takes the
        method and formats the token names, as a nested pivot node would give them)."""
        key = self._continuation_key
        if not twiml.is_after_dial(request.voice_uri):
            url, continuation = twiml.open_continuation(request.voice_uri, key=key)
            return request, url, continuation
        continuation = twiml.open_after_dial(request.call, key=key)
        request = dataclasses.replace(
            request,
            method="post" if continuation.method == "post" else "get",
            request_format="kazoo" if continuation.request_format == "kazoo" else "twiml",
            body_format="json" if continuation.body_format == "json" else "form",
        )
        return request, continuation.url or continuation.base_url or request.voice_uri, continuation

    async def _serve_with_fallback(
        self,
        spec: HttpRequestSpec,
        fallback: FallbackTarget,
        deadline: float,
        request: PivotRequest,
        continuation: twiml.Continuation | None,
        trace: PivotTrace,
    ) -> dict[str, Any]:
        """The primary within the deadline less the fallback's reserve; on failure, the fallback.

        The fallback gets the same params plus the error, and whatever is left of the deadline; its
        answer is used as the primary's would have been. If it fails too (or too little time is left
        to try it), the primary's error is raised: the failure to fix is the primary's.
        """
        loop = asyncio.get_running_loop()
        reserve_s = min(FALLBACK_RESERVE_MS / 1000.0, (deadline - loop.time()) / 2)
        try:
            result = await self.fetcher.fetch(spec, deadline=deadline - reserve_s, trace=trace)
            return self._document_to_flow(result, request, continuation, trace)
        except PivotError as exc:
            if exc.reason in NO_FALLBACK:
                raise
            primary = exc
        note = trace.fallback = FallbackNote(
            url=shown_url(fallback.url),
            source=fallback.described,
            trigger=primary.reason,
            trigger_message=str(primary),
        )
        left_ms = round((deadline - loop.time()) * 1000)
        if left_ms < MIN_FALLBACK_MS:
            note.detail = f"only {max(left_ms, 0)} ms of the deadline left (needs {MIN_FALLBACK_MS})"
            raise primary
        fallback_spec = dataclasses.replace(
            spec,
            url=fallback.url,
            params={
                **spec.params,
                **error_params(request.request_format, primary.reason, error_url(spec.url, self._redactor)),
            },
        )
        primary_document = trace.content_type, trace.response_format, trace.sniffed
        first = len(trace.exchanges)
        try:
            try:
                result = await self.fetcher.fetch(fallback_spec, deadline=deadline, trace=trace)
            finally:
                for exchange in trace.exchanges[first:]:
                    exchange.role = "fallback"
            flow = self._document_to_flow(result, request, continuation, trace)
        except PivotError as exc:
            note.outcome, note.detail = "failed", f"{exc.reason.value}: {exc}"
            trace.content_type, trace.response_format, trace.sniffed = primary_document
            raise primary from exc
        note.outcome = "used"
        return flow

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
            flow = validate_flow(parse_kazoo_json(result.body, kind.charset))
            check_pivot_urls(flow, self._check_followup_url)  # as TwiML checks its callback URLs
            return flow
        body = xml_for_parser(result.body, kind.charset if kind.charset_declared else None)
        return self._translate_twiml(body, result.url, request, continuation, trace)

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
            after_dial_extension=self.settings.after_dial_extension,
        )
        translation = self.translations.translate(body, ctx)
        trace.warnings.extend(translation.warnings)
        return translation.flow

    def _check_followup_url(self, url: str) -> None:
        check_url(url, self.policy)

    def _with_call_vars(self, request: PivotRequest, flow: dict[str, Any]) -> dict[str, Any]:
        """The final flow (Kazoo JSON or translated TwiML, validated), wrapped in a ``set_variables``
        node when the call's ``Custom-Application-Vars`` need a change:

        * the ``CDR-URI``, stored on the channel for the CDR poster (``pivot_worker/cdr.py``);
        * a pending after-dial continuation, disarmed (``twiml.after_dial``): it belonged to a Dial
          whose flow has been left, and only a Dial in this flow may arm a new one.

        Not wrapped when the variables already hold these values (a nested pivot of a call whose
        earlier flow was wrapped).
        """
        variables = {**self._cdr_vars(request), **twiml.after_dial_disarmed(request.call)}
        if not variables or cdr.already_set(request.call, variables):
            return flow
        return cdr.wrap_flow(flow, variables)

    def _cdr_vars(self, request: PivotRequest) -> dict[str, str]:
        """What the CDR poster needs on the channel; a ``CDR-URI`` the worker would refuse to fetch
        is refused now (``blocked_address``, ``invalid_url``), located at ``/CDR-URI``."""
        if request.cdr_uri is None:
            return {}
        try:
            check_url(request.cdr_uri, self.policy)
        except PivotError as exc:
            raise TranslationError(
                "CDR-URI refused",
                reason=exc.reason,
                findings=[Finding(exc.reason.value, str(exc), "/CDR-URI")],
            ) from None
        return cdr.cdr_vars(request, request.cdr_uri)


def _check_call_event_key(call_id: str) -> None:
    """Refuse a Call-ID that cannot be routed as ``call.CHANNEL_PIVOT.<encoded call id>``.

    Checked before anything is fetched or published: otherwise ``processing`` would go out and the
    ``CHANNEL_PIVOT`` publish would then fail, leaving the call waiting for a flow.
    """
    key = names.call_event_routing_key(names.EVENT_NAME_CHANNEL_PIVOT, call_id)
    if not names.routing_key_fits(key):
        raise RequestRejected(
            f"Call-ID of {len(call_id)} characters encodes to {len(names.encode_key_part(call_id))} bytes, "
            f"so the CHANNEL_PIVOT routing key call.CHANNEL_PIVOT.<encoded call id> would be "
            f"{len(key.encode())} bytes; AMQP routing keys hold at most {names.MAX_ROUTING_KEY_BYTES}",
            reason=Reason.UNROUTABLE_CALL_ID,
        )


def _merge_followup(base: dict[str, Any], followup: dict[str, Any]) -> dict[str, Any]:
    """Kazoo's precedence (docs/kazoo-contract.md §4.3): format params win over request and user vars.

    The exceptions are what only the follow-up knows:

    * ``Digits``: only the translation knows which collection holds this step's digits, so its
      value (flat, as Twilio sends it) replaces the call's whole ``dtmf_collections`` object, and
      without one no stale digits are sent;
    * the call's status: the base params' first-request guess (``ringing``) is wrong once the
      call's flow has run.
    """
    merged = {**followup, **base}
    for name in _FOLLOWUP_WINS:
        merged.pop(name, None)
        if name in followup:
            merged[name] = followup[name]
    return merged


_FOLLOWUP_WINS = ("Digits", "CallStatus", "Call-Status")


def _derived_key(settings: Settings) -> bytes:
    """Fallback continuation key shared by every worker on the same broker account.

    All workers of a cluster share ``PIVOT_AMQP_URL``, so a key derived from it lets any of them
    verify another's continuation tokens. Operators should still set ``PIVOT_CONTINUATION_KEY``; the
    worker logs a warning at start-up when it is unset.
    """
    return hashlib.sha256(b"pivot-worker continuation key\x00" + settings.amqp_url.encode()).digest()
