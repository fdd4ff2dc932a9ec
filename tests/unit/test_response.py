from __future__ import annotations

import pytest

from pivot_worker.errors import Reason, ResponseError, TranslationError
from pivot_worker.response import classify, parse_kazoo_json, xml_declared_encoding, xml_for_parser


@pytest.mark.parametrize(
    ("content_type", "body", "fmt", "sniffed"),
    [
        ("application/json", b'{"module":"hangup"}', "kazoo", False),
        ("Application/JSON; charset=UTF-8", b"{}", "kazoo", False),
        ("application/vnd.acme+json", b"{}", "kazoo", False),
        ("text/xml", b"<Response/>", "twiml", False),
        ("APPLICATION/XML;charset=utf-8", b"<Response/>", "twiml", False),
        (None, b"  \n<Response/>", "twiml", True),
        ("text/html", b'{"module":"hangup"}', "kazoo", True),
        ("text/plain", b"\xef\xbb\xbf<?xml version='1.0'?><Response/>", "twiml", True),
    ],
)
def test_classify(content_type: str | None, body: bytes, fmt: str, sniffed: bool) -> None:
    result = classify(content_type, body)
    assert (result.format, result.sniffed) == (fmt, sniffed)


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("application/json", b"", Reason.EMPTY_RESPONSE),
        ("text/xml", b" \r\n\t", Reason.EMPTY_RESPONSE),
        ("text/plain", b"hello", Reason.UNSUPPORTED_FORMAT),
        (None, b"OK", Reason.UNSUPPORTED_FORMAT),
        ("application/json; charset=klingon", b"{}", Reason.INVALID_ENCODING),
    ],
)
def test_classify_failures(content_type: str | None, body: bytes, reason: Reason) -> None:
    with pytest.raises(ResponseError) as info:
        classify(content_type, body)
    assert info.value.reason is reason


def test_json_syntax_error_is_located() -> None:
    with pytest.raises(TranslationError) as info:
        parse_kazoo_json(b'{"module": "tts",\n "data": {]}', "utf-8")
    assert info.value.reason is Reason.PARSE_ERROR
    finding = info.value.findings[0]
    assert finding.line == 2 and finding.column is not None


def test_invalid_utf8_is_an_encoding_failure_with_offset() -> None:
    with pytest.raises(ResponseError) as info:
        parse_kazoo_json(b'{"module": "tts", "data": {"text": "\xff"}}', "utf-8")
    assert info.value.reason is Reason.INVALID_ENCODING
    assert "offset 36" in str(info.value)


def test_declared_latin1_charset_is_honoured() -> None:
    assert parse_kazoo_json('{"t": "café"}'.encode("latin-1"), "latin-1") == {"t": "café"}


def test_classify_says_whether_the_charset_was_declared() -> None:
    assert classify("text/xml", b"<Response/>").charset_declared is False
    declared = classify("text/xml; charset=ISO-8859-1", b"<Response/>")
    assert (declared.charset, declared.charset_declared) == ("iso-8859-1", True)


def test_xml_declared_encoding() -> None:
    assert xml_declared_encoding(b'<?xml version="1.0" encoding="ISO-8859-1"?><Response/>') == "ISO-8859-1"
    assert xml_declared_encoding(b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8' ?><a/>") == "utf-8"
    assert xml_declared_encoding(b'<?xml version="1.0"?><Response/>') is None
    assert xml_declared_encoding(b'<Response encoding="x"/>') is None


def test_xml_for_parser_honours_a_content_type_charset_only_for_a_body_that_declares_none() -> None:
    latin = "<Response><Say>café</Say></Response>".encode("latin-1")
    assert xml_for_parser(latin, "iso-8859-1") == "<Response><Say>café</Say></Response>".encode()
    assert xml_for_parser(latin, None) is latin  # the parser checks it as UTF-8
    assert xml_for_parser(latin, "utf-8") is latin
    declared = b'<?xml version="1.0" encoding="ISO-8859-1"?>' + latin
    assert xml_for_parser(declared, "utf-8") is declared  # the document's own declaration wins
    with pytest.raises(ResponseError) as info:
        xml_for_parser(b"<Response>\x81</Response>", "cp1252")
    assert info.value.reason is Reason.INVALID_ENCODING
    assert "offset 10" in str(info.value)
