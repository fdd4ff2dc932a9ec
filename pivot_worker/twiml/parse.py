"""Parse untrusted TwiML bytes with one hardened, reused lxml parser.

The parser never loads a DTD, never substitutes entities, never touches the network and refuses
huge trees; a resolver that answers every external lookup with nothing closes the last door
(lxml still asks for a DOCTYPE's external subset even with ``load_dtd=False``). A document that
declares a DOCTYPE at all is refused: TwiML never needs one. Comments and processing
instructions are dropped while parsing.

Before lxml sees it, the body is checked against its encoding (a byte-order mark, else the XML
declaration's ``encoding``, else UTF-8): bytes that are not valid there fail ``invalid_encoding``
with their offset, where lxml would only report a syntax error.

lxml parsers must not be used from two threads at once; the worker parses on its event loop
thread only.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from lxml import etree

from ..errors import Finding, Reason, TranslationError
from ..response import xml_declared_encoding
from .limits import MAX_DOCUMENT_BYTES, MAX_ELEMENT_DEPTH
from .locate import Locator

PARSE_FAILURE = "12100"
ENCODING_FAILURE = "invalid-encoding"


class _RefuseExternal(etree.Resolver):
    """Answers every external entity or DTD lookup with an empty document."""

    # lxml calls resolve(url, public_id, context); the lxml-stubs signature lacks the context.
    def resolve(self, system_url: str, public_id: str, context: object) -> object:  # type: ignore[override]
        return self.resolve_string("", context)  # type: ignore[call-arg]


def _hardened_parser() -> etree.XMLParser:
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )
    parser.resolvers.add(_RefuseExternal())
    return parser


PARSER = _hardened_parser()
"""The one parser every TwiML document goes through (tests check its settings)."""

_TOO_DEEP = etree.XPath("/*" + "/*" * MAX_ELEMENT_DEPTH + "[1]")
"""The first element nested deeper than the limit (compiled once; evaluated in C)."""


@dataclass(slots=True)
class Document:
    """A parsed TwiML document plus what is needed to point at its elements."""

    root: etree._Element
    source: bytes
    locator: Locator = field(init=False)

    def __post_init__(self) -> None:
        self.locator = Locator(self.root, self.source)


def _fail(message: str, line: int | None, column: int | None, pointer: str = "") -> TranslationError:
    finding = Finding(code=PARSE_FAILURE, message=message, pointer=pointer, line=line, column=column)
    return TranslationError(
        "TwiML document could not be parsed", reason=Reason.PARSE_ERROR, findings=[finding]
    )


def _document_encoding(body: bytes) -> tuple[str, int]:
    """The encoding the document gives itself (XML 1.0 appendix F) and how many BOM bytes precede it."""
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8", len(codecs.BOM_UTF8)
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", 0  # the codec reads the BOM itself
    if body.startswith(b"<\x00"):
        return "utf-16-le", 0
    if body.startswith(b"\x00<"):
        return "utf-16-be", 0
    return xml_declared_encoding(body) or "utf-8", 0


def _check_encoding(body: bytes) -> None:
    """Raise ``invalid_encoding``, located, unless ``body`` is valid in the encoding it declares."""
    encoding, skip = _document_encoding(body)
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise TranslationError(
            "TwiML document names an unknown encoding",
            reason=Reason.INVALID_ENCODING,
            findings=[
                Finding(ENCODING_FAILURE, f"the XML declaration names encoding {encoding!r}", "", 1, 1)
            ],
        ) from None
    try:
        body[skip:].decode(codec.name)
    except UnicodeDecodeError as exc:
        offset = skip + exc.start
        before = body[skip:offset].decode(codec.name, errors="replace")
        line = before.count("\n") + 1
        column = len(before) - before.rfind("\n")
        message = f"byte 0x{body[offset]:02x} at offset {offset} is not valid {encoding}"
        raise TranslationError(
            f"TwiML document is not valid {encoding}",
            reason=Reason.INVALID_ENCODING,
            findings=[Finding(ENCODING_FAILURE, message, "", line, column)],
        ) from exc


def parse_document(body: bytes) -> Document:
    """Parse ``body`` into a :class:`Document` whose root is ``<Response>``.

    Raises :class:`TranslationError` (reason ``parse_error``, code 12100, with line and column)
    for anything that is not a well-formed, DOCTYPE-free TwiML document within the size bounds,
    and (reason ``invalid_encoding``) for bytes that are not valid in the document's encoding.
    """
    if len(body) > MAX_DOCUMENT_BYTES:
        raise TranslationError(
            "TwiML document too large",
            reason=Reason.LIMIT_EXCEEDED,
            findings=[
                Finding(
                    code="document-size",
                    message=f"document is {len(body)} bytes; at most {MAX_DOCUMENT_BYTES} are accepted",
                )
            ],
        )
    if not body.strip():
        raise _fail("document is empty", 1, 1)
    _check_encoding(body)
    try:
        root = etree.fromstring(body, PARSER)
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (exc.lineno, exc.offset)
        raise _fail(f"not well-formed XML: {exc.msg}", line or None, column or None) from exc
    docinfo = root.getroottree().docinfo
    if getattr(docinfo, "doctype", ""):
        raise _fail("a DOCTYPE declaration is not allowed in TwiML", 1, 1)
    if root.tag != "Response":
        doc = Document(root, body)
        at_line, at_column = doc.locator.position(root)
        shown = root.tag if isinstance(root.tag, str) else "a non-element node"
        raise _fail(
            f"the root element must be <Response>, not <{shown}>", at_line, at_column, "/" + str(shown)
        )
    doc = Document(root, body)
    too_deep = _TOO_DEEP(root)
    depth = too_deep[0] if isinstance(too_deep, list) and too_deep else None
    if depth is not None and isinstance(depth, etree._Element):
        at_line, at_column = doc.locator.position(depth)
        raise TranslationError(
            "TwiML document nested too deeply",
            reason=Reason.LIMIT_EXCEEDED,
            findings=[
                Finding(
                    code="nesting-depth",
                    message=f"elements are nested more than {MAX_ELEMENT_DEPTH} levels deep",
                    pointer=doc.locator.pointer(depth),
                    line=at_line,
                    column=at_column,
                )
            ],
        )
    return doc
