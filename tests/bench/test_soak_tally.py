"""The soak's bookkeeping: what counts as answered, lost, duplicated, and how recovery is measured.

The end-to-end soak tests only fail when a worker misbehaves; these checks feed the tally the
replies a misbehaving worker would send, so the harness is shown to notice each problem.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.soak import (
    GREGORIAN_UNIX_EPOCH_US,
    Disruption,
    Request,
    Soak,
    SoakConfig,
    Tally,
    kazoo_timestamp_us,
    worker_command,
)


def _reply(req: Request, event: str, node: str = "w1", **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    category = "call_event" if event == "CHANNEL_PIVOT" else "pivot"
    body = {"Call-ID": req.call_id, "Event-Category": category, "Event-Name": event, "Node": node, **extra}
    headers = {} if event == "CHANNEL_PIVOT" else {"Deliver-To-PID": req.pid.encode()}
    return body, headers


def _tally(n: int) -> tuple[Tally, list[Request]]:
    tally = Tally()
    reqs = [tally.new_request(i) for i in range(n)]
    for i, req in enumerate(reqs):
        req.status = "sent"
        req.published_at = float(i)
    return tally, reqs


def _soak(tally: Tally) -> Soak:
    soak = Soak(SoakConfig(kill_every=0), "amqp://guest:guest@127.0.0.1:5/", None)
    soak.tally = tally
    soak.offered = len(tally.requests)
    return soak


def test_each_problem_is_counted_and_fails_the_run() -> None:
    tally, (ok, failed, lost, dup_flow, dup_proc, proc_only, wrong_pid) = _tally(7)
    for req in (ok, dup_flow, dup_proc):
        tally.record(*_reply(req, "processing"), now=10.0)
        tally.record(*_reply(req, "CHANNEL_PIVOT"), now=10.0)
    tally.record(*_reply(failed, "failed", **{"Failure-Reason": "timeout"}), now=10.0)
    tally.record(*_reply(dup_flow, "CHANNEL_PIVOT", node="w2"), now=11.0)
    tally.record(*_reply(dup_proc, "processing", node="w2"), now=11.0)
    tally.record(*_reply(proc_only, "processing"), now=10.0)
    body, _ = _reply(wrong_pid, "failed")
    tally.record(body, {"Deliver-To-PID": b"<0.1.0>"}, now=10.0)
    tally.record({"Call-ID": "someone else's", "Event-Name": "processing"}, {}, now=10.0)

    report = _soak(tally)._report(1.0)

    assert report.sent == 7
    assert report.answered_once == 4  # ok, failed, dup_proc (one flow), wrong_pid (one failed)
    assert report.answered_failed == 2
    assert report.failed_by_reason == {"timeout": 1, "-": 1}
    assert report.lost == 2  # lost and proc_only got no final answer
    assert report.examples["lost"][0].startswith(lost.call_id[:13])
    assert report.duplicated_channel_pivot == 1
    assert report.duplicated_processing == 1
    assert report.processing_without_flow == 1
    assert report.answered_more_than_once == 1
    assert report.misaddressed == 1
    assert tally.foreign == 1
    problems = report.problems()
    for name in ("lost", "duplicated CHANNEL_PIVOT", "duplicated processing", "processing without"):
        assert any(p.startswith(name) for p in problems), problems
    assert "FAIL" in report.render()


def test_a_clean_run_has_no_problems_and_its_latency() -> None:
    tally, reqs = _tally(100)
    for req in reqs:
        tally.record(*_reply(req, "processing"), now=req.published_at + 0.001)
        tally.record(*_reply(req, "CHANNEL_PIVOT"), now=req.published_at + 0.002)
    report = _soak(tally)._report(1.0)
    assert report.problems() == []
    assert report.answered_once == report.answered_flow == 100
    assert report.p50_ms == pytest.approx(2.0)
    assert "verdict: OK" in report.render()


def test_unsent_requests_are_not_counted_as_lost() -> None:
    tally, (sent, down, returned) = _tally(3)
    down.status, returned.status = "broker_down", "unroutable"
    tally.record(*_reply(sent, "CHANNEL_PIVOT"), now=5.0)
    tally.record(*_reply(returned, "CHANNEL_PIVOT"), now=5.0)  # should not happen; reported if it does
    report = _soak(tally)._report(1.0)
    assert (report.sent, report.lost) == (1, 0)
    assert report.not_sent["broker_down"] == report.not_sent["unroutable"] == 1
    assert report.answers_to_unsent == 1


def test_recovery_after_a_restart_counts_from_the_event_and_waits_for_the_outstanding() -> None:
    tally, reqs = _tally(10)  # published at 0..9 s
    for req in reqs[:3]:
        tally.record(*_reply(req, "CHANNEL_PIVOT"), now=req.published_at + 0.01)
    tally.record(*_reply(reqs[3], "CHANNEL_PIVOT"), now=8.5)  # outstanding at the restart (3.5 s)
    for req in reqs[8:]:
        tally.record(*_reply(req, "CHANNEL_PIVOT"), now=req.published_at + 0.02)
    soak = _soak(tally)
    soak.started = 0.0
    recovery = soak._recovery(Disruption("broker restart", "restart", at=3.5, back_at=7.5), reqs)
    assert recovery.broker_down_s == pytest.approx(4.0)
    assert recovery.first_new_answer_s == pytest.approx(8.02 - 3.5)  # first request after 7.5 s
    assert recovery.outstanding == 5  # 3, and 4..7 (published before the broker was back)
    assert recovery.outstanding_unanswered == 4
    assert recovery.recovery_s is None  # something never came back
    for req in reqs[4:8]:
        tally.record(*_reply(req, "CHANNEL_PIVOT"), now=9.0)
    recovery = soak._recovery(Disruption("broker restart", "restart", at=3.5, back_at=7.5), reqs)
    assert recovery.recovery_s == pytest.approx(9.0 - 3.5)


def test_kazoo_timestamp_is_gregorian_microseconds() -> None:
    stamp = kazoo_timestamp_us()
    assert stamp > GREGORIAN_UNIX_EPOCH_US + 1_700_000_000 * 1_000_000
    assert 6.3e16 < stamp < 6.5e16  # about 6.4e16 today, never Unix microseconds


def test_worker_source_runs_the_package_from_that_directory(tmp_path: Any) -> None:
    argv = worker_command(tmp_path)
    assert argv[1:] == ["-P", "-m", "pivot_worker", "run", "--no-collector"]  # cwd not on sys.path
    assert worker_command()[-2:] == ["run", "--no-collector"]
