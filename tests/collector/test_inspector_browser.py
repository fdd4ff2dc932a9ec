"""The request inspector in a real headless Chromium: token entered in the page, the call the test
just stored listed, its timeline opened, its callflow tree expanded, a screenshot saved."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from pivot_worker.collector.api import make_app
from pivot_worker.collector.auth import TokenBook
from pivot_worker.collector.store import Store
from tests.conftest import IN_CI

from .support import ACCOUNT_A, ACCOUNT_B, TOKEN_A, TOKENS, events_of, make_trace

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The answer a hostile developer server could send: it must show as text, never run.
HOSTILE = (
    b'<Response><Say>Hi</Say><img src=x onerror="window.pwned=1"><script>window.pwned=2</script></Response>'
)
FLOW = {
    "module": "tts",
    "data": {"text": "Welcome"},
    "children": {
        "_": {
            "module": "collect_dtmf",
            "data": {"max_digits": 1},
            "children": {"_": {"module": "pivot", "data": {"voice_url": "https://ivr.example.com/menu"}}},
        }
    },
}


def _need_browser() -> None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing = "playwright is not installed"
    else:
        missing = "" if CHROMIUM else "Debian's chromium is not installed"
    if missing:
        if IN_CI:
            pytest.fail(missing)
        pytest.skip(missing)


@pytest.fixture
async def inspector(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """The API over a SQLite store holding one call of account A (and one of B); base URL, call id."""
    store = await Store.open(f"sqlite:///{tmp_path / 'debug.sqlite3'}")
    mine = make_trace(account=ACCOUNT_A)
    mine.exchanges[0].response_body = HOSTILE
    mine.flow = FLOW
    other = make_trace(account=ACCOUNT_B)
    await store.write(events_of(mine) + events_of(other))
    tokens = tmp_path / "tokens.json"
    tokens.write_bytes(orjson.dumps(TOKENS))
    runner = web.AppRunner(make_app(store, TokenBook(str(tokens)), node="collector@test"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", mine.call_id
    finally:
        await runner.cleanup()
        await store.close()


async def test_the_inspector_shows_the_call_its_timeline_and_its_callflow(
    inspector: tuple[str, str], tmp_path: Path
) -> None:
    _need_browser()
    from playwright.async_api import async_playwright

    base, call_id = inspector
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            outside: list[str] = []
            page.on("request", lambda r: None if r.url.startswith(base) else outside.append(r.url))
            await page.goto(f"{base}/inspector")
            await page.fill("#token", TOKEN_A)
            await page.fill("#account", ACCOUNT_A)
            await page.click("button[type=submit]")
            row = page.locator(f'#calls tbody tr[data-call-id="{call_id}"]')
            await row.wait_for(timeout=10_000)
            assert await page.locator("#calls tbody tr").count() == 1  # B's call is not A's to see

            await row.click()
            await page.locator("#timeline > li.result-success").wait_for(timeout=10_000)
            kinds = await page.locator("#timeline .kind").all_inner_texts()
            assert [k.lower() for k in kinds] == ["request", "response", "result"]
            for text in await page.locator("#timeline > li").all_inner_texts():
                assert "null" not in text.split() and "undefined" not in text.split(), text
            shown = await page.locator("#timeline pre.xml").inner_text()
            assert "<script>window.pwned=2</script>" in shown  # the body as text
            assert await page.evaluate("window.pwned") is None  # ... that never ran

            modules = page.locator("#timeline details.flow-node summary .module")
            assert await modules.all_inner_texts() == ["tts", "collect_dtmf", "pivot"]
            menu = page.locator("#timeline details.flow-node details.flow-node details.flow-node")
            assert await menu.get_attribute("open") is not None
            await page.locator("#timeline details.flow-node details.flow-node > summary").first.click()
            assert (
                await page.locator("#timeline details.flow-node details.flow-node").first.get_attribute(
                    "open"
                )
                is None
            )  # collapsed
            await page.locator("#timeline details.flow-node details.flow-node > summary").first.click()
            assert await page.get_by_text("https://ivr.example.com/menu").first.is_visible()

            shot = tmp_path / "inspector.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            assert outside == []  # nothing but this server was ever asked for
        finally:
            await browser.close()


async def test_a_wrong_token_is_told_in_the_page(inspector: tuple[str, str]) -> None:
    _need_browser()
    from playwright.async_api import async_playwright

    base, _ = inspector
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        try:
            page = await browser.new_page()
            await page.goto(f"{base}/inspector")
            await page.fill("#token", "not-a-token")
            await page.fill("#account", ACCOUNT_A)
            await page.click("button[type=submit]")
            await page.locator("#status", has_text="401").wait_for(timeout=10_000)
            assert await page.locator("#calls tbody tr").count() == 0
        finally:
            await browser.close()


async def test_the_inspector_files_are_served_with_a_strict_policy(inspector: tuple[str, str]) -> None:
    import aiohttp

    base, _ = inspector
    async with aiohttp.ClientSession() as http:
        for path, kind in (("/inspector", "text/html"), ("/inspector.js", "text/javascript")):
            async with http.get(base + path) as resp:
                assert resp.status == 200
                assert resp.content_type == kind
                assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
                assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
