"""Say where an element is: an XPath-like pointer, and the line and column of its start tag.

lxml records only the line of an element, and minified TwiML puts everything on line 1, so the
column is recovered by scanning the source for start tags: the n-th start tag in the text is the
n-th element in document order. The scan runs only when a finding is reported, never on the
happy path.
"""

from __future__ import annotations

from lxml import etree


class Locator:
    """Pointers and positions for the elements of one parsed document."""

    __slots__ = ("_elements", "_offsets", "_order", "_root", "_source", "_text")

    def __init__(self, root: etree._Element, source: bytes) -> None:
        self._root = root
        self._source = source
        self._order: dict[int, int] | None = None
        self._elements: list[etree._Element] = []
        self._offsets: list[int] | None = None
        self._text = ""

    def pointer(self, element: etree._Element) -> str:
        """``/Response/Gather[1]/Say[2]``: each step indexed among same-named siblings, from 1."""
        steps: list[str] = []
        node: etree._Element | None = element
        while node is not None:
            parent = node.getparent()
            tag = node.tag if isinstance(node.tag, str) else "node()"
            if parent is None:
                steps.append(tag)
            else:
                index = 1 + sum(1 for sibling in node.itersiblings(preceding=True) if sibling.tag == node.tag)
                steps.append(f"{tag}[{index}]")
            node = parent
        return "/" + "/".join(reversed(steps))

    def position(self, element: etree._Element) -> tuple[int | None, int | None]:
        """1-based (line, column) of the element's start tag; column is ``None`` if not found."""
        source_line = element.sourceline
        line = source_line if isinstance(source_line, int) else None
        if self._order is None:
            self._index()
        assert self._order is not None and self._offsets is not None
        index = self._order.get(id(element))
        if index is None or index >= len(self._offsets):
            return line, None
        offset = self._offsets[index]
        start_of_line = self._text.rfind("\n", 0, offset) + 1
        return self._text.count("\n", 0, offset) + 1, offset - start_of_line + 1

    def _index(self) -> None:
        # lxml hands out the same proxy for a node only while one is alive: keep them all alive so
        # id() stays a stable key.
        self._elements = [e for e in self._root.iter() if isinstance(e.tag, str)]
        self._order = {id(el): n for n, el in enumerate(self._elements)}
        encoding = self._root.getroottree().docinfo.encoding or "utf-8"
        if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
            encoding = "utf-8-sig"  # a byte-order mark is not a column
        try:
            self._text = self._source.decode(encoding, errors="replace")
        except LookupError:
            self._text = self._source.decode("utf-8", errors="replace")
        self._offsets = start_tag_offsets(self._text)


def start_tag_offsets(text: str) -> list[int]:
    """Offsets of every start tag (``<Name``) in ``text``, skipping comments, CDATA, PIs and
    declarations. ``<`` cannot appear unescaped in attribute values, so this is exact for
    well-formed XML."""
    offsets: list[int] = []
    i = text.find("<")
    while i != -1:
        if text.startswith("<!--", i):
            end = text.find("-->", i + 4)
            i = text.find("<", end + 3) if end != -1 else -1
            continue
        if text.startswith("<![CDATA[", i):
            end = text.find("]]>", i + 9)
            i = text.find("<", end + 3) if end != -1 else -1
            continue
        if text.startswith("<?", i):
            end = text.find("?>", i + 2)
            i = text.find("<", end + 2) if end != -1 else -1
            continue
        nxt = text[i + 1 : i + 2]
        if nxt not in ("/", "!", ""):
            offsets.append(i)
        i = text.find("<", i + 1)
    return offsets
