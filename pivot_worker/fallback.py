"""The fallback URL (Twilio's ``fallbackUrl``): where a pivot request goes when its primary URL fails.

Where it comes from, first match wins:

1. the call's ``Custom-Application-Vars.pivot_fallback_url`` (set per callflow with a
   ``set_variables`` node, or per call by whoever originates it): the most specific setting;
2. the account's entry in ``PIVOT_FALLBACK_URLS_FILE`` (JSON object: account id -> URL), the
   operator's per-account default, read at start-up.

Either URL is refused at request time by the same address policy as any other URL.

What the fallback is told: the primary's params plus the error, under Twilio's names for TwiML
requests (``ErrorCode``: Twilio's numeric code for our reason, see :data:`TWILIO_ERROR_CODES`;
``ErrorUrl``) and Kazoo-style names for Kazoo requests (``Error-Code``: our reason code;
``Error-URL``). The URL is the primary's as the developer wrote it, without credentials, fragment,
continuation token or ``PIVOT_REDACT_PARAMS`` query parameters.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote_plus, urlsplit, urlunsplit

import orjson

from .debug.redact import Redactor
from .errors import Reason
from .request import PivotRequest, RequestFormat

logger = logging.getLogger(__name__)

CALL_VAR = "pivot_fallback_url"
"""The ``Custom-Application-Vars`` key naming a call's fallback URL."""

FALLBACK_RESERVE_MS = 1000
"""With a fallback configured, the primary's deadline ends this much (at most half the budget)
before the request's deadline, so that a primary that times out leaves the fallback some time."""

MIN_FALLBACK_MS = 100
"""Below this much time left in the request's deadline the fallback is not requested."""

NO_FALLBACK = frozenset({Reason.STALE, Reason.INVALID_REQUEST})
"""Failures the fallback cannot help: the callflow has failed over already, or the request is unusable."""

# Twilio's error codes (https://www.twilio.com/docs/api/errors) for the reasons that can trigger a
# fallback. Reasons with no Twilio counterpart take the closest code of their phase (marked *).
TWILIO_ERROR_CODES: dict[Reason, int] = {
    Reason.INVALID_URL: 11100,  # Invalid URL format
    Reason.BLOCKED_ADDRESS: 11205,  # HTTP connection failure ("URLs that reference private IP addresses")
    Reason.DNS_ERROR: 11210,  # HTTP bad host name
    Reason.CONNECT_ERROR: 11205,  # HTTP connection failure
    Reason.TLS_ERROR: 11220,  # SSL/TLS handshake error
    Reason.TIMEOUT: 11205,  # HTTP connection failure (Twilio's connect and response timers)
    Reason.READ_ERROR: 11200,  # HTTP retrieval failure
    Reason.HTTP_STATUS: 11200,  # HTTP retrieval failure
    Reason.TOO_MANY_REDIRECTS: 11215,  # HTTP too many redirects
    Reason.RESPONSE_TOO_LARGE: 11750,  # TwiML response body too large
    Reason.EMPTY_RESPONSE: 12100,  # Document parse failure
    Reason.INVALID_ENCODING: 12100,  # Document parse failure
    Reason.PARSE_ERROR: 12100,  # Document parse failure
    Reason.UNSUPPORTED_FORMAT: 12300,  # Invalid Content-Type
    Reason.SCHEMA_ERROR: 12200,  # Schema validation warning
    Reason.UNSUPPORTED_VERB: 12200,  # Schema validation warning
    Reason.LIMIT_EXCEEDED: 12200,  # * the document breaks our limits
    Reason.REDIRECT_LOOP: 12200,  # * the document keeps redirecting
    Reason.CIRCUIT_OPEN: 11205,  # * not connected: the host failed too often just now
    Reason.HOST_BUSY: 11205,  # * not connected: too many requests in flight to the host
}
GENERIC_TWILIO_ERROR_CODE = 11200  # HTTP retrieval failure, for anything not listed


def twilio_error_code(reason: Reason) -> int:
    return TWILIO_ERROR_CODES.get(reason, GENERIC_TWILIO_ERROR_CODE)


