"""Schemathesis against the running API, from its own OpenAPI document: no 5xx, answers as documented.

Bounded: a fixed seed, a capped number of examples and a time budget, loopback only.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from pivot_worker.collector.store import Store
from pivot_worker.errors import Reason
from pivot_worker.trace import Outcome

from .conftest import IN_CI
from .support import ACCOUNT_A, ACCOUNT_B, TOKEN_ALL, events_of, make_trace

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "ignored_auth",
    ]
)


def _schemathesis() -> list[str]:
    if importlib.util.find_spec("schemathesis") is None:
        message = "schemathesis is not installed (pip install schemathesis)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "schemathesis.cli"]


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
async def test_fuzzing_the_documented_api_finds_no_server_error(store: Store, api: str) -> None:
    command = _schemathesis()
    now = time.time()
    await store.write(
        [
            e
            for t in (
                make_trace(call="fuzz-call@10.0.0.1", received_at=now - 60),
                make_trace(account=ACCOUNT_B, call="fuzz-b"),
                make_trace(call="fuzz-failed", status=500, outcome=Outcome.FAILED, reason=Reason.HTTP_STATUS),
            )
            for e in events_of(t)
        ]
    )
    env = dict(os.environ, SCHEMATHESIS_TELEMETRY="false", NO_COLOR="1")
    process = await asyncio.create_subprocess_exec(
        *command, "run", f"{api}/openapi.json",
        "--header", f"X-Auth-Token: {TOKEN_ALL}",
        "--checks", CHECKS,
        "--max-examples", "40",
        "--max-time", "25",
        "--seed", "20240312",
        "--workers", "1",
        "--request-timeout", "5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=55)
    report = out.decode(errors="replace")
    assert process.returncode == 0, report[-6000:]
    assert "passed" in report.lower() or "no issues found" in report.lower(), report[-3000:]
    assert ACCOUNT_A  # the seeded data belongs to accounts the token may read
