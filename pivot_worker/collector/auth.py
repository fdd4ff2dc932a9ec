"""API tokens: ``PIVOT_API_TOKENS_FILE`` maps each token to the accounts it may read.

The file is a JSON object ``{"<token>": ["<account id>", ...]}``; ``"*"`` (alone or in the list)
grants every account. Tokens are kept only as SHA-256 digests, so a lookup's timing says nothing
about how much of a guessed token was right. The file is re-read when its modification time
changes (checked at most once a second); a broken edit keeps the previous tokens and is logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Mapping

import orjson

logger = logging.getLogger(__name__)

ALL_ACCOUNTS = "*"
RECHECK_S = 1.0


class TokenFileError(ValueError):
    """``PIVOT_API_TOKENS_FILE`` cannot be read or has the wrong shape."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_tokens(raw: bytes, source: str) -> dict[bytes, frozenset[str]]:
    """Parse the file's bytes; every error names ``source`` and the offending token's position."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TokenFileError(f"{source}: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise TokenFileError(f"{source}: must be a JSON object mapping each token to a list of account ids")
    out: dict[bytes, frozenset[str]] = {}
    for position, (token, grant) in enumerate(doc.items(), start=1):
        if not token.strip():
            raise TokenFileError(f"{source}: token #{position} is empty")
        if grant == ALL_ACCOUNTS:
            grant = [ALL_ACCOUNTS]
        if not isinstance(grant, list) or not all(isinstance(a, str) and a for a in grant):
            raise TokenFileError(
                f'{source}: token #{position} must map to a list of account ids (or "*" for all), '
                f"not {type(grant).__name__}"
            )
        out[_digest(token)] = frozenset(grant)
    return out


class TokenBook:
    """Answers "may this token read this account?" from the tokens file."""

    def __init__(self, path: str, *, clock: float | None = None) -> None:
        self.path = path
        self._grants: dict[bytes, frozenset[str]] = {}
        self._mtime: float | None = None
        self._checked = clock if clock is not None else 0.0
        if path:
            self._load(initial=True)

    @classmethod
    def from_mapping(cls, grants: Mapping[str, list[str] | str]) -> TokenBook:
        book = cls("")
        book._grants = parse_tokens(orjson.dumps(dict(grants)), "tokens")
        return book

    @property
    def configured(self) -> bool:
        return bool(self.path) or bool(self._grants)

    def accounts(self, token: str | None) -> frozenset[str] | None:
        """The accounts ``token`` may read, or None when the token is unknown."""
        if not token:
            return None
        self._maybe_reload()
        return self._grants.get(_digest(token))

    @staticmethod
    def allows(grant: frozenset[str], account_id: str) -> bool:
        return ALL_ACCOUNTS in grant or account_id in grant

    def _maybe_reload(self) -> None:
        if not self.path:
            return
        now = time.monotonic()
        if now - self._checked < RECHECK_S:
            return
        self._checked = now
        try:
            mtime = os.stat(self.path).st_mtime
        except OSError as exc:
            logger.error(
                "cannot stat PIVOT_API_TOKENS_FILE %s, keeping the tokens loaded before: %s", self.path, exc
            )
            return
        if mtime != self._mtime:
            try:
                self._load(initial=False)
            except TokenFileError as exc:
                logger.error("keeping the tokens loaded before: %s", exc)

    def _load(self, *, initial: bool) -> None:
        source = f"PIVOT_API_TOKENS_FILE {self.path}"
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
            mtime = os.stat(self.path).st_mtime
        except OSError as exc:
            raise TokenFileError(f"{source}: cannot be read ({exc.strerror or exc})") from exc
        self._grants = parse_tokens(raw, source)
        self._mtime = mtime
        self._checked = time.monotonic()
        if not initial:
            logger.info("reloaded %d API tokens from %s", len(self._grants), self.path)
