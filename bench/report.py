"""Turn the runs of ``bench/pipeline.py`` into medians, the side-by-side table, ratios and targets.

Pure functions over plain dicts (the JSON the run writes), so a saved result can be re-printed
with ``python bench/report.py bench/results/pipeline-<timestamp>.json``.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

FOREIGN_LOAD_CORES = 0.15  # CPU used by processes outside the benchmark above which a cell is flagged
VARIANT_LABELS = {"bare": "bare", "worker": "worker", "per_call": "per-call-queue"}

# Issue 5's targets: (key, description, threshold, higher is better).
TARGETS = (
    ("throughput", "worker throughput >= 85% of bare (same process count)", 0.85, True),
    ("p99_100", "worker p99 at 100 req/s <= 1.5x bare", 1.5, False),
    ("scaling", "worker 2 processes >= 1.6x one", 1.6, True),
    ("per_call", "worker >= 7x the per-call-queue model", 7.0, True),
)


def _cell_key(run: dict[str, Any]) -> tuple[str, str, str, int]:
    if run["kind"] == "throughput":
        return run["variant"], run["format"], "throughput", int(run["procs"])
    return run["variant"], run["format"], "latency", int(run["rate"])


def _disturbed(run: dict[str, Any]) -> bool:
    return bool(run.get("disturbed", float(run.get("other_cores", 0.0)) > FOREIGN_LOAD_CORES))


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Median [min..max] of each metric per cell, over the repetitions that produced a valid number.

    Keys look like ``worker/kazoo/throughput/1`` or ``bare/twiml/latency/100``.
    """
    grouped: dict[tuple[str, str, str, int], list[dict[str, Any]]] = {}
    for run in runs:
        grouped.setdefault(_cell_key(run), []).append(run)
    out: dict[str, dict[str, Any]] = {}
    for key, group in grouped.items():
        cell: dict[str, Any] = {"runs": len(group)}
        complete = [r for r in group if r.get("valid")]
        undisturbed = [r for r in complete if not _disturbed(r)]
        valid = undisturbed or complete  # disturbed runs count only when nothing else is there
        cell["valid_runs"] = len(valid)
        cell["disturbed_only"] = bool(complete) and not undisturbed
        skipped = [r["skipped"] for r in group if r.get("skipped")]
        if skipped:
            cell["skipped"] = skipped[0]
        metrics = (
            ("req_per_s", "worker_peak_rss_mib")
            if key[2] == "throughput"
            else ("p50_ms", "p90_ms", "p99_ms", "max_ms")
        )
        for metric in metrics:
            values = [float(r[metric]) for r in valid if r.get(metric) is not None]
            if values:
                cell[metric] = _spread(values)
        others = [float(r["other_cores"]) for r in valid if "other_cores" in r]
        if others:
            cell["other_cores_max"] = max(others)
        for group_name in ("cpu_us_per_req", "cores"):
            names = sorted({name for r in valid for name in r.get(group_name, {})})
            cell[group_name] = {
                name: statistics.median([r[group_name][name] for r in valid if name in r.get(group_name, {})])
                for name in names
            }
        out["/".join(str(k) for k in key)] = cell
    return out


def _median(summary: dict[str, dict[str, Any]], key: str, metric: str) -> float | None:
    cell = summary.get(key)
    if cell is None or metric not in cell:
        return None
    value: float = cell[metric]["median"]
    return value


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(summary: dict[str, dict[str, Any]], formats: list[str]) -> dict[str, dict[str, float | None]]:
    """Per format: worker/bare (1 and 2 processes), p99 worker/bare at 100/s, 2p/1p, worker/per-call."""
    out: dict[str, dict[str, float | None]] = {}
    for fmt in formats:

        def thr(variant: str, procs: int, fmt: str = fmt) -> float | None:
            return _median(summary, f"{variant}/{fmt}/throughput/{procs}", "req_per_s")

        def p99(variant: str, fmt: str = fmt) -> float | None:
            return _median(summary, f"{variant}/{fmt}/latency/100", "p99_ms")

        out[fmt] = {
            "worker_over_bare_1p": _ratio(thr("worker", 1), thr("bare", 1)),
            "worker_over_bare_2p": _ratio(thr("worker", 2), thr("bare", 2)),
            "p99_100_worker_over_bare": _ratio(p99("worker"), p99("bare")),
            "worker_2p_over_1p": _ratio(thr("worker", 2), thr("worker", 1)),
            "bare_2p_over_1p": _ratio(thr("bare", 2), thr("bare", 1)),
            "worker_over_per_call_1p": _ratio(thr("worker", 1), thr("per_call", 1)),
            "worker_over_per_call_2p": _ratio(thr("worker", 2), thr("per_call", 2)),
            "bare_over_per_call_1p": _ratio(thr("bare", 1), thr("per_call", 1)),
            "per_call_over_worker_1p": _ratio(thr("per_call", 1), thr("worker", 1)),
        }
    return out


