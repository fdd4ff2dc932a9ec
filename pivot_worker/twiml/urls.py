"""Resolve the URLs a document names, exactly as RFC 3986 section 5 says.

Kazoo's own resolver treats a leading ``/`` as relative, appends to extension-less paths and
corrupts bases that carry a query (docs/kazoo-contract.md §4.6); TwiML applications written for Twilio
expect standard resolution. This module implements RFC 3986 5.2 (strict parser) on the raw
strings, without normalising or re-escaping anything else, so the developer's bytes survive.
"""

from __future__ import annotations

import functools
import re

from ..errors import PivotError, Reason
from .limits import MAX_URL_CHARS

# RFC 3986 appendix B.
_URI = re.compile(r"^(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$", re.DOTALL)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")


@functools.lru_cache(maxsize=512)
def _split(uri: str) -> tuple[str | None, str | None, str, str | None, str | None]:
    match = _URI.match(uri)
    assert match is not None  # the pattern matches every string
    scheme, authority, path, query, fragment = match.groups()
    if scheme is not None and not _SCHEME.match(scheme):
        # "a b:c" is a relative path per the grammar, not a scheme.
        return None, authority, (scheme + ":" + path) if authority is None else path, query, fragment
    return scheme, authority, path, query, fragment


def remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4."""
    if "." not in path:
        return path  # no dot segment possible
    output: list[str] = []
    rest = path
    while rest:
        if rest.startswith("../"):
            rest = rest[3:]
        elif rest.startswith(("./", "/./")):
            rest = rest[2:]
        elif rest == "/.":
            rest = "/"
        elif rest.startswith("/../"):
            rest = rest[3:]
            if output:
                output.pop()
        elif rest == "/..":
            rest = "/"
            if output:
                output.pop()
        elif rest in (".", ".."):
            rest = ""
        else:
            start = 1 if rest.startswith("/") else 0
            end = rest.find("/", start)
            if end == -1:
                end = len(rest)
            output.append(rest[:end])
            rest = rest[end:]
    return "".join(output)


def _merge(base_authority: str | None, base_path: str, ref_path: str) -> str:
    if base_authority is not None and base_path == "":
        return "/" + ref_path
    cut = base_path.rfind("/")
    return base_path[: cut + 1] + ref_path if cut != -1 else ref_path


def resolve_reference(base: str, reference: str) -> str:
    """Resolve ``reference`` against the absolute URI ``base`` (RFC 3986 5.2.2, strict)."""
    r_scheme, r_auth, r_path, r_query, r_frag = _split(reference)
    b_scheme, b_auth, b_path, b_query, _ = _split(base)
    t_scheme: str | None
    t_auth: str | None
    t_query: str | None
    if r_scheme is not None:
        t_scheme, t_auth, t_path, t_query = r_scheme, r_auth, remove_dot_segments(r_path), r_query
    else:
        t_scheme = b_scheme
        if r_auth is not None:
            t_auth, t_path, t_query = r_auth, remove_dot_segments(r_path), r_query
        else:
            t_auth = b_auth
            if r_path == "":
                t_path = b_path
                t_query = r_query if r_query is not None else b_query
            else:
                if r_path.startswith("/"):
                    t_path = remove_dot_segments(r_path)
                else:
                    t_path = remove_dot_segments(_merge(b_auth, b_path, r_path))
                t_query = r_query
    out = ""
    if t_scheme is not None:
        out += t_scheme + ":"
    if t_auth is not None:
        out += "//" + t_auth
    out += t_path
    if t_query is not None:
        out += "?" + t_query
    if r_frag is not None:
        out += "#" + r_frag
    return out


def resolve_http_url(base: str, reference: str, *, what: str) -> str:
    """Resolve ``reference`` and require an absolute ``http``/``https`` URL with a host.

    Raises :class:`PivotError` with reason ``invalid_url`` otherwise; ``what`` names the
    attribute or element in the message. Results are cached: a worker sees the same document
    URLs and references over and over.
    """
    if len(reference) > MAX_URL_CHARS or len(base) > MAX_URL_CHARS:
        # Checked before the cache so hostile documents cannot fill it with huge strings.
        raise PivotError(
            f"{what}: the URL is longer than {MAX_URL_CHARS} characters", reason=Reason.INVALID_URL
        )
    return _resolve_http_url(base, reference, what)


@functools.lru_cache(maxsize=1024)
def _resolve_http_url(base: str, reference: str, what: str) -> str:
    text = reference.strip()
    if not text:
        raise PivotError(f"{what}: the URL is empty", reason=Reason.INVALID_URL)
    if _FORBIDDEN.search(text):
        raise PivotError(
            f"{what}: {text!r} contains spaces or control characters; percent-encode them",
            reason=Reason.INVALID_URL,
        )
    url = resolve_reference(base, text)
    if len(url) > MAX_URL_CHARS:
        raise PivotError(
            f"{what}: the URL is longer than {MAX_URL_CHARS} characters", reason=Reason.INVALID_URL
        )
    scheme, authority, _, _, _ = _split(url)
    if scheme is None or scheme.lower() not in ("http", "https") or not authority:
        raise PivotError(
            f"{what}: {url!r} is not an absolute http(s) URL (resolved against {base!r})",
            reason=Reason.INVALID_URL,
        )
    return scheme.lower() + url[len(scheme) :]  # Kazoo's pivot schema wants "^https?://"
