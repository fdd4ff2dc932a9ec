"""From the developer's HTTP answer to a document format: Content-Type first, sniffing as a fallback.

Kazoo compares media types case-sensitively and treats a missing Content-Type as XML only, so a
callflow JSON served without one fails there (docs/kazoo-contract.md §5.1). Here the media type is
compared case-insensitively, ``+json``/``+xml`` suffixes count, the ``charset`` parameter is
honoured, and an absent or generic type is sniffed from the first significant byte (recorded on the
trace).

A body that is not valid in its charset fails ``invalid_encoding`` with the offending byte's offset,
for JSON and XML alike: UTF-8 unless the Content-Type names a charset (for XML, a byte-order mark
or the document's own ``<?xml ... encoding=...?>`` declaration comes first; the TwiML parser checks
those, see ``twiml/parse.py``).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from .errors import Finding, Reason, ResponseError, TranslationError

Format = Literal["kazoo", "twiml"]

_JSON_TYPES = frozenset({"application/json", "text/json"})
_XML_TYPES = frozenset({"application/xml", "text/xml"})
_WHITESPACE = b" \t\r\n\xef\xbb\xbf"  # including a UTF-8 byte-order mark
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_XML_ENCODING = re.compile(rb"""<\?xml\s[^>]*?\bencoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]*)["']""")


@dataclass(frozen=True, slots=True)
class Classified:
    format: Format
    sniffed: bool
    charset: str
    charset_declared: bool = False  # named by the Content-Type (else ``charset`` is the UTF-8 default)


def _parse_content_type(value: str | None) -> tuple[str, str | None]:
    if not value:
        return "", None
    media, _, rest = value.partition(";")
    charset = None
    for param in rest.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            charset = val.strip().strip('"').lower() or None
    return media.strip().lower(), charset


def classify(content_type: str | None, body: bytes) -> Classified:
    """Choose the translator for ``body``; raises :class:`ResponseError` when none applies."""
    media, charset = _parse_content_type(content_type)
    if charset is not None:
        try:
            codecs.lookup(charset)
        except LookupError as exc:
            raise ResponseError(
                f"Content-Type {content_type!r} names an unknown charset {charset!r}",
                reason=Reason.INVALID_ENCODING,
            ) from exc
    stripped = body.lstrip(_WHITESPACE)
    if not stripped:
        raise ResponseError("the response body is empty: nothing to run", reason=Reason.EMPTY_RESPONSE)
    chosen, declared = charset or "utf-8", charset is not None
    if media in _JSON_TYPES or media.endswith("+json"):
        return Classified("kazoo", False, chosen, declared)
    if media in _XML_TYPES or media.endswith("+xml"):
        return Classified("twiml", False, chosen, declared)
    first = stripped[:1]
    if first == b"<":
        return Classified("twiml", True, chosen, declared)
    if first in (b"{", b"["):
        return Classified("kazoo", True, chosen, declared)
    shown = media or "no Content-Type"
    raise ResponseError(
        f"cannot tell the document format: {shown}, and the body starts with neither '<' nor '{{'",
        reason=Reason.UNSUPPORTED_FORMAT,
    )


def decode_text(body: bytes, charset: str) -> str:
    """The body as text; invalid bytes are a failure that names the offset."""
    try:
        return body.decode(charset)
    except UnicodeDecodeError as exc:
        raise ResponseError(
            f"the response body is not valid {charset}: byte 0x{body[exc.start]:02x} at offset {exc.start}",
            reason=Reason.INVALID_ENCODING,
        ) from exc


def xml_declared_encoding(body: bytes) -> str | None:
    """The ``encoding`` of the XML declaration at the very start of ``body`` (after a UTF-8 BOM), if any."""
    start = len(codecs.BOM_UTF8) if body.startswith(codecs.BOM_UTF8) else 0
    if not body.startswith(b"<?xml", start):
        return None
    match = _XML_ENCODING.match(body, start)
    return match.group(1).decode("ascii") if match is not None else None


def xml_for_parser(body: bytes, charset: str | None) -> bytes:
    """An XML answer as the TwiML parser must read it, given the Content-Type's ``charset`` (if any).

    The parser reads a byte-order mark, else the document's own encoding declaration, else UTF-8,
    and checks the body against it. A Content-Type charset is honoured for a body that has neither:
    such a body is checked against that charset (a failure names the byte offset) and re-encoded
    as UTF-8. A body with its own BOM or declaration passes unchanged: what the document says of
    itself is what the parser goes by (servers often send a default charset they never checked).
    """
    if charset is None or body.startswith(_BOMS) or xml_declared_encoding(body) is not None:
        return body
    if codecs.lookup(charset).name == "utf-8":  # classify() already refused unknown names
        return body
    return decode_text(body, charset).encode()


def parse_kazoo_json(body: bytes, charset: str) -> Any:
    """Parse a Kazoo-JSON answer (UTF-8 validated by orjson itself unless another charset is declared)."""
    data = body if charset in ("utf-8", "utf8") else decode_text(body, charset).encode()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "utf-8" in str(exc).lower() or "surrogate" in str(exc).lower():
            decode_text(body, charset)  # raises the located encoding error
        finding = Finding(code="invalid_json", message=exc.msg, pointer="", line=exc.lineno, column=exc.colno)
        raise TranslationError(
            "the response is not valid JSON", reason=Reason.PARSE_ERROR, findings=[finding]
        ) from exc
