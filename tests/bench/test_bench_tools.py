"""The benchmark tools' pure parts: report arithmetic, profile parsing, the devserver's HTTP parsing.

The benchmarks themselves need a broker and minutes; these checks keep their bookkeeping honest
(medians, ratios, target verdicts, what counts as disturbed) and run in milliseconds.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest
from lxml import etree

from bench import payloads, pipeline, procstat, report
from bench.bare_worker import PARSER, kazoo_params, twiml_flow
from bench.devserver import Answers, DeveloperServer
from bench.loadgen import percentile
from bench.profile_worker import analyse, profile_plan
from pivot_worker.contracts import validate_pivot_req


def _thr(variant: str, fmt: str, procs: int, rate: float, rep: int = 1, **extra: Any) -> dict[str, Any]:
    run = {
        "variant": variant,
        "format": fmt,
        "kind": "throughput",
        "procs": procs,
        "rep": rep,
        "req_per_s": rate,
        "valid": True,
        "other_cores": 0.0,
        "cpu_us_per_req": {"worker": 1e6 / rate},
        "cores": {"worker": 0.9},
    }
    return run | extra


def _lat(variant: str, fmt: str, p99: float, rate: int = 100) -> dict[str, Any]:
    return {
        "variant": variant,
        "format": fmt,
        "kind": "latency",
        "procs": 1,
        "rep": 1,
        "rate": rate,
        "valid": True,
        "other_cores": 0.0,
        "p50_ms": p99 / 2,
        "p90_ms": p99 * 0.8,
        "p99_ms": p99,
        "max_ms": p99 * 2,
    }


def _full_set(worker_1p: float, worker_2p: float, worker_p99: float) -> list[dict[str, Any]]:
    return [
        _thr("bare", "kazoo", 1, 1500),
        _thr("bare", "kazoo", 2, 1900),
        _thr("worker", "kazoo", 1, worker_1p),
        _thr("worker", "kazoo", 2, worker_2p),
        _thr("per_call", "kazoo", 1, 200),
        _thr("per_call", "kazoo", 2, 210),
        _lat("bare", "kazoo", 4.0),
        _lat("worker", "kazoo", worker_p99),
    ]


def _verdicts(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary = report.summarize(runs)
    return report.targets(report.ratios(summary, ["kazoo"]))


def test_summary_takes_median_and_spread_of_repetitions() -> None:
    runs = [_thr("bare", "kazoo", 1, r, rep=i) for i, r in enumerate((1400, 1600, 1500), 1)]
    cell = report.summarize(runs)["bare/kazoo/throughput/1"]
    assert cell["req_per_s"] == {"median": 1500, "min": 1400, "max": 1600, "n": 3}
    assert cell["valid_runs"] == 3
    assert not cell["disturbed_only"]


def test_summary_prefers_undisturbed_runs_and_flags_cells_that_have_none() -> None:
    runs = [
        _thr("bare", "kazoo", 1, 900, other_cores=0.8, disturbed=True),
        _thr("bare", "kazoo", 1, 1500),
        _thr("worker", "kazoo", 1, 700, other_cores=0.6),  # older files: no "disturbed" key
    ]
    summary = report.summarize(runs)
    assert summary["bare/kazoo/throughput/1"]["req_per_s"]["median"] == 1500
    worker = summary["worker/kazoo/throughput/1"]
    assert worker["disturbed_only"]
    assert "*" in report._fmt_spread(worker, "req_per_s")


def test_incomplete_runs_are_left_out() -> None:
    runs = [_thr("worker", "kazoo", 1, 100, valid=False), _thr("worker", "kazoo", 1, 1200)]
    assert report.summarize(runs)["worker/kazoo/throughput/1"]["req_per_s"]["median"] == 1200


def test_targets_met_when_every_ratio_clears_its_threshold() -> None:
    verdicts = _verdicts(_full_set(worker_1p=1400, worker_2p=2300, worker_p99=5.0))
    assert {key: v["met"] for key, v in verdicts.items()} == {
        "throughput": True,  # 1400/1500 and 2300/1900
        "p99_100": True,  # 5.0/4.0 = 1.25
        "scaling": True,  # 2300/1400 = 1.64
        "per_call": True,  # 1400/200 = 7.0
    }


def test_targets_not_met_name_the_failing_ratio() -> None:
    verdicts = _verdicts(_full_set(worker_1p=1200, worker_2p=1500, worker_p99=6.5))
    assert verdicts["throughput"]["met"] is False
    assert verdicts["throughput"]["values"]["kazoo:worker_over_bare_1p"] == pytest.approx(0.8)
    assert verdicts["p99_100"]["met"] is False  # 6.5/4.0 = 1.625
    assert verdicts["scaling"]["met"] is False  # 1500/1200 = 1.25
    assert verdicts["per_call"]["met"] is False  # 1200/200 = 6


def test_missing_measurements_leave_targets_unknown() -> None:
    verdicts = _verdicts([_thr("bare", "kazoo", 1, 1500), _thr("worker", "kazoo", 1, 1400)])
    assert verdicts["throughput"]["met"] is None  # no 2-process numbers
    assert verdicts["per_call"]["met"] is None


def test_render_prints_one_row_per_variant_and_format_and_the_verdicts() -> None:
    runs = _full_set(worker_1p=1200, worker_2p=1500, worker_p99=6.5)
    summary = report.summarize(runs)
    ratio_table = report.ratios(summary, ["kazoo"])
    result = {
        "meta": {"formats": ["kazoo"], "variants": ["bare", "worker", "per_call"]},
        "summary": summary,
        "ratios": ratio_table,
        "targets": report.targets(ratio_table),
    }
    text = report.render(result)
    assert "| per-call-queue | kazoo  | 200 " in text
    assert "[NOT MET] worker throughput >= 85% of bare" in text
    assert "2.00 / 4.00" in text  # bare p50 / p99 at 100/s


def test_the_table_shows_the_workers_median_peak_memory() -> None:
    runs = [
        _thr("worker", "kazoo", 1, 1200, rep=1, worker_peak_rss_mib=61.0),
        _thr("worker", "kazoo", 1, 1210, rep=2, worker_peak_rss_mib=64.5),
        _thr("worker", "kazoo", 1, 1190, rep=3, worker_peak_rss_mib=90.0),
        _thr("bare", "kazoo", 1, 1300),  # measured without it: shown as "-"
    ]
    summary = report.summarize(runs)
    assert summary["worker/kazoo/throughput/1"]["worker_peak_rss_mib"]["median"] == 64.5
    ratio_table = report.ratios(summary, ["kazoo"])
    text = report.render(
        {
            "meta": {"formats": ["kazoo"], "variants": ["bare", "worker"]},
            "summary": summary,
            "ratios": ratio_table,
            "targets": report.targets(ratio_table),
        }
    )
    header, _rule, bare_row, worker_row = text.splitlines()[:4]
    column = [c.strip() for c in header.split("|")].index("worker peak MiB")
    assert [c.strip() for c in worker_row.split("|")][column] == "64"
    assert [c.strip() for c in bare_row.split("|")][column] == "-"


def test_peak_memory_is_read_from_proc() -> None:
    mib = procstat.peak_rss_mib(os.getpid())
    assert mib is not None and 10 < mib < 4096
    assert procstat.peak_rss_mib(2**22 + 1) is None  # beyond pid_max: no such process


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


_ENTRY = "<module> (pivot_worker/__main__.py);run (pivot_worker/runtime.py)"
_HANDLER = _ENTRY + ";Worker._on_message (pivot_worker/worker.py)"
RAW = "\n".join(
    [
        _HANDLER + ";Pipeline.handle (pivot_worker/pipeline.py);loads (json/__init__.py) 30",
        _HANDLER + ";StreamWriter.write (asyncio/streams.py) 50",
        _ENTRY + ";walk (pivot_worker/t.py);walk (pivot_worker/t.py) 20",
    ]
)


def test_profile_counts_leaves_packages_and_inclusive_once_per_sample() -> None:
    profile = analyse(RAW)
    assert profile.total == 100
    assert profile.leaves["StreamWriter.write (asyncio/streams.py)"] == 50
    assert profile.packages["asyncio"] == 50
    assert profile.packages["json"] == 30
    assert profile.inclusive["Worker._on_message (pivot_worker/worker.py)"] == 80
    assert profile.inclusive["walk (pivot_worker/t.py)"] == 20  # recursion counted once


def test_profile_plan_never_waits() -> None:
    plan = profile_plan()
    assert plan.patience_s == 0
    assert plan.latency == ()


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


def _server() -> tuple[DeveloperServer, _Transport]:
    server = DeveloperServer(Answers("http://127.0.0.1:8080"))
    transport = _Transport()
    server.connection_made(transport)  # type: ignore[arg-type]
    return server, transport


def test_devserver_answers_pipelined_requests_split_anywhere() -> None:
    server, transport = _server()
    stream = (
        b"GET /kazoo?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /twiml/menu HTTP/1.1\r\nContent-Length: 5\r\n\r\nDigit"
        b"GET /nowhere HTTP/1.1\r\n\r\n"
    )
    for i in range(0, len(stream), 7):
        server.data_received(stream[i : i + 7])
    assert len(transport.written) == 3
    kazoo, twiml, missing = transport.written
    assert kazoo.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: application/json")
    assert orjson.loads(kazoo.split(b"\r\n\r\n", 1)[1])["module"] == "tts"
    assert twiml.endswith(payloads.TWIML_DOCUMENT)
    assert missing.startswith(b"HTTP/1.1 404")
    assert not transport.closed


def test_devserver_refuses_chunked_bodies_and_closes() -> None:
    server, transport = _server()
    server.data_received(b"POST /twiml HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert transport.written[0].startswith(b"HTTP/1.1 411")
    assert transport.closed


def test_request_factory_gives_each_request_its_own_valid_message() -> None:
    factory = payloads.RequestFactory("http://127.0.0.1:1/kazoo", "kazoo", "pbtest", "replies-q")
    first, second = orjson.loads(factory.body(1)), orjson.loads(factory.body(2))
    validate_pivot_req(first)
    assert first["Call"]["Call-ID"] == "pbtest-00000001" != second["Call"]["Call-ID"]
    assert first["Call"]["Controller-Queue"] == "pid://<0.1.0>/replies-q"
    assert first["Msg-ID"] != second["Msg-ID"]


def test_bare_twiml_flow_matches_the_translators_node_chain() -> None:
    root = etree.fromstring(payloads.TWIML_DOCUMENT, PARSER)
    flow = twiml_flow(root, "http://127.0.0.1:8080/twiml")
    chain = []
    node: dict[str, Any] | None = flow
    while node:
        chain.append(node["module"])
        node = node["children"].get("_")
    assert chain == ["tts", "collect_dtmf", "tts", "collect_dtmf", "pivot", "hangup"]
    pivot = flow["children"]["_"]["children"]["_"]["children"]["_"]["children"]["_"]
    assert pivot["data"]["voice_url"] == "http://127.0.0.1:8080/twiml/menu"


def test_bare_kazoo_params_flatten_nested_values() -> None:
    params = kazoo_params(payloads.call())
    assert params["Digits[default]"] == "42"
    assert params["Custom-Application-Vars[campaign]"] == "spring-2026"
    assert all(isinstance(v, str) for v in params.values())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--amqp-url", "amqp://guest:guest@10.0.0.5:5672/"], "loopback"),
        (["--variants", "bare,fast"], "fast not among"),
        (["--formats", ""], "nothing not among"),
        (["--reps", "0"], "at least 1"),
        (["--worker-env", "TRANSLATION_MEMO=0"], "expected PIVOT_NAME=VALUE"),
        (["--worker-env", "PIVOT_TRANSLATION_MEMO"], "expected PIVOT_NAME=VALUE"),
    ],
)
def test_pipeline_refuses_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        pipeline.parse_args(argv)
    assert message in capsys.readouterr().err


def test_pipeline_passes_worker_settings_through() -> None:
    args = pipeline.parse_args(
        ["--worker-env", "PIVOT_TRANSLATION_MEMO=0", "--worker-env", "PIVOT_PREFETCH=20"]
    )
    assert args.worker_env == {"PIVOT_TRANSLATION_MEMO": "0", "PIVOT_PREFETCH": "20"}
    assert pipeline.parse_args([]).worker_env == {}
