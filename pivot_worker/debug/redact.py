"""Redaction of secrets before a debug event leaves the process.

What is hidden, and why each rule keeps what it keeps:

* ``Authorization`` / ``Proxy-Authorization``: the credentials; the scheme word (``Basic``,
  ``Bearer``) stays, because "which scheme did we send" is a common debugging question.
* ``Cookie`` / ``Set-Cookie``: every cookie value; cookie names and ``Set-Cookie`` attributes stay.
* ``X-Twilio-Signature`` / ``X-Pivot-Signature``: the MACs. They cannot reveal the signing key,
  but whoever reads the record could replay the signed request within the server's tolerance;
  the ``t=`` timestamp of ``X-Pivot-Signature`` stays (it shows clock skew).
* ``user:pass@`` in any URL, wherever it appears in a string: the password.
* Parameters named in ``PIVOT_REDACT_PARAMS`` (case-insensitive) in a URL query, a form body or a
  JSON body: the value. A bracketed form key such as ``Custom-SIP-Headers[X-Token]`` matches the
  name ``X-Token`` too.

Header names are compared in lower case; header values are never changed otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

import orjson

MASK = "***"

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})
SIGNATURE_HEADERS = frozenset({"x-twilio-signature", "x-pivot-signature"})

# scheme://user:password@  (user and password may be percent-encoded; no '/', '@' or whitespace).
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@?#]*):(?P<password>[^/\s@?#]*)@")
_SCHEME_NAME = re.compile(r"v[0-9]{1,3}")
_BRACKET = re.compile(r"\[([^\[\]]*)\]")


class Redactor:
    """Applies the redaction rules; build one per process from ``Settings.redact_params``."""

    def __init__(self, params: Iterable[str] = ()) -> None:
        self._params = frozenset(p.strip().lower() for p in params if p.strip())

    # -- strings and URLs ---------------------------------------------------------------------

    def text(self, value: str) -> str:
        """Hide the password of every ``scheme://user:pass@`` found anywhere in ``value``."""
        if "@" not in value or "://" not in value:
            return value
        return _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", value)

    def url(self, value: str) -> str:
        """Hide URL credentials and the values of redacted query parameters."""
        value = self.text(value)
        if not self._params or "?" not in value:
            return value
        try:
            parts = urlsplit(value)
        except ValueError:
            return value
        if not parts.query:
            return value
        return urlunsplit(parts._replace(query=self.form(parts.query)))

    def is_secret_param(self, name: str) -> bool:
        if not self._params:
            return False
        lowered = name.lower()
        if lowered in self._params:
            return True
        return any(inner.lower() in self._params for inner in _BRACKET.findall(name))

    def form(self, encoded: str) -> str:
        """Mask redacted parameters in ``a=1&b=2`` text, keeping every other byte as it was."""
        if not self._params:
            return encoded
        pieces = []
        for piece in encoded.split("&"):
            name, sep, _value = piece.partition("=")
            if sep and self.is_secret_param(unquote_plus(name)):
                piece = f"{name}={MASK}"
            pieces.append(piece)
        return "&".join(pieces)

    # -- bodies -------------------------------------------------------------------------------

    def body(self, text: str, content_type: str | None) -> str:
        """Redact a request/response body: JSON and form bodies by parameter name, any body's URLs."""
        text = self.text(text)
        if not self._params or not text:
            return text
        media = (content_type or "").split(";", 1)[0].strip().lower()
        stripped = text.lstrip()
        if media.endswith("json") or (not media and stripped[:1] in ("{", "[")):
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError:
                return text
            redacted = self.json_value(doc)
            # Keep the developer's exact bytes unless a value really had to be masked.
            return text if redacted == doc else orjson.dumps(redacted).decode()
        if media == "application/x-www-form-urlencoded" or (not media and "=" in text and "<" not in text):
            return self.form(text)
        return text

    def json_value(self, value: Any) -> Any:
        """Copy of a JSON value with redacted keys masked and URL credentials hidden in strings."""
        if isinstance(value, dict):
            return {
                k: (MASK if self.is_secret_param(str(k)) else self.json_value(v)) for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.json_value(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    # -- headers ------------------------------------------------------------------------------

    def header(self, name: str, value: str) -> str:
        lowered = name.lower()
        if lowered in SECRET_HEADERS:
            scheme, space, _rest = value.strip().partition(" ")
            return f"{scheme} {MASK}" if space else MASK
        if lowered == "x-pivot-signature":
            return ",".join(_mask_signature_item(item) for item in value.split(","))
        if lowered in SIGNATURE_HEADERS:
            return MASK
        if lowered == "cookie":
            return "; ".join(_mask_cookie(c) for c in value.split(";") if c.strip())
        if lowered == "set-cookie":
            first, sep, attributes = value.partition(";")
            return _mask_cookie(first) + (sep + attributes if sep else "")
        if lowered in ("location", "content-location", "referer"):
            return self.url(value)
        return self.text(value)

    def headers(self, pairs: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, str]:
        """Headers as a JSON object: names lower-cased (as Kazoo stores them), repeated ones joined."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        out: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            masked = self.header(key, value)
            out[key] = f"{out[key]}, {masked}" if key in out else masked
        return out


def _mask_signature_item(item: str) -> str:
    """``t=<seconds>`` stays; ``v1=<mac>`` keeps its name; anything else is masked whole."""
    name, _sep, value = item.strip().partition("=")
    if name == "t" and value.isdigit():
        return item.strip()
    return f"{name}={MASK}" if _SCHEME_NAME.fullmatch(name) else MASK


def _mask_cookie(cookie: str) -> str:
    name, sep, _value = cookie.strip().partition("=")
    return f"{name}={MASK}" if sep else MASK
