"""The developer's web server: a real aiohttp server on 127.0.0.1 whose answers each test scripts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes


class DevServer:
    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.seen: list[Seen] = []
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.released = asyncio.Event()

    async def hold(self, seconds: float = 60.0) -> None:
        """Keep a handler from answering until the server stops (or ``seconds`` pass)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.released.wait(), seconds)

    def route(self, path: str, handler: Handler) -> str:
        self.routes[path] = handler
        return self.url(path)

    def answer(
        self,
        path: str,
        body: str | bytes,
        *,
        content_type: str | None = "application/json",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> str:
        async def handler(_request: web.Request) -> web.StreamResponse:
            hdrs = dict(headers or {})
            if content_type is not None:
                hdrs["Content-Type"] = content_type
            data = body.encode() if isinstance(body, str) else body
            return web.Response(body=data, status=status, headers=hdrs)

        return self.route(path, handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def seen_at(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    async def wait_seen(self, path: str, count: int, timeout: float = 5.0) -> list[Seen]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.seen_at(path)) < count:
            if loop.time() > deadline:
                raise AssertionError(f"{path}: expected {count} requests, got {len(self.seen_at(path))}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 0.05)
        return self.seen_at(path)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(request.method, request.path, request.query_string, dict(request.headers), body)
        )
        self.arrived.set()
        handler = self.routes.get(request.path)
        if handler is None:
            return web.Response(status=404, text="no such route in this test")
        return await handler(request)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        self.released.set()
        if self._runner is not None:
            await self._runner.cleanup()
