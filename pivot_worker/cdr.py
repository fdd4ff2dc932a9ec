"""Call records for ``CDR-URI``, without any worker holding a call (README, "CDR callbacks").

Two halves, linked only by the call's channel:

* **When a pivot is answered** (:func:`wrap_flow`, called once by the pipeline): the flow that goes
  out in ``CHANNEL_PIVOT`` is wrapped in a Kazoo ``set_variables`` node that stores the CDR URL and
  what posting it needs in the call's ``Custom-Application-Vars`` (:data:`CAV_KEYS`), with the
  original flow as its ``_`` child. Kazoo keeps those variables on the channel for the rest of the
  call, so no worker has to remember anything.
* **When the call ends** (:class:`CdrPoster`, in every ``pivot-worker run`` unless ``PIVOT_CDR=off``):
  a consumer on the durable shared queue ``<PIVOT_QUEUE>.cdr``, bound to ``callevt`` with
  ``call.CHANNEL_DESTROY.*``, receives every ``CHANNEL_DESTROY`` of the platform, acks at once those
  that do not carry ``pivot_cdr_url``, and POSTs the others (:func:`cdr_post`: the event minus
  ``Custom-Channel-Vars`` and Kazoo's bus headers, keeping ``Call-ID`` and ``Account-ID``), signed
  when the account has signing keys, through the address policy, retried with exponential backoff,
  and acked only once the POST succeeded or the retries were used up. A process killed meanwhile
  leaves the message unacked and the broker gives it to another worker: at-least-once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiohttp
import orjson
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection, ExchangeType
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter
from yarl import URL

from . import USER_AGENT, names
from .errors import FetchError, Reason
from .formencode import encode_form
from .netguard import AddressPolicy, BlockedAddressError, GuardedResolver, check_url, shown_url
from .params import TWIML_API_VERSION
from .request import PivotRequest
from .settings import Settings, redact_url
from .signing import SigningKeys, sign_request

logger = logging.getLogger(__name__)
cdr_log = logging.getLogger("pivot_worker.cdr")

# -- what the flow stores on the channel ----------------------------------------------------------

CAV_URL = "pivot_cdr_url"
CAV_ACCOUNT_ID = "pivot_cdr_account_id"
CAV_REQUEST_FORMAT = "pivot_cdr_request_format"
CAV_BODY_FORMAT = "pivot_cdr_body_format"
CAV_KEYS = (CAV_URL, CAV_ACCOUNT_ID, CAV_REQUEST_FORMAT, CAV_BODY_FORMAT)

CHANNEL_DESTROY = "CHANNEL_DESTROY"
CDR_BINDING = names.call_event_routing_key(CHANNEL_DESTROY, "*")  # call.CHANNEL_DESTROY.*
MAX_IN_FLIGHT = 100  # CDR posts per process; also the consumer's prefetch
POST_TIMEOUT_S = 10.0
ATTEMPTS = 5
BACKOFF_S = 4.0  # waits 4, 8, 16, 32 s (+ up to 1 s jitter each): five attempts over about a minute
STOP_DRAIN_S = 2.0


def cdr_vars(request: PivotRequest, cdr_url: str) -> dict[str, str]:
    """The ``Custom-Application-Vars`` the wrapper sets: everything the poster needs, as strings
    (Kazoo keeps application variables as channel variables, i.e. text)."""
    variables = {
        CAV_URL: cdr_url,
        CAV_ACCOUNT_ID: request.account_id or "",
        CAV_REQUEST_FORMAT: request.request_format,
        CAV_BODY_FORMAT: request.body_format,
    }
    return {key: value for key, value in variables.items() if value}  # Kazoo drops empty values


def already_set(call: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    """True when the call's ``Custom-Application-Vars`` already hold exactly ``wanted`` (a nested
    pivot of a call whose first flow was wrapped): wrapping again would only set them again."""
    cavs = call.get("Custom-Application-Vars")
    if not isinstance(cavs, Mapping):
        return False
    return all(cavs.get(key, "") == value for key, value in wanted.items())


def wrap_flow(flow: dict[str, Any], variables: Mapping[str, str]) -> dict[str, Any]:
    """``flow`` as the ``_`` child of a ``set_variables`` node storing ``variables``.

    The node's ``data`` is already what Kazoo's schema fills in (``custom_application_vars`` is the
    only key with a default), so the wrapped flow stays valid as a whole.
    """
    return {
        "module": "set_variables",
        "data": {"custom_application_vars": dict(variables)},
        "children": {"_": flow},
    }


# -- what is posted -------------------------------------------------------------------------------

# kz_api:remove_defaults/1 (docs/kazoo-contract.md §2.1): Kazoo strips these bus headers from the
# CDR, Call-ID and Account-ID included; we keep those two, which say whose call the record is.
_BUS_HEADERS = frozenset(
    {
        "App-Name", "App-Version", "Event-Category", "Event-Name", "Msg-ID", "Node", "Server-ID",
        "Access-Group", "AMQP-Broker", "AMQP-Broker-Zone", "Defer-Response", "Deliver-To-PID",
        "Destination-Server", "Geo-Location", "Log-ID", "Raw-Headers", "Reply-To-PID",
        "Request-From-PID", "Server-Queue-ID",
    }
)  # fmt: skip
_DROPPED = _BUS_HEADERS | {"Custom-Channel-Vars"}

# Twilio's final call statuses by Kazoo hangup cause; anything else that hung up is "completed".
_TWILIO_STATUS = {
    "USER_BUSY": "busy",
    "NO_ANSWER": "no-answer",
    "NO_USER_RESPONSE": "no-answer",
    "ORIGINATOR_CANCEL": "canceled",
    "CALL_REJECTED": "failed",
    "UNALLOCATED_NUMBER": "failed",
}


@dataclass(frozen=True, slots=True)
class CdrPost:
    """One call record to post, read from a ``CHANNEL_DESTROY`` whose call set our variables."""

    url: str
    call_id: str | None
    account_id: str | None
    request_format: str
    body_format: str
    fields: dict[str, Any]

    def encoded(self) -> tuple[bytes, str]:
        """The body and its ``Content-Type``: JSON when the pivot asked for JSON bodies, else a form."""
        if self.body_format == "json":
            return orjson.dumps(self.fields), "application/json"
        return encode_form(self.fields).encode(), "application/x-www-form-urlencoded"


def cdr_post(event: object) -> CdrPost | None:
    """The record to post for a ``CHANNEL_DESTROY``, or ``None`` when its call asked for none.

    The fields are the event's, minus ``Custom-Channel-Vars``, Kazoo's bus headers and our own
    ``pivot_cdr_*`` variables, keeping ``Call-ID`` and ``Account-ID`` (the latter from the stored
    variable when the event has none). A ``twiml`` call also gets Twilio's status-callback names
    (``CallSid``, ``AccountSid``, ``CallStatus``, ``CallDuration``, ``ApiVersion``).
    """
    if not isinstance(event, dict):
        return None
    cavs = event.get("Custom-Application-Vars")
    if not isinstance(cavs, dict):
        return None
    url = cavs.get(CAV_URL)
    if not isinstance(url, str) or not url:
        return None
    fields: dict[str, Any] = {k: v for k, v in event.items() if k not in _DROPPED}
    fields["Custom-Application-Vars"] = {k: v for k, v in cavs.items() if k not in CAV_KEYS}
    call_id = event.get("Call-ID") if isinstance(event.get("Call-ID"), str) else None
    account = event.get("Account-ID")
    if not isinstance(account, str) or not account:
        stored = cavs.get(CAV_ACCOUNT_ID)
        account = stored if isinstance(stored, str) and stored else None
    if account is not None:
        fields["Account-ID"] = account
    request_format = "kazoo" if cavs.get(CAV_REQUEST_FORMAT) == "kazoo" else "twiml"
    if request_format == "twiml":
        cause = event.get("Hangup-Cause")
        duration = event.get("Billing-Seconds", event.get("Duration-Seconds"))
        twilio = {
            "CallSid": call_id,
            "AccountSid": account,
            "CallStatus": _TWILIO_STATUS.get(cause, "completed") if isinstance(cause, str) else "completed",
            "CallDuration": duration,
            "ApiVersion": TWIML_API_VERSION,
        }
        fields.update({k: v for k, v in twilio.items() if v is not None and k not in fields})
    body_format = "json" if cavs.get(CAV_BODY_FORMAT) == "json" else "form"
    return CdrPost(url, call_id, account, request_format, body_format, fields)


# -- posting --------------------------------------------------------------------------------------


class _Retryable(Exception):
    """A failure worth another attempt: connect error, timeout, 5xx, 429."""


class _Permanent(Exception):
    """A failure no retry can fix: blocked or invalid URL, a 4xx other than 429, a redirect."""


class CdrPoster:
    """The ``CHANNEL_DESTROY`` consumer and CDR poster of one process (own connection and channel)."""

    def __init__(
        self,
        settings: Settings,
        policy: AddressPolicy | None = None,
        signing: SigningKeys | None = None,
        *,
        attempts: int = ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        timeout_s: float = POST_TIMEOUT_S,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        """``policy`` and ``signing`` are normally the worker's own (one address policy; signing
        keys reloaded on SIGHUP for both)."""
        self.settings = settings
        self.policy = policy if policy is not None else AddressPolicy(settings.allow_networks)
        self.signing = signing if signing is not None else SigningKeys(settings.signing_keys_file)
        self.queue_name = f"{settings.queue}.cdr"
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self._connection: AbstractRobustConnection | None = None
        self._http: aiohttp.ClientSession | None = None
        self._consumer: tuple[aio_pika.abc.AbstractQueue, str] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Open the HTTP client, connect, declare ``<queue>.cdr`` and its binding, start consuming."""
        self.open_http()
        url = self.settings.amqp_urls[0]
        self._connection = await aio_pika.connect_robust(
            url,
            reconnect_interval=0.5,
            client_properties={"connection_name": f"pivot-worker cdr {self.settings.node}"},
        )
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=self.max_in_flight)
        # Declared exactly as Kazoo declares it (docs/kazoo-contract.md §1.1).
        callevt = await channel.declare_exchange(
            names.EXCHANGE_CALLEVT, ExchangeType.TOPIC, durable=False, auto_delete=False
        )
        queue = await channel.declare_queue(self.queue_name, durable=True)
        await queue.bind(callevt, CDR_BINDING)
        self._consumer = (queue, await queue.consume(self._deliver))
        logging.getLogger("pivot_worker.lifecycle").info(
            "posting call records from %s on %s (%s, at most %d in flight)",
            self.queue_name,
            redact_url(url),
            CDR_BINDING,
            self.max_in_flight,
        )

    def open_http(self) -> None:
        """The HTTP client alone (what :meth:`deliver` needs); :meth:`start` opens it too."""
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.max_in_flight, resolver=GuardedResolver(self.policy)
                ),
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),  # one developer's cookies never reach another
                trust_env=False,
            )

    async def stop(self) -> None:
        """Stop consuming; posts still running after a short drain are cancelled, and their
        messages, never acked, go back to the broker when the connection closes."""
        if self._consumer is not None:
            queue, tag = self._consumer
            with contextlib.suppress(Exception):
                await asyncio.wait_for(queue.cancel(tag), 2.0)
            self._consumer = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=STOP_DRAIN_S)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), 2.0)
            self._connection = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _deliver(self, message: AbstractIncomingMessage) -> None:
        # Every CHANNEL_DESTROY of the platform comes here: most are not ours, ack them at once.
        if CAV_URL.encode() not in message.body:
            await _ack(message)
            return
        task = asyncio.create_task(self.handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def handle(self, message: AbstractIncomingMessage) -> None:
        """Post the record of one event, then ack it (also when it was not ours or undeliverable)."""
        try:
            try:
                event = orjson.loads(message.body)
            except orjson.JSONDecodeError:
                event = None
            post = cdr_post(event)
            if post is not None:
                await self.deliver(post)
        except Exception:  # a bug: logged, and acked so that it can never loop
            logger.exception("internal error posting a call record; dropping it")
        await _ack(message)

    async def deliver(self, post: CdrPost) -> bool:
        """POST ``post`` with retries; ``True`` once the server took it, ``False`` after giving up
        (logged with the reason)."""
        started = time.monotonic()
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(
                multiplier=self.backoff_s, exp_base=2, max=self.backoff_s * 8, jitter=self.backoff_s / 4
            ),
            reraise=True,
        )
        attempt_number = status = 0
        try:
            async for attempt in retrying:
                with attempt:
                    attempt_number = attempt.retry_state.attempt_number
                    status = await self._post_once(post)
        except (_Retryable, _Permanent) as exc:
            cdr_log.warning(
                "call_id=%s account_id=%s cdr not delivered after %d attempt%s in %.1f s: %s",
                post.call_id or "-",
                post.account_id or "-",
                attempt_number,
                "" if attempt_number == 1 else "s",
                time.monotonic() - started,
                exc,
            )
            return False
        cdr_log.info(
            "call_id=%s cdr delivered status=%d attempts=%d ms=%.0f",
            post.call_id or "-",
            status,
            attempt_number,
            (time.monotonic() - started) * 1000.0,
        )
        return True

    async def _post_once(self, post: CdrPost) -> int:
        if self._http is None:
            raise RuntimeError("CdrPoster.start() was not awaited")
        body, content_type = post.encoded()
        url = post.url
        headers = {"Content-Type": content_type, "User-Agent": USER_AGENT}
        keys = self.signing.keys_for(post.account_id)
        if keys:  # the same two signatures as every other request of the account
            url, signature = sign_request(keys[0], "POST", url, body, content_type)
            headers.update(signature)
        try:
            target = check_url(URL(url, encoded=True), self.policy)
        except (FetchError, ValueError) as exc:
            raise _Permanent(str(exc)) from None
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self._http.post(target, data=body, headers=headers, allow_redirects=False) as resp,
            ):
                status = resp.status
                resp.release()
        except TimeoutError:
            raise _Retryable(f"no answer from {shown_url(target)} within {self.timeout_s:g} s") from None
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, BlockedAddressError):
                raise _Permanent(f"{Reason.BLOCKED_ADDRESS.value}: {exc.os_error}") from None
            raise _Retryable(f"DNS lookup failed: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None
        if status == 429 or status >= 500:
            raise _Retryable(f"POST {shown_url(target)} answered HTTP {status}")
        if not 200 <= status < 300:
            raise _Permanent(f"POST {shown_url(target)} answered HTTP {status}")
        return status


async def _ack(message: AbstractIncomingMessage) -> None:
    """Ack on the channel that delivered it; if that channel is gone, the broker already
    requeued the message (it comes back: at-least-once), so there is nothing left to do."""
    try:
        await message.ack()
    except Exception as exc:
        logger.debug(
            "ack of a CHANNEL_DESTROY failed (%s: %s); the broker redelivers it", type(exc).__name__, exc
        )
