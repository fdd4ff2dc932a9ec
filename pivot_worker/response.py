"""From the developer's HTTP answer to a document format: Content-Type first, sniffing as a fallback.

Kazoo compares media types case-sensitively and treats a missing Content-Type as XML only, so a
callflow JSON served without one fails there (kazoo-wire.md 5.1). Here the media type is compared
case-insensitively, ``+json``/``+xml`` suffixes count, the ``charset`` parameter is honoured, and an
absent or generic type is sniffed from the first significant byte (recorded on the trace).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from .errors import Finding, Reason, ResponseError, TranslationError

Format = Literal["kazoo", "twiml"]

_JSON_TYPES = frozenset({"application/json", "text/json"})
_XML_TYPES = frozenset({"application/xml", "text/xml"})
_WHITESPACE = b" \t\r\n\xef\xbb\xbf"  # including a UTF-8 byte-order mark


@dataclass(frozen=True, slots=True)
class Classified:
    format: Format
    sniffed: bool
    charset: str


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
    chosen = charset or "utf-8"
    if media in _JSON_TYPES or media.endswith("+json"):
        return Classified("kazoo", False, chosen)
    if media in _XML_TYPES or media.endswith("+xml"):
        return Classified("twiml", False, chosen)
    first = stripped[:1]
    if first == b"<":
        return Classified("twiml", True, chosen)
    if first in (b"{", b"["):
        return Classified("kazoo", True, chosen)
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
