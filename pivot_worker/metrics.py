"""Prometheus metrics for one worker process, exported on ``PIVOT_METRICS_LISTEN`` when set.

Each worker owns its registry (no process-global state), so tests and embedded workers do not
collide. Updating costs a few microseconds per request; the exporter runs only when configured.
The same listener answers ``/livez`` and ``/readyz``; it runs in the worker's event loop, so any
answer at all proves the loop is running.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import orjson
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .breaker import Breakers, CircuitState
from .trace import PivotTrace
from .twiml import TranslationMemo

Readiness = Callable[[], str | None]
"""Returns ``None`` when the worker is ready, else the name of the check that failed."""

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 9.0)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "pivot_requests",
            "pivot_req messages served, by outcome and failure reason",
            ["outcome", "reason"],
            registry=r,
        )
        self.latency = Histogram(
            "pivot_request_duration_seconds",
            "receipt of a pivot_req to its acked reply",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.fetch_latency = Histogram(
            "pivot_fetch_duration_seconds",
            "HTTP exchanges with developer servers, per attempt",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.publish_latency = Histogram(
            "pivot_publish_duration_seconds",
            "publishing the replies until the broker confirmed them",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.retries = Counter("pivot_fetch_retries", "HTTP attempts after the first", registry=r)
        self.stale = Counter(
            "pivot_stale_requests", "requests answered failed because they were stale", registry=r
        )
        self.in_flight = Gauge("pivot_in_flight_requests", "requests being served now", registry=r)
        self._by_outcome: dict[tuple[str, str], Counter] = {}

    def watch_debug_drops(self, dropped: Callable[[], int]) -> None:
        gauge = Gauge(
            "pivot_debug_events_dropped",
            "debug events dropped because the buffer was full",
            registry=self.registry,
        )
        gauge.set_function(lambda: float(dropped()))

    def watch_translation_memo(self, memo: TranslationMemo) -> None:
        """Export the memo's own counts when scraped: nothing is added to the request path."""
        self.registry.register(_MemoCollector(memo))

    def watch_circuits(self, breakers: Breakers) -> None:
        """Export the per-host circuit breakers' state when scraped (no per-host label)."""
        self.registry.register(_CircuitCollector(breakers))

    def observe(self, outcome: str, reason: str, seconds: float, trace: PivotTrace | None) -> None:
        counter = self._by_outcome.get((outcome, reason))
        if counter is None:  # label lookups cost more than the increment: keep the children
            counter = self._by_outcome[(outcome, reason)] = self.requests.labels(outcome, reason)
        counter.inc()
        self.latency.observe(seconds)
        if reason == "stale":
            self.stale.inc()
        if trace is None:
            return
        for exchange in trace.exchanges:
            if exchange.timings.total_ms is not None:
                self.fetch_latency.observe(exchange.timings.total_ms / 1000.0)
        if trace.attempts > 1:
            self.retries.inc(trace.attempts - 1)

    async def serve(self, listen: str, readiness: Readiness) -> web.AppRunner:
        """Serve ``/metrics``, ``/livez`` and ``/readyz`` on ``host:port`` in this event loop.

        The caller cleans the returned runner up at shutdown.
        """
        host, _, port = listen.rpartition(":")
        runner = web.AppRunner(health_app(self.registry, readiness), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host.strip("[]") or "0.0.0.0", int(port)).start()  # noqa: S104
        except BaseException:
            await runner.cleanup()
            raise
        return runner


def health_app(registry: CollectorRegistry, readiness: Readiness) -> web.Application:
    """``/metrics`` (Prometheus text), ``/livez`` (the loop answers) and ``/readyz``."""

    async def metrics(_request: web.Request) -> web.Response:
        resp = web.Response(body=generate_latest(registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    async def livez(_request: web.Request) -> web.Response:
        return web.json_response(body=b'{"status":"ok"}')

    async def readyz(_request: web.Request) -> web.Response:
        failed = readiness()
        if failed is None:
            return web.json_response(body=b'{"status":"ok"}')
        body = orjson.dumps({"status": "unavailable", "failed": failed})
        return web.json_response(body=body, status=503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    return app


class _MemoCollector(Collector):
    def __init__(self, memo: TranslationMemo) -> None:
        self._memo = memo

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "pivot_translations",
            "TwiML documents translated, by whether the translation memo served them",
            labels=["memo"],
        )
        family.add_metric(["hit"], self._memo.hits)
        family.add_metric(["miss"], self._memo.misses)
        yield family


class _CircuitCollector(Collector):
    def __init__(self, breakers: Breakers) -> None:
        self._breakers = breakers

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "pivot_circuit_open_hosts",
            "developer hosts whose circuit is open or half-open now (requests refused at once)",
            value=self._breakers.open_hosts,
        )
        family = CounterMetricFamily(
            "pivot_circuit_transitions",
            "per-host circuit breaker transitions, by the state entered",
            labels=["state"],
        )
        for state in CircuitState:
            family.add_metric([state.value], self._breakers.transitions[state.value])
        yield family
