"""The HTTP request to the developer's server: safe addresses, one deadline, safe retries, bounded bodies.

Client choice: aiohttp, one shared session per process. Measured on the reference machine before the
worker was written (2 vCPU, uvloop, keep-alive GETs with 21 params to a local server): httpx 0.28 spent
606 µs of CPU per request against aiohttp's 133 µs with one request in flight, and fell to about 75
requests/s at 100 in flight (httpcore's pool), far below the worker's hundreds of requests in flight.
The README ("HTTP client: aiohttp, by the numbers") and ``bench/http_clients.py`` have the figures.
Two sessions share the policy: a plain one for the hot path and one with aiohttp tracing
hooks, used only for ``Debug`` requests, that measures DNS/connect/first-byte timings.

Retries (tenacity) happen only inside the request's own deadline and only where safe: connect
errors, 502/503/504 and 429 (honouring a short ``Retry-After``) for any method, read errors for GET.
The first attempt runs outside tenacity, so the common case pays nothing for it.

Isolation between developers' hosts: every fetch passes the host's circuit breaker
(:mod:`.breaker`; timeouts and connect errors open it) and bulkhead (:mod:`.bulkhead`; at most
``PIVOT_HOST_CONCURRENCY`` in flight), keyed by the origin of the URL the request starts from. The
connection pool is as large as the requests a process may have in flight, so it never queues them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, stop_any
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential_jitter
from yarl import URL

from . import USER_AGENT
from .breaker import Breakers, Ticket
from .bulkhead import Bulkhead
from .errors import FetchError, PivotError, Reason, TransientFetchError
from .formencode import encode_form, merge_query
from .netguard import AddressPolicy, BlockedAddressError, GuardedResolver, check_url, shown_url
from .request import BodyFormat, Method
from .settings import Settings
from .signing import SigningKeys, sign_request
from .trace import HttpExchange, PivotTrace

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
MAX_RETRY_AFTER_S = 2.0
_CHUNK = 16 * 1024

ACCEPT_TWIML = "application/xml, text/xml;q=0.9, application/json;q=0.5"
ACCEPT_KAZOO = "application/json, application/xml;q=0.5, text/xml;q=0.5"

# What a fetch's failure says about its host, for the circuit breaker: these mean the host did not
# answer at all; these others mean it did answer (so it is up); anything else says nothing.
_HOST_DOWN = frozenset({Reason.TIMEOUT, Reason.CONNECT_ERROR})
_HOST_ANSWERED = frozenset({Reason.HTTP_STATUS, Reason.TOO_MANY_REDIRECTS, Reason.RESPONSE_TOO_LARGE})


@dataclass(frozen=True, slots=True)
class HttpRequestSpec:
    """What to send: the worker decides method, URL, params and body format from the pivot_req."""

    method: Method
    url: str
    params: Mapping[str, Any]
    body_format: BodyFormat
    accept: str
    account_id: str | None = None  # whose PIVOT_SIGNING_KEYS_FILE keys sign the request, if any


@dataclass(frozen=True, slots=True)
class FetchResult:
    """An answer that carries a script. ``url`` is the document's own URL, the base its relative
    references resolve against: the developer's URL as written (for GET, without the call's params
    the worker added to its query, as Kazoo keeps ``voice_uri``), or the last redirect's target."""

    status: int
    url: str
    content_type: str | None
    body: bytes


def _encode(spec: HttpRequestSpec) -> tuple[str, bytes, dict[str, str]]:
    headers = {"Accept": spec.accept, "User-Agent": USER_AGENT}
    if spec.method == "get":
        return merge_query(spec.url, spec.params), b"", headers
    if spec.body_format == "json":
        headers["Content-Type"] = "application/json"
        return spec.url, orjson.dumps(spec.params), headers
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return spec.url, encode_form(spec.params).encode(), headers


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date: too far in the future for a live call anyway
    return seconds if 0 <= seconds <= MAX_RETRY_AFTER_S else None


