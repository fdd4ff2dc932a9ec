"""The developer's web server for benchmarks: fixed answers, keep-alive, as cheap as it can be.

A raw ``asyncio.Protocol`` on uvloop, so the server costs a few tens of microseconds of CPU per
request and never limits what is measured. ``/kazoo`` (and anything below it) answers the Kazoo
callflow JSON of :mod:`bench.payloads`, ``/twiml`` the TwiML document; anything else is 404.
Requests may carry a body (``Content-Length``); chunked bodies are refused with 411, since no
client in the benchmarks sends them.

Usage: ``python bench/devserver.py [--port N] [--delay-ms MS | --hang]``. It listens on 127.0.0.1
only and prints one line, ``READY http://127.0.0.1:<port>``, once it accepts connections; SIGTERM or
SIGINT stops it. ``--delay-ms`` holds every answer that long (a slow developer server; answers on
one connection stay in order); ``--hang`` accepts connections and reads requests but never answers
(a developer server that is up but stuck). It reports the connections it accepted when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import cast

if __package__ in (None, ""):
    import _bootstrap  # type: ignore[import-not-found]  # noqa: F401

import uvloop

from bench import payloads

MAX_HEAD = 64 * 1024


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n\r\n"
    )
    return head.encode("ascii") + body


class Answers:
    """The fully rendered responses, built once at start-up."""

    def __init__(self, base_url: str) -> None:
        self.kazoo = _response("200 OK", "application/json", payloads.kazoo_document(base_url))
        self.twiml = _response("200 OK", "text/xml", payloads.TWIML_DOCUMENT)
        self.not_found = _response("404 Not Found", "text/plain", b"not found\n")
        self.too_large = _response("431 Request Header Fields Too Large", "text/plain", b"head too large\n")
        self.length_required = _response("411 Length Required", "text/plain", b"send Content-Length\n")
        self.bad_request = _response("400 Bad Request", "text/plain", b"bad request line\n")

    def for_path(self, path: bytes) -> bytes:
        if path == b"/kazoo" or path.startswith(b"/kazoo/"):
            return self.kazoo
        if path == b"/twiml" or path.startswith(b"/twiml/"):
            return self.twiml
        return self.not_found


class DeveloperServer(asyncio.Protocol):
    """One connection: parse pipelined HTTP/1.1 requests from a buffer, answer each in order."""

    served = 0
    accepted = 0
    delay_s = 0.0  # hold each answer this long
    hang = False  # never answer

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's class does not subclass it
        DeveloperServer.accepted += 1

    def data_received(self, data: bytes) -> None:
        if DeveloperServer.hang:
            return  # read and drop: the client waits for an answer that never comes
        self.buffer += data
        while self.transport is not None and not self.transport.is_closing():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self._finish(self.answers.too_large)
                return
            head = bytes(self.buffer[:end]).lower()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name == b"content-length":
                    length = int(value.strip() or b"0")
                elif name == b"transfer-encoding":
                    self._finish(self.answers.length_required)
                    return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            request_line = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            del self.buffer[:total]
            parts = request_line.split(b" ")
            if len(parts) != 3:
                self._finish(self.answers.bad_request)
                return
            path = parts[1].split(b"?", 1)[0]
            DeveloperServer.served += 1
            close = parts[2] == b"HTTP/1.0" or b"connection: close" in head
            if DeveloperServer.delay_s > 0:
                loop = asyncio.get_running_loop()
                loop.call_later(
                    DeveloperServer.delay_s, self._answer_later, self.answers.for_path(path), close
                )
                continue
            self.transport.write(self.answers.for_path(path))
            if close:
                self.transport.close()

    def _answer_later(self, response: bytes, close: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # the client gave up meanwhile
        self.transport.write(response)
        if close:
            self.transport.close()

    def _finish(self, response: bytes) -> None:
        assert self.transport is not None
        self.transport.write(response)
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    holder: list[Answers] = []
    server = await loop.create_server(lambda: DeveloperServer(holder[0]), "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    base_url = f"http://127.0.0.1:{bound}"
    holder.append(Answers(base_url))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {base_url}", flush=True)
    async with server:
        await stop.wait()
    print(
        f"devserver: served {DeveloperServer.served} requests on {DeveloperServer.accepted} connections",
        file=sys.stderr,
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: any free one)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--delay-ms", type=float, default=0.0, help="hold every answer this long")
    mode.add_argument("--hang", action="store_true", help="accept connections, never answer")
    args = parser.parse_args()
    if args.delay_ms < 0:
        parser.error("--delay-ms must be 0 or more")
    DeveloperServer.delay_s = args.delay_ms / 1000.0
    DeveloperServer.hang = args.hang
    uvloop.run(serve(args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
