"""``bench/isolation.py``'s pure parts: the arithmetic and verdicts, its options, and the pieces it
added to the shared tools (the driver's per-stream bookkeeping, the slow and hanging dev server)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import asdict
from typing import Any

import orjson
import pytest

from bench import isolation, payloads
from bench.devserver import Answers, DeveloperServer
from bench.loadgen import _call_seq, _Stream
from pivot_worker.contracts import validate_pivot_req


def _stream(
    sent: int, flows: int, failed: int = 0, p99: float | None = 300.0, **extra: Any
) -> dict[str, Any]:
    out = {
        "rate": 100.0,
        "sent": sent,
        "flows": flows,
        "failed": failed,
        "unanswered": sent - flows - failed,
        "failure_reasons": {"timeout": failed} if failed else {},
        "flow_p50_ms": p99 / 2 if p99 is not None else None,
        "flow_p99_ms": p99,
        "flow_max_ms": p99,
        "failed_max_ms": None,
        "answer_max_ms": p99,
        "worker_cores": 0.3,
        "other_cores": 0.0,
    }
    return out | extra


def _result(
    slow: dict[str, Any] | None = None,
    alone: dict[str, Any] | None = None,
    mixed: dict[str, Any] | None = None,
    a: dict[str, Any] | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"plan": asdict(isolation.FULL)}
    if slow is not None:
        result["slow"] = slow
    if alone is not None:
        assert mixed is not None and a is not None
        result["tenants"] = {"b_alone": alone, "b_with_a": mixed, "a": a}
    return result


def _passed(result: dict[str, Any]) -> list[bool | None]:
    return [v.passed for v in isolation.verdicts(result)]


def test_share_and_memory_arithmetic() -> None:
    assert isolation.share(999, 1000) == 0.999
    assert math.isnan(isolation.share(0, 0))
    assert isolation.mib_per_1000(80.0, 140.0, 2000) == 30.0
    assert math.isnan(isolation.mib_per_1000(80.0, 90.0, 0))


def test_slow_target_needs_every_request_answered_with_a_flow_and_p99_within_700_ms() -> None:
    assert _passed(_result(slow=_stream(5000, 5000, p99=700.0)))[0] is True
    assert _passed(_result(slow=_stream(5000, 5000, p99=700.1)))[0] is False
    assert _passed(_result(slow=_stream(5000, 4999, p99=300.0)))[0] is False  # one unanswered
    assert _passed(_result(slow=_stream(5000, 4999, failed=1)))[0] is False  # one failed
    assert _passed(_result(slow=_stream(0, 0, p99=None)))[0] is False  # nothing measured


def _a(sent: int = 1500, failed: int = 1500, slowest: float = 2500.0) -> dict[str, Any]:
    return _stream(sent, sent - failed, failed=failed, p99=None, answer_max_ms=slowest)


@pytest.mark.parametrize(
    ("flows", "mixed_p99", "expected"),
    [
        (1500, 150.0, True),  # exactly 1.5x
        (1499, 150.0, True),  # 99.93% answered
        (1498, 120.0, False),  # 99.87% answered
        (1500, 150.2, False),  # 1.502x
    ],
)
def test_tenant_b_needs_its_share_answered_and_p99_within_1_5x_alone(
    flows: int, mixed_p99: float, expected: bool
) -> None:
    result = _result(alone=_stream(1000, 1000, p99=100.0), mixed=_stream(1500, flows, p99=mixed_p99), a=_a())
    assert _passed(result)[1] is expected


@pytest.mark.parametrize(
    ("a", "expected"),
    [
        (_a(slowest=3000.0), True),  # Request-Timeout 2000 ms + 1 s
        (_a(slowest=3000.5), False),
        (_a(failed=1499), False),  # one A request got a flow or no answer
        (_a(slowest=None), False),  # type: ignore[arg-type]
    ],
)
def test_every_a_request_must_fail_within_its_request_timeout_plus_1_s(
    a: dict[str, Any], expected: bool
) -> None:
    result = _result(alone=_stream(1000, 1000, p99=100.0), mixed=_stream(1500, 1500, p99=110.0), a=a)
    assert _passed(result)[2] is expected


def test_scenarios_not_run_are_reported_not_judged_and_render_copes_with_missing_figures() -> None:
    result = _result(slow=_stream(10, 0, p99=None))
    assert _passed(result) == [False, None, None, None]
    text = isolation.render(result)
    assert "FAIL  slow" in text and "not run" in text
    result["memory"] = {
        "mib_per_1000": 31.25,
        "in_flight": 2000,
        "idle_rss_mib": 80.0,
        "loaded_rss_mib": 142.5,
    }
    assert "INFO  memory per 1,000 requests in flight: 31.2 MiB (2000 in flight" in isolation.render(result)


def test_render_warns_when_other_programs_loaded_the_machine() -> None:
    quiet = _result(slow=_stream(100, 100))
    busy = _result(slow=_stream(100, 100, other_cores=0.8))
    assert "other programs" not in isolation.render(quiet).split("(worker, other")[0]
    assert "WARNING" not in isolation.render(quiet)
    assert "WARNING" in isolation.render(busy)


def test_options_keep_the_run_on_loopback_and_check_what_they_name() -> None:
    args = isolation.parse_args(["--scenarios", "tenants", "--worker-env", "PIVOT_PREFETCH=50"])
    assert args.scenarios == ["tenants"] and args.worker_env == {"PIVOT_PREFETCH": "50"}
    assert isolation.parse_args([]).scenarios == ["slow", "tenants", "memory"]
    for bad in (
        ["--amqp-url", "amqp://guest:guest@rabbit.example:5672/"],
        ["--scenarios", "slow,fast"],
        ["--worker-env", "PREFETCH=50"],
        ["--budget-s", "0"],
    ):
        with pytest.raises(SystemExit):
            isolation.parse_args(bad)


def test_the_driver_times_flows_after_the_warm_up_and_failures_always() -> None:
    spec = {"name": "a", "rate": 10, "voice_uri": "http://127.0.0.1:1/kazoo", "format": "kazoo"}
    stream = _Stream(spec | {"prefix": "pitest01a", "reply_queue": "q", "request_timeout_ms": 2000}, 2.0, 1.0)
    assert (stream.total, stream.skip) == (30, 10)
    body = orjson.loads(stream.factory.body(3))
    validate_pivot_req(body)
    assert body["Request-Timeout"] == 2000
    assert _call_seq(body["Call"]["Call-ID"]) == ("pitest01a", 3)
    assert _call_seq("someone-else") is None
    for seq in range(30):
        stream.sent_at[seq] = 0
    for seq in range(25):
        stream.flows[seq] = (1000 if seq < 10 else 100) * 1_000_000  # warm-up answers are slow
    stream.failures[25] = (2_500_000_000, "timeout")
    summary = stream.summary()
    assert (summary["sent"], summary["flows"], summary["failed"], summary["unanswered"]) == (30, 25, 1, 4)
    assert summary["flow_samples"] == 15 and summary["flow_p99_ms"] == 100.0
    assert summary["answer_max_ms"] == 2500.0 and summary["failure_reasons"] == {"timeout": 1}


def test_request_factory_extra_keys_reach_every_body() -> None:
    uri = "http://127.0.0.1:1/kazoo"
    plain = orjson.loads(payloads.RequestFactory(uri, "kazoo", "p", "q").body(1))
    timed = orjson.loads(payloads.RequestFactory(uri, "kazoo", "p", "q", {"Request-Timeout": 1234}).body(1))
    assert plain.get("Request-Timeout") != 1234
    assert timed["Request-Timeout"] == 1234
    assert {k: v for k, v in timed.items() if k != "Request-Timeout"} == {
        k: v for k, v in plain.items() if k != "Request-Timeout"
    }


class _Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def server_modes() -> Any:
    yield
    DeveloperServer.delay_s, DeveloperServer.hang = 0.0, False


async def test_devserver_hang_mode_reads_and_never_answers(server_modes: None) -> None:
    DeveloperServer.hang = True
    server, transport = DeveloperServer(Answers("http://127.0.0.1:8080")), _Transport()
    server.connection_made(transport)  # type: ignore[arg-type]
    server.data_received(b"GET /kazoo HTTP/1.1\r\n\r\n")
    await asyncio.sleep(0.05)
    assert transport.written == [] and not transport.closed


async def test_devserver_delay_mode_answers_later_in_order(server_modes: None) -> None:
    DeveloperServer.delay_s = 0.05
    server, transport = DeveloperServer(Answers("http://127.0.0.1:8080")), _Transport()
    server.connection_made(transport)  # type: ignore[arg-type]
    server.data_received(b"GET /kazoo HTTP/1.1\r\n\r\nGET /twiml HTTP/1.1\r\n\r\n")
    assert transport.written == []
    for _ in range(200):
        if len(transport.written) == 2:
            break
        await asyncio.sleep(0.01)
    kazoo, twiml = transport.written
    assert b"application/json" in kazoo and b"text/xml" in twiml
