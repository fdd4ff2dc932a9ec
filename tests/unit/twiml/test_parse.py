"""The parser is hardened, bounded, and says where a document is broken."""

from __future__ import annotations

import pytest
from lxml import etree

from pivot_worker.errors import Reason, TranslationError
from pivot_worker.twiml.limits import MAX_DOCUMENT_BYTES, MAX_ELEMENT_DEPTH
from pivot_worker.twiml.locate import start_tag_offsets
from pivot_worker.twiml.parse import PARSER, parse_document


def _error(body: bytes) -> TranslationError:
    with pytest.raises(TranslationError) as info:
        parse_document(body)
    return info.value


def test_parser_never_reads_external_entities_or_dtds(tmp_path) -> None:
    # ruff has no lxml rule any more: this test is the guard against a softened parser.
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    dtd = tmp_path / "evil.dtd"
    dtd.write_text(f'<!ENTITY leak SYSTEM "{secret.as_uri()}">')
    for body in (
        f'<!DOCTYPE r [<!ENTITY e SYSTEM "{secret.as_uri()}">]><r>&e;</r>',
        f'<!DOCTYPE r SYSTEM "{dtd.as_uri()}"><r>&leak;</r>',
        '<!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>',
    ):
        root = etree.fromstring(body.encode(), PARSER)  # parses: entities stay unexpanded
        text = "".join(str(t) for t in root.itertext())
        assert "top secret" not in text
        assert "aaaa" not in text


def test_doctype_is_refused() -> None:
    err = _error(b'<!DOCTYPE Response [<!ENTITY e "x">]><Response><Say>&e;</Say></Response>')
    assert err.reason is Reason.PARSE_ERROR
    assert "DOCTYPE" in err.findings[0].message


def test_external_dtd_is_refused_without_reading_it(tmp_path) -> None:
    secret = tmp_path / "secret.dtd"
    secret.write_text('<!ENTITY leak "top secret">')
    err = _error(
        f'<!DOCTYPE Response SYSTEM "{secret.as_uri()}"><Response><Say>&leak;</Say></Response>'.encode()
    )
    assert err.findings[0].code == "12100"
    assert "top secret" not in str(err)


def test_billion_laughs_is_refused_quickly() -> None:
    lol = b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">' + b"".join(
        b'<!ENTITY %s "%s">' % (chr(98 + i).encode(), (b"&" + chr(97 + i).encode() + b";") * 10)
        for i in range(8)
    )
    err = _error(lol + b"]><Response><Say>&i;</Say></Response>")
    assert err.reason is Reason.PARSE_ERROR


def test_syntax_error_carries_line_and_column() -> None:
    err = _error(b"<Response>\n  <Say>hi</Say>\n  <Gather><Say>x</Gather>\n</Response>")
    finding = err.findings[0]
    assert finding.code == "12100"
    assert finding.line == 3
    assert finding.column is not None and finding.column > 1


@pytest.mark.parametrize("body", [b"", b"   \n", b"not xml", b"\xff\xfe\x00garbage", b"<Response>"])
def test_unparsable_bodies_are_parse_errors(body: bytes) -> None:
    err = _error(body)
    assert err.reason is Reason.PARSE_ERROR
    assert err.findings[0].line is not None


def test_root_must_be_response() -> None:
    err = _error(b'<?xml version="1.0"?>\n<Respons><Say>x</Say></Respons>')
    assert err.findings[0].code == "12100"
    assert err.findings[0].pointer == "/Respons"
    assert (err.findings[0].line, err.findings[0].column) == (2, 1)


def test_size_limit() -> None:
    err = _error(b"<Response>" + b" " * MAX_DOCUMENT_BYTES + b"</Response>")
    assert err.reason is Reason.LIMIT_EXCEEDED


def test_depth_limit() -> None:
    deep = "<Say>" * MAX_ELEMENT_DEPTH + "x" + "</Say>" * MAX_ELEMENT_DEPTH
    err = _error(f"<Response>{deep}</Response>".encode())
    assert err.reason is Reason.LIMIT_EXCEEDED
    assert err.findings[0].code == "nesting-depth"


