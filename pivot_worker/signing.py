"""Signed requests to the developer's server: per-account keys and the two signatures.

``PIVOT_SIGNING_KEYS_FILE`` is a JSON object, account id -> list of keys. The first key signs; a
developer's server may accept any of them, so a key is rotated without downtime by listing
``[new, old]``, deploying the new key on the server, then dropping the old one. The file is read at
start-up (a bad file fails start-up) and again on SIGHUP (a bad file then keeps the keys loaded
before and logs why). Key values never appear in logs, errors or ``repr``.

Every request of an account that has a key carries two headers, computed per hop over the URL
exactly as the server receives it (``scheme://`` + the ``Host`` header + the request target; no
credentials, no fragment):

* ``X-Twilio-Signature``: Twilio's scheme, so Twilio's helper libraries accept it unchanged.
  base64(HMAC-SHA1(key, URL + for a form body every decoded field name followed by its value,
  names sorted, each name's distinct values sorted)). A JSON body is covered the Twilio way: the
  URL carries ``bodySHA256=<hex SHA-256 of the body>`` and the signature is over the URL alone.
* ``X-Pivot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<METHOD>.<URL>.<body>")>``:
  covers the method, the raw body bytes and a timestamp, so a captured request cannot be replayed
  later than the server's tolerance.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import orjson
from yarl import URL

from .settings import SettingsError

logger = logging.getLogger(__name__)

TWILIO_HEADER = "X-Twilio-Signature"
PIVOT_HEADER = "X-Pivot-Signature"
BODY_HASH_PARAM = "bodySHA256"
SOURCE = "PIVOT_SIGNING_KEYS_FILE"


class SigningKeysError(SettingsError):
    """The signing keys file cannot be read or does not have the expected shape."""


def parse_keys(raw: bytes, source: str) -> dict[str, tuple[bytes, ...]]:
    """``{account id: (key, ...)}`` from the file's bytes; errors name ``source``, never a key."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SigningKeysError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise SigningKeysError(f"{source}: must be a JSON object (account id -> list of keys)")
    out: dict[str, tuple[bytes, ...]] = {}
    for account, keys in doc.items():
        if not account:
            raise SigningKeysError(f"{source}: an account id is empty")
        if not isinstance(keys, list) or not keys or not all(isinstance(key, str) and key for key in keys):
            raise SigningKeysError(
                f"{source}: account {account!r} must map to a non-empty list of non-empty strings"
            )
        out[account] = tuple(key.encode() for key in keys)
    return out


class SigningKeys:
    """The keys of each account, from ``PIVOT_SIGNING_KEYS_FILE``; :meth:`reload` re-reads it."""

    def __init__(self, path: str = "", keys: Mapping[str, Sequence[str]] | None = None) -> None:
        self.path = path
        self._keys: dict[str, tuple[bytes, ...]] = {}
        if keys is not None:
            self._keys = parse_keys(orjson.dumps(dict(keys)), "signing keys")
        if path:
            self._keys = self._read()

    @property
    def source(self) -> str:
        return f"{SOURCE} {self.path}"

    def _read(self) -> dict[str, tuple[bytes, ...]]:
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
        except OSError as exc:
            raise SigningKeysError(f"{self.source}: cannot be read ({exc.strerror or exc})") from None
        return parse_keys(raw, self.source)

    def reload(self) -> bool:
        """Re-read the file; on any problem keep the keys loaded before, log why, return False."""
        if not self.path:
            logger.info("%s is not set: no signing keys to reload", SOURCE)
            return False
        try:
            keys = self._read()
        except SigningKeysError as exc:
            logger.error("keeping the signing keys loaded before: %s", exc)
            return False
        self._keys = keys
        logger.info("reloaded %s: keys for %d accounts", self.source, len(keys))
        return True

    def keys_for(self, account_id: str | None) -> tuple[bytes, ...]:
        """The account's keys, the signing one first; empty when its requests are not signed."""
        if not account_id or not self._keys:
            return ()
        return self._keys.get(account_id, ())

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"SigningKeys(path={self.path!r}, accounts={len(self._keys)})"


class Reloadable(Protocol):
    def reload(self) -> bool: ...


