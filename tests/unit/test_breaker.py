"""The per-host circuit breaker's state machine and the bulkhead, on a fake clock."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import generate_latest

from pivot_worker.breaker import Breakers, CircuitState
from pivot_worker.bulkhead import Bulkhead
from pivot_worker.errors import FetchError, Reason
from pivot_worker.metrics import WorkerMetrics

HOST = "http://dev.example:80"
OTHER = "https://other.example:443"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breakers(clock: FakeClock) -> Breakers:
    return Breakers(failures=3, open_s=5.0, clock=clock, wall_clock=lambda: 1_700_000_000.0)


def fail(b: Breakers, host: str = HOST, times: int = 1) -> None:
    for _ in range(times):
        b.failed(b.admit(host), "timeout")


def refused(b: Breakers, host: str = HOST) -> FetchError:
    with pytest.raises(FetchError) as info:
        b.admit(host)
    assert info.value.reason is Reason.CIRCUIT_OPEN
    return info.value


def open_circuit(b: Breakers, clock: FakeClock) -> None:
    fail(b, times=3)
    assert b.state(HOST) is CircuitState.OPEN


def test_closed_until_the_threshold_of_consecutive_failures(breakers: Breakers) -> None:
    fail(breakers, times=2)
    assert breakers.state(HOST) is CircuitState.CLOSED
    breakers.admit(HOST)  # still admitted
    fail(breakers)
    assert breakers.state(HOST) is CircuitState.OPEN
    assert breakers.open_hosts == 1
    assert breakers.transitions == {"open": 1}


def test_open_refuses_at_once_naming_the_host_and_the_next_probe(
    breakers: Breakers, clock: FakeClock
) -> None:
    open_circuit(breakers, clock)
    clock.now += 1.5
    error = refused(breakers)
    text = str(error)
    assert HOST in text
    assert "next probe in 3.5 s" in text
    assert "2023-11-14T22:13:23.500+00:00" in text  # wall clock + 3.5 s
    assert "timeout" in text
    assert error.detail == {"host": HOST, "retry_in_s": 3.5}
    breakers.admit(OTHER)  # other hosts are not affected


def test_after_the_open_period_exactly_one_probe_goes_through(breakers: Breakers, clock: FakeClock) -> None:
    open_circuit(breakers, clock)
    clock.now += 4.999
    refused(breakers)
    clock.now += 0.001
    probe = breakers.admit(HOST)
    assert probe.probe
    assert breakers.state(HOST) is CircuitState.HALF_OPEN
    assert "probe request is in flight" in str(refused(breakers))
    assert "probe request is in flight" in str(refused(breakers))
    assert breakers.open_hosts == 1


def test_probe_success_closes(breakers: Breakers, clock: FakeClock) -> None:
    open_circuit(breakers, clock)
    clock.now += 5
    breakers.succeeded(breakers.admit(HOST))
    assert breakers.state(HOST) is CircuitState.CLOSED
    assert breakers.open_hosts == 0
    assert breakers.transitions == {"open": 1, "half_open": 1, "closed": 1}
    # Closed again: requests go, and it takes the full threshold to open again.
    fail(breakers, times=2)
    assert breakers.state(HOST) is CircuitState.CLOSED
    fail(breakers)
    assert breakers.state(HOST) is CircuitState.OPEN


def test_probe_failure_reopens_for_a_full_period(breakers: Breakers, clock: FakeClock) -> None:
    open_circuit(breakers, clock)
    clock.now += 5
    probe = breakers.admit(HOST)
    clock.now += 2  # the probe hangs until its deadline
    breakers.failed(probe, "connect_error")
    assert breakers.state(HOST) is CircuitState.OPEN
    error = refused(breakers)
    assert "next probe in 5.0 s" in str(error) and "connect_error" in str(error)
    clock.now += 5
    assert breakers.admit(HOST).probe
    assert breakers.transitions == {"open": 2, "half_open": 2}
    assert breakers.open_hosts == 1


def test_a_success_resets_the_count(breakers: Breakers) -> None:
    fail(breakers, times=2)
    breakers.succeeded(breakers.admit(HOST))
    fail(breakers, times=2)
    assert breakers.state(HOST) is CircuitState.CLOSED
    fail(breakers)
    assert breakers.state(HOST) is CircuitState.OPEN


def test_errors_that_say_nothing_about_the_host_neither_count_nor_reset(breakers: Breakers) -> None:
    fail(breakers, times=2)
    for _ in range(10):
        breakers.released(breakers.admit(HOST))  # DNS, TLS, cancelled, ...
    assert breakers.state(HOST) is CircuitState.CLOSED
    fail(breakers)
    assert breakers.state(HOST) is CircuitState.OPEN


def test_a_probe_ending_without_a_verdict_lets_the_next_request_probe(
    breakers: Breakers, clock: FakeClock
) -> None:
    open_circuit(breakers, clock)
    clock.now += 5
    breakers.released(breakers.admit(HOST))
    assert breakers.state(HOST) is CircuitState.HALF_OPEN
    probe = breakers.admit(HOST)
    assert probe.probe
    refused(breakers)
    breakers.succeeded(probe)
    assert breakers.state(HOST) is CircuitState.CLOSED


def test_results_of_requests_sent_before_a_transition_are_ignored(
    breakers: Breakers, clock: FakeClock
) -> None:
    stragglers = [breakers.admit(HOST) for _ in range(6)]
    for ticket in stragglers[:3]:
        breakers.failed(ticket, "timeout")
    assert breakers.state(HOST) is CircuitState.OPEN
    clock.now += 5
    probe = breakers.admit(HOST)
    breakers.succeeded(stragglers[3])  # answered late: not the probe, says nothing now
    assert breakers.state(HOST) is CircuitState.HALF_OPEN
    breakers.succeeded(probe)
    for ticket in stragglers[4:]:  # timed out after the probe closed the circuit
        breakers.failed(ticket, "timeout")
    fail(breakers, times=2)
    assert breakers.state(HOST) is CircuitState.CLOSED


def test_failures_while_open_do_not_extend_the_open_period(breakers: Breakers, clock: FakeClock) -> None:
    in_flight = [breakers.admit(HOST) for _ in range(10)]
    for ticket in in_flight[:3]:
        breakers.failed(ticket, "timeout")
    clock.now += 4
    for ticket in in_flight[3:]:
        breakers.failed(ticket, "timeout")
    clock.now += 1
    assert breakers.admit(HOST).probe


def test_zero_failures_turns_the_breaker_off(clock: FakeClock) -> None:
    off = Breakers(failures=0, open_s=5.0, clock=clock)
    fail(off, times=100)
    assert off.state(HOST) is CircuitState.CLOSED
    assert len(off) == 0


def test_the_host_map_is_bounded_and_keeps_open_circuits(clock: FakeClock) -> None:
    b = Breakers(failures=2, open_s=5.0, clock=clock, max_hosts=4)
    fail(b, "http://open.example:80", times=2)
    for i in range(50):
        fail(b, f"http://h{i}.example:80")
    assert len(b) == 4
    assert b.state("http://open.example:80") is CircuitState.OPEN
    # Healthy hosts leave no entry behind.
    b.succeeded(b.admit("http://h49.example:80"))
    assert len(b) == 3


def test_every_transition_is_logged_once_with_the_host_only(
    breakers: Breakers, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pivot_worker.breaker")
    open_circuit(breakers, clock)
    refused(breakers)
    clock.now += 5
    breakers.failed(breakers.admit(HOST), "timeout")
    clock.now += 5
    breakers.succeeded(breakers.admit(HOST))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5, lines
    assert [line.split(" for ")[0] for line in lines] == [
        "circuit open",
        "circuit half-open",
        "circuit open again",
        "circuit half-open",
        "circuit closed",
    ]
    assert all(HOST in line for line in lines)


def test_metrics_show_open_hosts_and_transitions_without_a_host_label(
    breakers: Breakers, clock: FakeClock
) -> None:
    metrics = WorkerMetrics()
    metrics.watch_circuits(breakers)
    open_circuit(breakers, clock)
    clock.now += 5
    breakers.admit(HOST)
    text = generate_latest(metrics.registry).decode()
    assert "pivot_circuit_open_hosts 1.0" in text
    assert 'pivot_circuit_transitions_total{state="open"} 1.0' in text
    assert 'pivot_circuit_transitions_total{state="half_open"} 1.0' in text
    assert 'pivot_circuit_transitions_total{state="closed"} 0.0' in text
    assert "dev.example" not in text


def test_bulkhead_refuses_beyond_the_limit_per_host() -> None:
    bulkhead = Bulkhead(2)
    bulkhead.enter(HOST)
    bulkhead.enter(HOST)
    with pytest.raises(FetchError) as info:
        bulkhead.enter(HOST)
    assert info.value.reason is Reason.HOST_BUSY
    assert HOST in str(info.value) and "PIVOT_HOST_CONCURRENCY=2" in str(info.value)
    bulkhead.enter(OTHER)
    bulkhead.leave(HOST)
    bulkhead.enter(HOST)
    assert bulkhead.in_flight(HOST) == 2
    for _ in range(2):
        bulkhead.leave(HOST)
    bulkhead.leave(OTHER)
    assert len(bulkhead) == 0