def test_non_ascii_text_and_declared_encodings() -> None:
    utf8 = parse_document("<Response><Say>café</Say></Response>".encode())
    assert utf8.root[0].text == "café"
    latin = parse_document(
        '<?xml version="1.0" encoding="ISO-8859-1"?><Response><Say>caf\xe9</Say></Response>'.encode("latin-1")
    )
    assert latin.root[0].text == "café"
    utf16 = parse_document(
        '<?xml version="1.0" encoding="UTF-16"?><Response><Say>é</Say></Response>'.encode("utf-16")
    )
    assert utf16.root[0].text == "é"


@pytest.mark.parametrize(
    ("body", "offset", "line", "column"),
    [
        (b"<Response><Say>caf\xe9</Say></Response>", 18, 1, 19),  # no declaration: UTF-8
        (b"\xef\xbb\xbf<Response>\n<Say>\xff</Say></Response>", 19, 2, 6),  # BOM: UTF-8
        (b'<?xml version="1.0" encoding="utf-8"?>\n<Response><Say>a\xc3(</Say></Response>', 55, 2, 17),
        (b"<?xml version='1.0' encoding='ascii'?><Response><Say>\x80</Say></Response>", 53, 1, 54),
    ],
)
def test_bytes_invalid_in_the_documents_encoding_are_located(
    body: bytes, offset: int, line: int, column: int
) -> None:
    err = _error(body)
    assert err.reason is Reason.INVALID_ENCODING
    (finding,) = err.findings
    assert f"at offset {offset}" in finding.message
    assert (finding.line, finding.column) == (line, column)


def test_unknown_declared_encoding_is_an_encoding_failure() -> None:
    err = _error(b'<?xml version="1.0" encoding="klingon"?><Response/>')
    assert err.reason is Reason.INVALID_ENCODING
    assert "klingon" in err.findings[0].message


def test_comments_are_dropped() -> None:
    doc = parse_document(b"<Response><!-- a --><Say>x</Say><?pi x?></Response>")
    assert [child.tag for child in doc.root] == ["Say"]


def test_locator_columns_on_one_line() -> None:
    doc = parse_document(
        b'<Response><Say>a</Say><!-- <Say> --><![CDATA[<x>]]><Say a="&gt;">b</Say></Response>'
    )
    second = doc.root[1]
    assert doc.locator.pointer(second) == "/Response/Say[2]"
    assert doc.locator.position(second) == (1, 52)  # 10 + 12 + 14 + 15 characters precede it


def test_locator_skips_byte_order_mark() -> None:
    doc = parse_document(b"\xef\xbb\xbf<Response><Say>a</Say></Response>")
    assert doc.locator.position(doc.root[0]) == (1, 11)


def test_start_tag_scan() -> None:
    assert start_tag_offsets("<a><?p?><!--<b>--><c/></a>") == [0, 18]


def test_depth_limit_in_utf16() -> None:
    deep = "<Say>" * MAX_ELEMENT_DEPTH + "x" + "</Say>" * MAX_ELEMENT_DEPTH
    for encoding in ("utf-16", "utf-16-be", "utf-16-le"):
        declared = f'<?xml version="1.0" encoding="{encoding.upper()}"?>' if encoding != "utf-16" else ""
        err = _error(f"{declared}<Response>{deep}</Response>".encode(encoding))
        assert err.reason is Reason.LIMIT_EXCEEDED, encoding
        assert err.findings[0].code == "nesting-depth", encoding


def test_depth_at_the_limit_is_accepted() -> None:
    nested = "<Say>" * (MAX_ELEMENT_DEPTH - 1) + "x" + "</Say>" * (MAX_ELEMENT_DEPTH - 1)
    doc = parse_document(f"<Response>{nested}</Response>".encode())
    assert doc.root.tag == "Response"