def _map_client_error(exc: BaseException, method: str) -> PivotError:
    """Turn an aiohttp/OS error into a failure with a stable reason; transient ones are retryable."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        if isinstance(exc.os_error, BlockedAddressError):
            return FetchError(str(exc.os_error), reason=Reason.BLOCKED_ADDRESS)
        return FetchError(f"DNS lookup failed: {text}", reason=Reason.DNS_ERROR)
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl.SSLError):
        return FetchError(f"TLS failed: {text}", reason=Reason.TLS_ERROR)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return TransientFetchError(f"connect failed: {text}", reason=Reason.CONNECT_ERROR)
    if isinstance(exc, aiohttp.InvalidURL):
        return FetchError(f"invalid URL: {text}", reason=Reason.INVALID_URL)
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return FetchError(f"timed out: {text}", reason=Reason.TIMEOUT)
    cls = TransientFetchError if method == "GET" else FetchError
    return cls(f"reading the response failed: {text}", reason=Reason.READ_ERROR)


class _Attempt:
    """One request with its redirect hops; records each hop on the trace."""

    def __init__(self, fetcher: Fetcher, spec: HttpRequestSpec, trace: PivotTrace, number: int) -> None:
        self.fetcher = fetcher
        self.spec = spec
        self.trace = trace
        self.number = number

    async def run(self) -> FetchResult:
        url, body, headers = _encode(self.spec)
        keys = self.fetcher.signing.keys_for(self.spec.account_id)
        document_url = self.spec.url
        method = self.spec.method.upper()
        seen: set[str] = set()
        for _hop in range(self.fetcher.settings.max_redirects + 1):
            sent_url, sent_headers = url, headers
            if keys:  # signed per hop: a redirect may change the URL, the method and the body
                sent_url, signature = sign_request(keys[0], method, url, body, headers.get("Content-Type"))
                sent_headers = {**headers, **signature}
            exchange = HttpExchange(
                method=method,
                url=sent_url,
                request_headers=sent_headers,
                request_body=body,
                attempt=self.number,
            )
            self.trace.exchanges.append(exchange)
            try:
                result, location = await self._one(
                    exchange, method, sent_url, body, sent_headers, document_url
                )
            except PivotError as exc:
                exchange.error_reason, exchange.error = exc.reason, str(exc)
                raise
            if location is None:
                return result
            seen.add(url)
            url = document_url = location
            if url in seen:
                raise FetchError(f"redirect loop back to {shown_url(url)}", reason=Reason.TOO_MANY_REDIRECTS)
            if result.status == 303 or (result.status in (301, 302) and method == "POST"):
                method, body = "GET", b""
                headers = {k: v for k, v in headers.items() if k != "Content-Type"}
        raise FetchError(
            f"more than {self.fetcher.settings.max_redirects} redirects (PIVOT_MAX_REDIRECTS)",
            reason=Reason.TOO_MANY_REDIRECTS,
        )

    async def _one(
        self,
        exchange: HttpExchange,
        method: str,
        url: str,
        body: bytes,
        headers: dict[str, str],
        document_url: str,
    ) -> tuple[FetchResult, str | None]:
        """One HTTP exchange: the result (whose ``url`` is ``document_url``) or the redirect target."""
        fetcher = self.fetcher
        target = check_url(URL(url, encoded=True), fetcher.policy)
        timings = exchange.timings
        session = fetcher.traced_session if self.trace.debug else fetcher.session
        ctx = SimpleNamespace(timings=timings, started=time.perf_counter()) if self.trace.debug else None
        started = time.perf_counter()
        try:
            async with session.request(
                method,
                target,
                data=body or None,
                headers=headers,
                allow_redirects=False,
                trace_request_ctx=ctx,
            ) as resp:
                exchange.status = resp.status
                if self.trace.debug or not 200 <= resp.status < 300:
                    exchange.response_headers = list(resp.headers.items())
                if resp.status in REDIRECT_STATUS:
                    location = resp.headers.get("Location")
                    if location:
                        next_url = str(target.join(URL(location)))
                        return FetchResult(resp.status, document_url, None, b""), next_url
                content = await self._read_body(resp)
                exchange.response_body = content
        except PivotError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise _map_client_error(exc, method) from exc
        finally:
            timings.total_ms = (time.perf_counter() - started) * 1000.0
        status = resp.status
        if status in RETRYABLE_STATUS:
            raise TransientFetchError(
                f"{method} {shown_url(target)} answered HTTP {status}",
                reason=Reason.HTTP_STATUS,
                detail={"status": status},
                retry_after_s=_retry_after(resp.headers.get("Retry-After")) if status in (429, 503) else None,
            )
        if not 200 <= status < 300:
            raise FetchError(
                f"{method} {shown_url(target)} answered HTTP {status}; only 2xx carries a script",
                reason=Reason.HTTP_STATUS,
                detail={"status": status},
            )
        return FetchResult(status, document_url, resp.headers.get("Content-Type"), content), None

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self.fetcher.settings.max_response_bytes
        if resp.content_length is not None and resp.content_length > limit:
            raise FetchError(
                f"response declares {resp.content_length} bytes, over PIVOT_MAX_RESPONSE_BYTES={limit}",
                reason=Reason.RESPONSE_TOO_LARGE,
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await resp.content.read(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise FetchError(
                    f"response body exceeds PIVOT_MAX_RESPONSE_BYTES={limit}",
                    reason=Reason.RESPONSE_TOO_LARGE,
                )
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def origin(url: str) -> str | None:
    """``scheme://host:port`` of an http(s) URL (no credentials, path or query), or ``None``."""
    try:
        parsed = URL(url, encoded=True)
        scheme, host, port = parsed.scheme.lower(), parsed.host, parsed.port
    except (ValueError, TypeError):
        return None
    if scheme not in ("http", "https") or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host.lower()}:{port}"