def targets(ratio_table: dict[str, dict[str, float | None]]) -> dict[str, dict[str, Any]]:
    """Whether each of issue 5's targets is met: for every format (and process count where it applies)."""
    checks = {
        "throughput": ("worker_over_bare_1p", "worker_over_bare_2p"),
        "p99_100": ("p99_100_worker_over_bare",),
        "scaling": ("worker_2p_over_1p",),
        "per_call": ("worker_over_per_call_1p",),
    }
    out: dict[str, dict[str, Any]] = {}
    for key, description, threshold, higher in TARGETS:
        values = {f"{fmt}:{name}": ratio_table[fmt][name] for fmt in ratio_table for name in checks[key]}
        known = [v for v in values.values() if v is not None]
        met: bool | None
        if len(known) < len(values):
            met = None
        else:
            met = all(v >= threshold if higher else v <= threshold for v in known)
        out[key] = {"description": description, "threshold": threshold, "values": values, "met": met}
    return out


def _fmt_spread(cell: dict[str, Any] | None, metric: str, digits: int = 0) -> str:
    if cell is None:
        return "-"
    if metric not in cell:
        return "skipped" if cell.get("skipped") else "n/a"
    s = cell[metric]
    mark = "*" if cell.get("disturbed_only") else ""
    if s["n"] == 1:
        return f"{s['median']:.{digits}f}{mark}"
    return f"{s['median']:.{digits}f} [{s['min']:.{digits}f}..{s['max']:.{digits}f}]{mark}"


def _latency(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "-"
    if "p99_ms" not in cell:
        return "skipped" if cell.get("skipped") else "n/a"
    return f"{cell['p50_ms']['median']:.2f} / {_fmt_spread(cell, 'p99_ms', 2)}"


def _cpu(cell: dict[str, Any] | None, name: str) -> str:
    if cell is None or name not in cell.get("cpu_us_per_req", {}):
        return "-"
    return f"{cell['cpu_us_per_req'][name]:.0f}"


def _peak_rss(cell: dict[str, Any] | None) -> str:
    if cell is None or "worker_peak_rss_mib" not in cell:
        return "-"
    return f"{cell['worker_peak_rss_mib']['median']:.0f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join(lines)


def _r(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(result: dict[str, Any]) -> str:
    """The table, the ratios and the target verdicts as printed at the end of a run."""
    summary = result["summary"]
    formats: list[str] = result["meta"]["formats"]
    variants: list[str] = result["meta"]["variants"]
    header = [
        "variant",
        "answer",
        "1 proc req/s",
        "worker µs/req",
        "broker µs/req",
        "server µs/req",
        "worker peak MiB",
        "2 procs req/s",
        "e2e @100/s p50 / p99 ms",
        "e2e @500/s p50 / p99 ms",
    ]
    rows = []
    for fmt in formats:
        for variant in variants:
            one = summary.get(f"{variant}/{fmt}/throughput/1")
            rows.append(
                [
                    VARIANT_LABELS.get(variant, variant),
                    fmt,
                    _fmt_spread(one, "req_per_s"),
                    _cpu(one, "worker"),
                    _cpu(one, "broker"),
                    _cpu(one, "server"),
                    _peak_rss(one),
                    _fmt_spread(summary.get(f"{variant}/{fmt}/throughput/2"), "req_per_s"),
                    _latency(summary.get(f"{variant}/{fmt}/latency/100")),
                    _latency(summary.get(f"{variant}/{fmt}/latency/500")),
                ]
            )
    parts = [_table(header, rows), ""]
    ratio_table = result["ratios"]
    ratio_rows = [
        [
            fmt,
            _r(r["worker_over_bare_1p"]),
            _r(r["worker_over_bare_2p"]),
            _r(r["p99_100_worker_over_bare"]),
            _r(r["worker_2p_over_1p"]),
            _r(r["bare_2p_over_1p"]),
            _r(r["worker_over_per_call_1p"], 1),
            _r(r["per_call_over_worker_1p"], 3),
        ]
        for fmt, r in ratio_table.items()
    ]
    parts.append(
        _table(
            [
                "answer",
                "worker/bare 1p",
                "worker/bare 2p",
                "p99@100 worker/bare",
                "worker 2p/1p",
                "(bare 2p/1p)",
                "worker/per-call",
                "per-call/worker",
            ],
            ratio_rows,
        )
    )
    parts.append("")
    for key, *_ in TARGETS:
        verdict = result["targets"][key]
        met = verdict["met"]
        mark = "MET" if met else "NOT MET" if met is False else "UNKNOWN"
        shown = ", ".join(f"{k} {_r(v)}" for k, v in verdict["values"].items())
        parts.append(f"[{mark:>7}] {verdict['description']}: {shown}")
    meta = result["meta"]
    if meta.get("code_changed", meta.get("git") != meta.get("git_at_end", meta.get("git"))):
        parts.append(
            f"\nwarning: the code changed during the run ({meta.get('git')} -> {meta['git_at_end']}); "
            "workers started later ran the newer code"
        )
    disturbed = sorted(k for k, c in summary.items() if c.get("disturbed_only"))
    if disturbed:
        parts.append(
            f"\n* warning: in {len(disturbed)} cell(s) every run was disturbed (other programs used more "
            f"than {FOREIGN_LOAD_CORES} cores): {', '.join(disturbed)}; those numbers understate the pipeline"
        )
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python bench/report.py RESULTS.json", file=sys.stderr)
        return 2
    try:
        result = json.loads(Path(argv[0]).read_text())
        result["summary"] = summarize(result["runs"])  # recomputed: the rules may be newer than the file
        result["ratios"] = ratios(result["summary"], list(result["meta"]["formats"]))
        result["targets"] = targets(result["ratios"])
        print(render(result))
    except (OSError, ValueError, KeyError) as exc:
        print(f"report: cannot render {argv[0]}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
