"""API tokens: ``PIVOT_API_TOKENS_FILE`` maps each token to the accounts it may read.

The file is a JSON object ``{"<token>": ["<account id>", ...]}``; ``"*"`` (alone or in the list)
grants every account. Tokens are kept only as SHA-256 digests, so a lookup's timing says nothing
about how much of a guessed token was right. The file is re-read when its modification time
changes (checked at most once a second); a broken edit keeps the previous tokens and is logged.

Kazoo's own ``X-Auth-Token`` works too: when ``PIVOT_KAZOO_AUTH_KEYS`` names Kazoo's public key(s),
a token not in the file is verified as a ``kazoo_auth`` JWT (RS256/RS384/RS512 only, ``exp`` required)
and may read exactly the account in its ``account_id`` claim (not its sub-accounts).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import Any

import jwt
import orjson
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

logger = logging.getLogger(__name__)

ALL_ACCOUNTS = "*"
RECHECK_S = 1.0


JWT_ALGORITHMS = ("RS256", "RS384", "RS512")  # kz_auth_jwt's ?ALGORITHMS; never "none" or HS*
JWT_LEEWAY_S = 30


class TokenFileError(ValueError):
    """``PIVOT_API_TOKENS_FILE`` cannot be read or has the wrong shape."""


class KazooKeyError(ValueError):
    """``PIVOT_KAZOO_AUTH_KEYS`` names a file that is not an RSA public key (PEM) or a JWKS."""


class KazooKeys:
    """Kazoo's ``kazoo_auth`` public keys, and verification of the JWTs they sign.

    Each path is a PEM public key (or certificate) or a JWKS JSON file (``{"keys": [...]}``). A key
    from a JWKS with a ``kid`` verifies only tokens whose header names that ``kid``; PEM keys (no
    ``kid``) verify any token. Kazoo's ``identity_sig`` check needs its database and is not done.
    """

    def __init__(self, paths: list[str]) -> None:
        self._keys: list[tuple[str | None, Any]] = []
        for path in paths:
            self._keys += _load_keys(path)

    @classmethod
    def from_setting(cls, value: str) -> KazooKeys | None:
        paths = [p.strip() for p in value.split(",") if p.strip()]
        return cls(paths) if paths else None

    def account(self, token: str) -> str | None:
        """The ``account_id`` of a valid, unexpired Kazoo JWT signed by one of our keys, else None."""
        if token.count(".") != 2:
            return None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in JWT_ALGORITHMS:
            return None
        candidates = [k for key_id, k in self._keys if key_id is None or key_id == kid]
        for key in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=list(JWT_ALGORITHMS),
                    options={"require": ["exp"], "verify_aud": False},
                    leeway=JWT_LEEWAY_S,
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.PyJWTError:
                return None
            account_id = claims.get("account_id")
            return account_id if isinstance(account_id, str) and account_id else None
        return None


def _load_keys(path: str) -> list[tuple[str | None, Any]]:
    source = f"PIVOT_KAZOO_AUTH_KEYS {path}"
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise KazooKeyError(f"{source}: cannot be read ({exc.strerror or exc})") from exc
    if raw.lstrip().startswith(b"{"):
        try:
            doc = orjson.loads(raw)
            jwks = doc.get("keys", [doc])
            keys = [(k.get("kid"), RSAAlgorithm.from_jwk(k)) for k in jwks if k.get("kty") == "RSA"]
        except (
            orjson.JSONDecodeError,
            AttributeError,
            KeyError,
            TypeError,
            ValueError,
            jwt.PyJWTError,
        ) as exc:
            raise KazooKeyError(f"{source}: not a usable JWKS ({exc})") from exc
        if not keys:
            raise KazooKeyError(f"{source}: the JWKS has no RSA key")
        return [(kid if isinstance(kid, str) else None, _public(key, source)) for kid, key in keys]
    try:
        if b"CERTIFICATE" in raw:
            key: Any = x509.load_pem_x509_certificate(raw).public_key()
        else:
            key = serialization.load_pem_public_key(raw)
    except ValueError as exc:
        raise KazooKeyError(f"{source}: not a PEM public key ({exc})") from exc
    return [(None, _public(key, source))]


def _public(key: Any, source: str) -> rsa.RSAPublicKey:
    if isinstance(key, rsa.RSAPrivateKey):
        key = key.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise KazooKeyError(f"{source}: not an RSA key")
    return key


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
    """Answers "may this token read this account?" from the tokens file, else from Kazoo's JWTs."""

    def __init__(self, path: str, *, clock: float | None = None, kazoo: KazooKeys | None = None) -> None:
        self.path = path
        self.kazoo = kazoo
        self._grants: dict[bytes, frozenset[str]] = {}
        self._mtime: float | None = None
        self._checked = clock if clock is not None else 0.0
        if path:
            self._load(initial=True)

    @property
    def configured(self) -> bool:
        return bool(self.path) or bool(self._grants) or self.kazoo is not None

    def accounts(self, token: str | None) -> frozenset[str] | None:
        """The accounts ``token`` may read, or None when the token is unknown (or an invalid JWT)."""
        if not token:
            return None
        self._maybe_reload()
        grant = self._grants.get(_digest(token))
        if grant is None and self.kazoo is not None:
            account_id = self.kazoo.account(token)
            if account_id is not None and account_id != ALL_ACCOUNTS:
                grant = frozenset([account_id])
        return grant

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