def reload_on_sighup(keys: SigningKeys, *others: Reloadable) -> None:
    """Re-read ``keys`` (and ``others``: the fallback URLs) from their files whenever the process
    receives SIGHUP (running loop needed); each keeps what it had if its file is bad."""
    if not others:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, keys.reload)
        return

    def reload_all() -> None:
        for table in (keys, *others):
            table.reload()

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload_all)


# -- the signed URL -------------------------------------------------------------------------------


def received_url(url: str) -> str:
    """The URL as the server reconstructs it: scheme, ``Host`` header, request target.

    That is what the HTTP client puts on the wire for ``url``: no ``user:pass@``, no fragment, no
    default port, no empty ``?``; path and query byte for byte.
    """
    try:
        parsed = URL(url, encoded=True)
        host = parsed.host_port_subcomponent
    except (ValueError, TypeError):
        return url  # the request itself will be refused as invalid_url
    return f"{parsed.scheme}://{host}{parsed.raw_path_qs}" if host else url


def with_body_hash(url: str, body: bytes) -> str:
    """``url`` with ``bodySHA256=<hex SHA-256 of body>`` as its last query item (any earlier one dropped)."""
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and p.partition("=")[0] != BODY_HASH_PARAM]
    kept.append(f"{BODY_HASH_PARAM}={hashlib.sha256(body).hexdigest()}")
    return urlunsplit(parts._replace(query="&".join(kept)))


# -- the two signatures ---------------------------------------------------------------------------


def form_fields(body: bytes) -> list[tuple[str, str]]:
    """A form body as a server decodes it: a flat list of (name, value), brackets kept in names."""
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)


def twilio_signature(key: bytes, url: str, fields: Iterable[tuple[str, str]] = ()) -> str:
    """Twilio's ``X-Twilio-Signature``: base64 HMAC-SHA1 over the URL, then each name followed by
    its value, names sorted and each name's distinct values sorted (as ``RequestValidator`` does)."""
    values: dict[str, set[str]] = {}
    for name, value in fields:
        values.setdefault(name, set()).add(value)
    text = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    return base64.b64encode(hmac.new(key, text.encode(), hashlib.sha1).digest()).decode()


def _pivot_mac(key: bytes, timestamp: int, method: str, url: str, body: bytes) -> str:
    message = f"{timestamp}.{method.upper()}.{url}.".encode() + body
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def pivot_signature(key: bytes, method: str, url: str, body: bytes, timestamp: int) -> str:
    """``X-Pivot-Signature`` value: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``."""
    return f"t={timestamp},v1={_pivot_mac(key, timestamp, method, url, body)}"


def verify_pivot_signature(
    header: str,
    method: str,
    url: str,
    body: bytes,
    keys: Iterable[bytes | str],
    now: float,
    tolerance_s: float = 300,
) -> bool:
    """True when ``header`` is a valid ``X-Pivot-Signature`` by any of ``keys``, at most
    ``tolerance_s`` seconds away from ``now``: what a developer's server checks."""
    timestamp: int | None = None
    macs: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            macs.append(value)
    if timestamp is None or not macs or abs(now - timestamp) > tolerance_s:
        return False
    for key in keys:
        expected = _pivot_mac(key.encode() if isinstance(key, str) else key, timestamp, method, url, body)
        if any(hmac.compare_digest(expected, mac) for mac in macs):
            return True
    return False


def sign_request(
    key: bytes,
    method: str,
    url: str,
    body: bytes,
    content_type: str | None,
    *,
    now: Callable[[], float] = time.time,
) -> tuple[str, dict[str, str]]:
    """The URL to send and the two signature headers for one request (one hop).

    A POST with a JSON body gets ``bodySHA256`` added to its URL; a form body's decoded fields
    enter the Twilio signature; a GET (or empty body) is signed by its URL alone.
    """
    media = (content_type or "").partition(";")[0].strip().lower()
    fields: list[tuple[str, str]] = []
    if body and media == "application/json":
        with contextlib.suppress(ValueError):  # unparsable: the request is refused as invalid_url
            url = with_body_hash(url, body)
    elif body and media == "application/x-www-form-urlencoded":
        fields = form_fields(body)
    signed = received_url(url)
    return url, {
        TWILIO_HEADER: twilio_signature(key, signed, fields),
        PIVOT_HEADER: pivot_signature(key, method, signed, body, int(now())),
    }
