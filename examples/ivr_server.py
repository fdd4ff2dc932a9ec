"""A tiny pivot script server: the same two-level IVR in TwiML and in Kazoo callflow JSON.

    python examples/ivr_server.py --port 8080

* ``GET|POST /twiml``: welcome, then a one-digit ``<Gather>`` posting to ``/twiml/menu``; no key
  pressed: a goodbye.
* ``GET|POST /twiml/menu``: ``Digits=1`` -> the news and a hang-up; anything else -> back to
  ``/twiml`` (``<Redirect>``).
* ``GET|POST /kazoo`` and ``/kazoo/menu``: the same IVR as Kazoo callflow JSON (``tts``,
  ``collect_dtmf``, a nested ``pivot`` to ``/kazoo/menu``), which reads the digits Kazoo sends as
  ``Digits[default]``.
* ``GET|POST /twiml/support``: dial the support line, then a one-question survey in the Dial's
  action (``/twiml/survey``), which says what ``DialCallStatus`` it got. After an answered dial
  this needs ``PIVOT_AFTER_DIAL_EXTENSION`` (docs/twiml.md, "After an answered Dial"); try it with
  ``PIVOT_AFTER_DIAL_EXTENSION='*7799' pivot-worker simulate http://127.0.0.1:8080/twiml/support
  --answer-dials``.

Only aiohttp (a dependency of pivot-worker) is needed. Try it with
``pivot-worker simulate http://127.0.0.1:8080/twiml --digits 1``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

WELCOME = "Welcome to the pivot-worker demo."
PROMPT = "Press 1 for the news, or any other key to start again."
NEWS = "Here is the news: your first pivot call works. Goodbye."
SUPPORT_LINE = "+14155550123"
GOODBYE = "We did not get your choice. Goodbye."


async def _params(request: web.Request) -> Mapping[str, str]:
    """Query and form params together, as a pivot request sends them (GET: query; POST: form)."""
    params: dict[str, str] = dict(request.query)
    if request.method == "POST":
        if request.content_type == "application/json":
            body = await request.json()
            params.update({k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in body.items()})
        else:
            params.update({k: str(v) for k, v in (await request.post()).items()})
    return params


def _xml(body: str) -> web.Response:
    return web.Response(text=f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n', content_type="text/xml")


async def twiml(request: web.Request) -> web.Response:
    return _xml(
        "<Response>"
        f"<Say>{WELCOME}</Say>"
        f'<Gather numDigits="1" action="/twiml/menu"><Say>{PROMPT}</Say></Gather>'
        f"<Say>{GOODBYE}</Say>"
        "</Response>"
    )


async def twiml_menu(request: web.Request) -> web.Response:
    digits = (await _params(request)).get("Digits", "")
    if digits == "1":
        return _xml(f"<Response><Say>{NEWS}</Say><Hangup/></Response>")
    return _xml("<Response><Redirect>/twiml</Redirect></Response>")


async def twiml_support(request: web.Request) -> web.Response:
    return _xml(f'<Response><Dial action="/twiml/survey">{SUPPORT_LINE}</Dial></Response>')


async def twiml_survey(request: web.Request) -> web.Response:
    status = (await _params(request)).get("DialCallStatus", "unknown")
    if status != "completed":
        return _xml(f"<Response><Say>Support could not take your call ({status}). Goodbye.</Say></Response>")
    return _xml(
        "<Response>"
        '<Gather numDigits="1" action="/twiml/menu"><Say>Thanks for calling support. '
        "Press 1 for the news.</Say></Gather>"
        "</Response>"
    )


def _node(module: str, data: dict[str, Any], child: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"module": module, "data": data, "children": {"_": child} if child else {}}


async def kazoo(request: web.Request) -> web.Response:
    menu_url = str(request.url.with_path("/kazoo/menu").with_query(None))
    flow = _node(
        "tts",
        {"text": WELCOME},
        _node(
            "tts",
            {"text": PROMPT},
            _node(
                "collect_dtmf",
                {"max_digits": 1, "timeout": 5000, "collection_name": "default"},
                _node("pivot", {"voice_url": menu_url, "method": "post", "req_format": "kazoo"}),
            ),
        ),
    )
    return web.json_response(flow)


async def kazoo_menu(request: web.Request) -> web.Response:
    params = await _params(request)
    digits = params.get("Digits[default]", "")
    if not digits and params.get("Digits", "").startswith("{"):  # a JSON request body
        digits = json.loads(params["Digits"]).get("default", "")
    if digits == "1":
        return web.json_response(_node("tts", {"text": NEWS}, _node("hangup", {})))
    start_url = str(request.url.with_path("/kazoo").with_query(None))
    return web.json_response(
        _node("pivot", {"voice_url": start_url, "method": "post", "req_format": "kazoo"})
    )


def make_app() -> web.Application:
    app = web.Application()
    for path, handler in (
        ("/twiml", twiml),
        ("/twiml/menu", twiml_menu),
        ("/twiml/support", twiml_support),
        ("/twiml/survey", twiml_survey),
        ("/kazoo", kazoo),
        ("/kazoo/menu", kazoo_menu),
    ):
        app.router.add_route("GET", path, handler)
        app.router.add_route("POST", path, handler)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    base = f"http://{args.host}:{args.port}"
    print(f"TwiML IVR:      {base}/twiml", flush=True)
    print(f"Kazoo JSON IVR: {base}/kazoo", flush=True)
    print(f"try: pivot-worker simulate {base}/twiml --digits 1", flush=True)
    web.run_app(make_app(), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