def error_url(url: str, redactor: Redactor) -> str:
    """The primary URL as the fallback may see it: no credentials, fragment or redacted params.

    ``url`` has already lost its continuation token (``twiml.open_continuation``).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        piece
        for piece in parts.query.split("&")
        if piece and not redactor.is_secret_param(unquote_plus(piece.partition("=")[0]))
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def error_params(request_format: RequestFormat, reason: Reason, url: str) -> dict[str, str]:
    """The params added to the primary's for the fallback request."""
    if request_format == "kazoo":
        return {"Error-Code": reason.value, "Error-URL": url}
    return {"ErrorCode": str(twilio_error_code(reason)), "ErrorUrl": url}


Source = Literal["call", "file"]


@dataclass(frozen=True, slots=True)
class FallbackTarget:
    url: str
    source: Source

    @property
    def described(self) -> str:
        if self.source == "call":
            return f"Custom-Application-Vars.{CALL_VAR}"
        return "PIVOT_FALLBACK_URLS_FILE"


class FallbackUrlsError(ValueError):
    """``PIVOT_FALLBACK_URLS_FILE`` cannot be used; the message names the file and the problem."""


def _check_table(path: str, doc: object) -> dict[str, str]:
    if not isinstance(doc, dict):
        raise FallbackUrlsError(
            f"PIVOT_FALLBACK_URLS_FILE {path}: expected a JSON object (account id -> URL)"
        )
    table: dict[str, str] = {}
    for account, url in doc.items():
        if not account or not isinstance(url, str):
            raise FallbackUrlsError(
                f"PIVOT_FALLBACK_URLS_FILE {path}: entry {account!r} must map an account id to a URL string"
            )
        try:
            parts = urlsplit(url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            valid = False
        if not valid:
            raise FallbackUrlsError(
                f"PIVOT_FALLBACK_URLS_FILE {path}: the URL of account {account!r} is not an http(s) URL "
                "with a host"
            )
        table[account] = url
    return table


class FallbackUrls:
    """Account id -> fallback URL, from ``PIVOT_FALLBACK_URLS_FILE`` (empty when no file is set)."""

    def __init__(self, urls: Mapping[str, str] | None = None, path: str = "") -> None:
        self.path = path
        self._urls: dict[str, str] = dict(urls or {})

    @classmethod
    def load(cls, path: str) -> FallbackUrls:
        """Read the file; a missing or malformed file raises :class:`FallbackUrlsError` (start-up fails)."""
        if not path:
            return cls()
        return cls(cls._read(path), path)

    @staticmethod
    def _read(path: str) -> dict[str, str]:
        try:
            doc = orjson.loads(Path(path).read_bytes())
        except OSError as exc:
            raise FallbackUrlsError(f"PIVOT_FALLBACK_URLS_FILE {path}: {exc.strerror or exc}") from exc
        except orjson.JSONDecodeError as exc:
            raise FallbackUrlsError(f"PIVOT_FALLBACK_URLS_FILE {path}: not JSON: {exc}") from exc
        return _check_table(path, doc)

    def reload(self) -> bool:
        """Read the file again; on any problem keep the current table, log why and return ``False``."""
        if not self.path:
            return True
        try:
            self._urls = self._read(self.path)
        except FallbackUrlsError as exc:
            logger.error("fallback URLs not reloaded, keeping the %d loaded before: %s", len(self._urls), exc)
            return False
        logger.info("fallback URLs reloaded: %d accounts", len(self._urls))
        return True

    def __len__(self) -> int:
        return len(self._urls)

    def for_request(self, request: PivotRequest) -> FallbackTarget | None:
        """The call's own fallback URL if it sets one, else its account's, else ``None``."""
        cavs = request.call.get("Custom-Application-Vars")
        if isinstance(cavs, Mapping):
            url = cavs.get(CALL_VAR)
            if isinstance(url, str) and url.strip():
                return FallbackTarget(url.strip(), "call")
        if request.account_id:
            url = self._urls.get(request.account_id)
            if url:
                return FallbackTarget(url, "file")
        return None
