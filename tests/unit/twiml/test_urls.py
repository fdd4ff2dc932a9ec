"""Relative URLs resolve exactly as RFC 3986 section 5 says (not as Kazoo's resolver does)."""

from __future__ import annotations

import pytest

from pivot_worker.errors import PivotError, Reason
from pivot_worker.twiml.urls import remove_dot_segments, resolve_http_url, resolve_reference

BASE = "http://a/b/c/d;p?q"

# RFC 3986 5.4.1 (normal) and 5.4.2 (abnormal) examples, strict parser.
RFC_EXAMPLES = {
    "g:h": "g:h",
    "g": "http://a/b/c/g",
    "./g": "http://a/b/c/g",
    "g/": "http://a/b/c/g/",
    "/g": "http://a/g",
    "//g": "http://g",
    "?y": "http://a/b/c/d;p?y",
    "g?y": "http://a/b/c/g?y",
    "#s": "http://a/b/c/d;p?q#s",
    "g#s": "http://a/b/c/g#s",
    "g?y#s": "http://a/b/c/g?y#s",
    ";x": "http://a/b/c/;x",
    "g;x": "http://a/b/c/g;x",
    "g;x?y#s": "http://a/b/c/g;x?y#s",
    "": "http://a/b/c/d;p?q",
    ".": "http://a/b/c/",
    "./": "http://a/b/c/",
    "..": "http://a/b/",
    "../": "http://a/b/",
    "../g": "http://a/b/g",
    "../..": "http://a/",
    "../../": "http://a/",
    "../../g": "http://a/g",
    "../../../g": "http://a/g",
    "../../../../g": "http://a/g",
    "/./g": "http://a/g",
    "/../g": "http://a/g",
    "g.": "http://a/b/c/g.",
    ".g": "http://a/b/c/.g",
    "g..": "http://a/b/c/g..",
    "..g": "http://a/b/c/..g",
    "./../g": "http://a/b/g",
    "./g/.": "http://a/b/c/g/",
    "g/./h": "http://a/b/c/g/h",
    "g/../h": "http://a/b/c/h",
    "g;x=1/./y": "http://a/b/c/g;x=1/y",
    "g;x=1/../y": "http://a/b/c/y",
    "g?y/./x": "http://a/b/c/g?y/./x",
    "g?y/../x": "http://a/b/c/g?y/../x",
    "g#s/./x": "http://a/b/c/g#s/./x",
    "g#s/../x": "http://a/b/c/g#s/../x",
    "http:g": "http:g",
}


@pytest.mark.parametrize(("reference", "expected"), RFC_EXAMPLES.items())
def test_rfc3986_examples(reference: str, expected: str) -> None:
    assert resolve_reference(BASE, reference) == expected


@pytest.mark.parametrize(
    ("base", "reference", "expected"),
    [
        # Where Kazoo's resolver goes wrong (docs/kazoo-contract.md §4.6):
        ("http://h/app/ivr", "next", "http://h/app/next"),
        ("http://h/ivr?x=1", "n.php", "http://h/n.php"),
        ("http://pivot/script.php", "/script2.php", "http://pivot/script2.php"),
        ("http://h/d1/d2/file.ext", "/root", "http://h/root"),
        ("https://h", "menu", "https://h/menu"),
        ("https://h/a/b", "HTTPS://Other/x", "HTTPS://Other/x"),
    ],
)
def test_cases_kazoo_gets_wrong(base: str, reference: str, expected: str) -> None:
    assert resolve_reference(base, reference) == expected


def test_remove_dot_segments_rfc_examples() -> None:
    assert remove_dot_segments("/a/b/c/./../../g") == "/a/g"
    assert remove_dot_segments("mid/content=5/../6") == "mid/6"


def test_http_url_lowercases_scheme_only() -> None:
    assert resolve_http_url("https://h/a", "HTTP://Example.COM/X?Y#F", what="t") == "http://Example.COM/X?Y#F"


@pytest.mark.parametrize(
    "reference",
    ["", "   ", "mailto:a@b", "ftp://h/x", "http:relative", "http:///nohost", "a b", "http://h/\x00", "//"],
)
def test_http_url_rejections(reference: str) -> None:
    with pytest.raises(PivotError) as info:
        resolve_http_url("https://ivr.example.com/x", reference, what="<Redirect> URL")
    assert info.value.reason is Reason.INVALID_URL
    assert "<Redirect> URL" in str(info.value)


def test_http_url_length_bound() -> None:
    with pytest.raises(PivotError):
        resolve_http_url("https://h/", "x" * 5000, what="t")
