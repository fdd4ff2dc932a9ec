"""Signed requests from a real `pivot-worker run`: keys from PIVOT_SIGNING_KEYS_FILE, a real SIGHUP
rotates them, a bad file on reload keeps the old ones, a bad file at start-up stops the start."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl

import orjson
import pytest
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from pivot_worker.signing import verify_pivot_signature
from tests.e2e.conftest import delete_queues, worker_env
from tests.e2e.devserver import DevServer, Seen
from tests.e2e.kazoo_side import ACCOUNT_ID, KazooCallflow, pivot_req
from tests.e2e.workers import WorkerProcess

pytestmark = pytest.mark.rabbit

TTS = '{"module": "tts", "data": {"text": "Hello"}}'


@pytest.fixture
async def own_queue(broker: str) -> AsyncIterator[str]:
    name = f"pivot_signing_{uuid.uuid4().hex[:8]}"
    yield name
    await delete_queues(broker, name, f"{name}.dead")


async def call_once(kazoo: KazooCallflow, dev: DevServer, url: str, path: str) -> Seen:
    count = len(dev.seen_at(path))
    side, call = kazoo.new_call()
    await kazoo.publish(side, pivot_req(call, url, **{"HTTP-Method": "post"}))
    seen = await dev.wait_seen(path, count + 1)
    await side.wait_for(2, timeout=5.0)
    return seen[-1]


def signed_by(seen: Seen, key: str) -> bool:
    url = f"http://{seen.headers['Host']}{seen.path}" + (f"?{seen.query_string}" if seen.query_string else "")
    form = MultiDict(parse_qsl(seen.body.decode(), keep_blank_values=True))
    twilio_ok = RequestValidator(key).validate(url, form, seen.headers["X-Twilio-Signature"])
    pivot_ok = verify_pivot_signature(
        seen.headers["X-Pivot-Signature"], "POST", url, seen.body, [key], now=time.time()
    )
    assert twilio_ok == pivot_ok, (twilio_ok, pivot_ok)
    return twilio_ok


async def wait_for_log(worker: WorkerProcess, text: str, count: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while worker.log().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged {count} times:\n{worker.log()}"
        await asyncio.sleep(0.05)


async def test_sighup_rotates_the_keys_and_a_bad_file_keeps_them(
    broker: str, own_queue: str, kazoo: KazooCallflow, dev: DevServer, tmp_path: Path
) -> None:
    keys = tmp_path / "signing-keys.json"
    keys.write_bytes(orjson.dumps({ACCOUNT_ID: ["k-old"]}))
    env = worker_env(broker, own_queue, PIVOT_SIGNING_KEYS_FILE=str(keys))
    worker = WorkerProcess(env, tmp_path / "w.log", "signer").start()
    try:
        url = dev.answer("/signed", TTS)
        first = await call_once(kazoo, dev, url, "/signed")
        assert signed_by(first, "k-old")

        keys.write_bytes(orjson.dumps({ACCOUNT_ID: ["k-new", "k-old"]}))
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGHUP)
        await wait_for_log(worker, "reloaded PIVOT_SIGNING_KEYS_FILE", 1)
        second = await call_once(kazoo, dev, url, "/signed")
        assert signed_by(second, "k-new")
        assert not signed_by(second, "k-old")

        keys.write_bytes(b'{"' + ACCOUNT_ID.encode() + b'": "not-a-list-secret"}')
        worker.proc.send_signal(signal.SIGHUP)
        await wait_for_log(worker, "keeping the signing keys loaded before", 1)
        third = await call_once(kazoo, dev, url, "/signed")
        assert signed_by(third, "k-new")
        assert worker.proc.poll() is None
    finally:
        code = await asyncio.to_thread(worker.stop)
    assert code == 0
    log = worker.log()
    for secret in ("k-old", "k-new", "not-a-list-secret"):
        assert secret not in log


async def test_a_bad_keys_file_fails_start_up_naming_it(broker: str, own_queue: str, tmp_path: Path) -> None:
    keys = tmp_path / "broken-keys.json"
    keys.write_bytes(b"{broken")
    env = worker_env(broker, own_queue, PIVOT_SIGNING_KEYS_FILE=str(keys))
    worker = WorkerProcess(env, tmp_path / "w.log", "badkeys")
    with pytest.raises(RuntimeError, match="exited with 1"):
        worker.start(timeout=30)
    log = worker.log()
    assert f"pivot-worker: PIVOT_SIGNING_KEYS_FILE {keys}: not valid JSON" in log
