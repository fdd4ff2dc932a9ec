"""``pivot-worker translate``: flow on stdout, numbered located errors, exit codes."""

from __future__ import annotations

import argparse
import io
import json
import pathlib

import pytest

from pivot_worker.translate_cmd import register, run, sniff


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pivot-worker")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["translate", *argv])


def _run(argv: list[str], stdin: bytes = b"") -> tuple[int, str]:
    out = io.StringIO()
    code = run(_parse(argv), stdin=io.BytesIO(stdin), out=out)
    return code, out.getvalue()


def test_translates_twiml_from_stdin() -> None:
    code, out = _run(
        ["-", "--url", "https://ivr.example.com/a/b"], b"<Response><Play>c.mp3</Play></Response>"
    )
    assert code == 0
    flow = json.loads(out)
    assert flow["module"] == "play"
    assert flow["data"]["id"] == "https://ivr.example.com/a/c.mp3"
    assert flow["children"]["_"]["module"] == "hangup"


def test_numbered_errors_with_locations(tmp_path: pathlib.Path) -> None:
    doc = tmp_path / "bad.xml"
    doc.write_text("<Response>\n  <Foo/>\n  <Leave/>\n</Response>\n")
    code, out = _run([str(doc)])
    assert code == 1
    assert "error 1: line 2, column 3 /Response/Foo[1]:" in out
    assert "error 2: line 3, column 3 /Response/Leave[1]:" in out
    assert "[unsupported-verb]" in out


def test_parse_error_is_reported_with_position() -> None:
    code, out = _run(["-"], b"<Response>\n<Say>\n</Response>")
    assert code == 1
    assert "error 1: line 3" in out
    assert "[12100]" in out


def test_warnings_do_not_fail() -> None:
    code, out = _run(["-"], b'<Response><Gather timeout="x"><Say>Hi</Say></Gather></Response>')
    assert code == 0
    assert "warning 1: line 1, column 11 /Response/Gather[1]:" in out


def test_blocked_url_fails_with_reason() -> None:
    code, out = _run(["-"], b"<Response><Play>http://127.0.0.1/x.mp3</Play></Response>")
    assert code == 1
    assert "[blocked_address]" in out


def test_kazoo_json_is_validated_and_completed() -> None:
    code, out = _run(["-"], b'{"module": "tts", "data": {"text": "Hi"}}')
    assert code == 0
    assert json.loads(out)["data"]["voice"] == "female"


def test_kazoo_json_errors() -> None:
    code, out = _run(["-", "--format", "kazoo"], b'{"module": "tts", "data": {}}')
    assert code == 1
    assert "error 1:" in out
    code, out = _run(["-", "--format", "kazoo"], b"{not json")
    assert code == 1
    assert "[json]" in out


def test_missing_file() -> None:
    code, out = _run(["/nonexistent/doc.xml"])
    assert code == 1
    assert "cannot read" in out


@pytest.mark.parametrize(
    ("body", "fmt"),
    [
        (b'  {"module": "x"}', "kazoo"),
        (b"\xef\xbb\xbf[1]", "kazoo"),
        (b"<Response/>", "twiml"),
        (b"", "twiml"),
    ],
)
def test_sniff(body: bytes, fmt: str) -> None:
    assert sniff(body) == fmt


def test_kazoo_json_nested_pivot_to_a_blocked_address_is_refused() -> None:
    flow = (
        b'{"module": "tts", "data": {"text": "Hi"}, "children": {"_": '
        b'{"module": "pivot", "data": {"voice_url": "http://169.254.169.254/latest"}}}}'
    )
    code, out = _run(["-", "--format", "kazoo"], flow)
    assert code == 1
    assert "/children/_/data/voice_url" in out
    assert "blocked_address" in out


def test_after_dial_extension_shows_the_transfer(monkeypatch: pytest.MonkeyPatch) -> None:
    dial = b'<Response><Dial action="/after">+14155550123</Dial></Response>'
    code, out = _run(["-", "--after-dial-extension", "*7799"], dial)
    assert code == 0
    flow = json.loads(out)
    assert flow["module"] == "set_variables"
    assert flow["children"]["_"]["data"] == {"action": "transfer", "data": "*7799"}
    monkeypatch.setenv("PIVOT_AFTER_DIAL_EXTENSION", "*1234")  # the default comes from the variable
    code, out = _run(["-"], dial)
    assert json.loads(out)["children"]["_"]["data"]["data"] == "*1234"