class _StopBefore(stop_base):
    """Stop retrying when the next sleep would reach the request's deadline."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self.loop = loop
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.loop.time() + (retry_state.upcoming_sleep or 0.0) >= self.deadline


def _trace_config() -> aiohttp.TraceConfig:
    """Hooks that fill :class:`Timings` for debug requests (milliseconds since the request started)."""
    config = aiohttp.TraceConfig()

    def _since(ctx: Any) -> float:
        return float((time.perf_counter() - ctx.trace_request_ctx.started) * 1000.0)

    async def dns_start(_s: Any, ctx: Any, _p: Any) -> None:
        ctx.dns_started = time.perf_counter()

    async def dns_end(_s: Any, ctx: Any, _p: Any) -> None:
        ctx.trace_request_ctx.timings.dns_ms = (time.perf_counter() - ctx.dns_started) * 1000.0

    async def conn_start(_s: Any, ctx: Any, _p: Any) -> None:
        ctx.conn_started = time.perf_counter()

    async def conn_end(_s: Any, ctx: Any, _p: Any) -> None:
        ctx.trace_request_ctx.timings.connect_ms = (time.perf_counter() - ctx.conn_started) * 1000.0

    async def reused(_s: Any, ctx: Any, _p: Any) -> None:
        ctx.trace_request_ctx.timings.connect_ms = 0.0

    async def headers_in(_s: Any, ctx: Any, _p: Any) -> None:
        ctx.trace_request_ctx.timings.ttfb_ms = _since(ctx)

    config.on_dns_resolvehost_start.append(dns_start)
    config.on_dns_resolvehost_end.append(dns_end)
    config.on_connection_create_start.append(conn_start)
    config.on_connection_create_end.append(conn_end)
    config.on_connection_reuseconn.append(reused)
    config.on_request_end.append(headers_in)
    return config


class Fetcher:
    """Owns the HTTP sessions; ``fetch`` is safe to call from many tasks at once."""

    def __init__(
        self, settings: Settings, policy: AddressPolicy | None = None, signing: SigningKeys | None = None
    ) -> None:
        """``signing`` defaults to the keys of ``PIVOT_SIGNING_KEYS_FILE`` (a bad file raises)."""
        self.settings = settings
        self.policy = policy if policy is not None else AddressPolicy(settings.allow_networks)
        self.signing = signing if signing is not None else SigningKeys(settings.signing_keys_file)
        self._session: aiohttp.ClientSession | None = None
        self._traced: aiohttp.ClientSession | None = None
        self.breakers = Breakers(settings.breaker_failures, settings.breaker_open_s)
        self.bulkhead = Bulkhead(settings.host_concurrency)

    def _new_session(self, trace_configs: list[aiohttp.TraceConfig] | None) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.settings.http_max_connections,
            resolver=GuardedResolver(self.policy),
            ttl_dns_cache=10,
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None),
            cookie_jar=aiohttp.DummyCookieJar(),  # never carry one developer's cookies to another call
            trust_env=False,
            auto_decompress=True,
            trace_configs=trace_configs,
        )

    async def start(self) -> None:
        self._session = self._new_session(None)
        self._traced = self._new_session([_trace_config()])

    async def close(self) -> None:
        for session in (self._session, self._traced):
            if session is not None:
                await session.close()
        self._session = self._traced = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Fetcher.start() was not awaited before fetch()")
        return self._session

    @property
    def traced_session(self) -> aiohttp.ClientSession:
        if self._traced is None:
            raise RuntimeError("Fetcher.start() was not awaited before fetch()")
        return self._traced

    async def fetch(self, spec: HttpRequestSpec, *, deadline: float, trace: PivotTrace) -> FetchResult:
        """Fetch within ``deadline`` (event-loop time). Raises :class:`PivotError` with a reason.

        A host whose circuit is open, or that already has ``PIVOT_HOST_CONCURRENCY`` requests in
        flight, is refused at once (``circuit_open``, ``host_busy``) without any network activity.
        """
        host = origin(spec.url)
        if host is None:  # not an http(s) URL with a host: the attempt refuses it (invalid_url)
            return await self._fetch(spec, deadline, trace)
        ticket = self.breakers.admit(host)
        try:
            self.bulkhead.enter(host)
        except FetchError:
            self.breakers.released(ticket)
            raise
        try:
            result = await self._fetch(spec, deadline, trace)
        except FetchError as exc:
            self._judge(ticket, exc.reason)
            raise
        except BaseException:
            self.breakers.released(ticket)
            raise
        finally:
            self.bulkhead.leave(host)
        self.breakers.succeeded(ticket)
        return result

    def _judge(self, ticket: Ticket, reason: Reason) -> None:
        if reason in _HOST_DOWN:
            self.breakers.failed(ticket, reason.value)
        elif reason in _HOST_ANSWERED:
            self.breakers.succeeded(ticket)
        else:
            self.breakers.released(ticket)

    async def _fetch(self, spec: HttpRequestSpec, deadline: float, trace: PivotTrace) -> FetchResult:
        loop = asyncio.get_running_loop()
        budget_ms = round((deadline - loop.time()) * 1000)
        try:
            async with asyncio.timeout_at(deadline):
                try:
                    return await _Attempt(self, spec, trace, 1).run()
                except TransientFetchError as first:
                    if self.settings.fetch_attempts < 2:
                        raise
                    return await self._retry(spec, trace, deadline, first, loop)
        except TimeoutError as exc:
            last = trace.exchanges[-1] if trace.exchanges else None
            if last is not None and last.error is None:
                last.error_reason, last.error = Reason.TIMEOUT, "deadline reached"
            raise FetchError(
                f"no complete answer from {shown_url(spec.url)} within the deadline ({budget_ms} ms)",
                reason=Reason.TIMEOUT,
            ) from exc

    async def _retry(
        self,
        spec: HttpRequestSpec,
        trace: PivotTrace,
        deadline: float,
        first: TransientFetchError,
        loop: asyncio.AbstractEventLoop,
    ) -> FetchResult:
        """Attempts 2..N; attempt 1 already failed with ``first`` and is replayed to tenacity, not re-sent."""
        backoff = wait_exponential_jitter(multiplier=0.05, max=1.0, jitter=0.05)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            hinted = exc.retry_after_s if isinstance(exc, TransientFetchError) else None
            return max(backoff(state), hinted or 0.0)

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(TransientFetchError),
            stop=stop_any(stop_after_attempt(self.settings.fetch_attempts), _StopBefore(loop, deadline)),
            wait=wait,
            reraise=True,
        )
        pending: list[TransientFetchError] = [first]
        async for attempt in retrying:
            with attempt:
                if pending:
                    raise pending.pop()
                return await _Attempt(self, spec, trace, attempt.retry_state.attempt_number).run()
        raise first  # not reached: reraise=True re-raises the last error
