"""Kazoo's own X-Auth-Token on the debug API: JWTs signed as ``kz_auth_jwt`` signs them, checked here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import RSAAlgorithm

from pivot_worker.collector.api import make_app
from pivot_worker.collector.auth import KazooKeyError, KazooKeys, TokenBook
from pivot_worker.collector.store import Store

from .support import ACCOUNT_A, ACCOUNT_B, TOKEN_A, events_of, get_json, make_trace

KID = "5f2d9c0e1b3a4c6d8e7f9a0b1c2d3e4f"  # kazoo_auth's kid: the auth app's pvt_server_key
OWNER = "c0ffee00c0ffee00c0ffee00c0ffee00"
_DIGESTS = {"RS256": hashes.SHA256, "RS384": hashes.SHA384, "RS512": hashes.SHA512}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def kazoo_jwt(key: rsa.RSAPrivateKey, claims: dict[str, Any], *, alg: str = "RS256", kid: str = KID) -> str:
    """What kz_auth_jwt:encode/1 produces: base64url JSON header and claims, PKCS#1 v1.5 signature."""
    signing_input = (
        f"{_b64(orjson.dumps({'alg': alg, 'typ': 'JWT', 'kid': kid}))}.{_b64(orjson.dumps(claims))}"
    )
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), _DIGESTS[alg]())
    return f"{signing_input}.{_b64(signature)}"


def claims(account: str = ACCOUNT_A, *, ttl: int = 3600) -> dict[str, Any]:
    now = int(time.time())
    return {
        "account_id": account,
        "owner_id": OWNER,
        "method": "cb_user_auth",
        "identity_sig": "2Kc1t2mYJ7yT0b8o",
        "iat": now,
        "exp": now + ttl,
    }


@pytest.fixture(scope="module")
def kazoo_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(params=["pem", "jwks"])
def key_path(request: pytest.FixtureRequest, tmp_path: Path, kazoo_key: rsa.RSAPrivateKey) -> Path:
    if request.param == "pem":
        path = tmp_path / "kazoo_auth.pem"
        path.write_bytes(_pem(kazoo_key))
    else:
        jwk = orjson.loads(RSAAlgorithm.to_jwk(kazoo_key.public_key()))
        path = tmp_path / "jwks.json"
        path.write_bytes(orjson.dumps({"keys": [jwk | {"kid": KID, "use": "sig", "alg": "RS256"}]}))
    return path


@pytest.fixture
async def jwt_api(store: Store, tokens_file: Path, key_path: Path) -> AsyncIterator[str]:
    book = TokenBook(str(tokens_file), kazoo=KazooKeys.from_setting(f" {key_path} ,"))
    runner = web.AppRunner(make_app(store, book, node="collector@test"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/v2/accounts"
    finally:
        await runner.cleanup()


SQLITE = pytest.mark.parametrize("store", ["sqlite"], indirect=True)


@SQLITE
async def test_a_kazoo_jwt_reads_its_account(
    jwt_api: str, store: Store, http: aiohttp.ClientSession, kazoo_key: rsa.RSAPrivateKey
) -> None:
    await store.write(events_of(make_trace(call="jwt-call")))
    for alg in ("RS256", "RS384", "RS512"):
        token = kazoo_jwt(kazoo_key, claims(), alg=alg)
        status, body = await get_json(http, f"{jwt_api}/{ACCOUNT_A}/pivot/debug", token)
        assert status == 200, body
        assert [r["call_id"] for r in body["data"]] == ["jwt-call"]
        assert body["auth_token"] == token
        status, body = await get_json(http, f"{jwt_api}/{ACCOUNT_A}/pivot/debug/jwt-call", token)
        assert (status, len(body["data"])) == (200, 3)
    async with http.get(
        f"{jwt_api}/{ACCOUNT_A}/pivot/debug", headers={"Authorization": f"Bearer {token}"}
    ) as resp:
        assert resp.status == 200
    # the tokens file still works next to the keys
    assert (await get_json(http, f"{jwt_api}/{ACCOUNT_A}/pivot/debug", TOKEN_A))[0] == 200


@SQLITE
async def test_a_kazoo_jwt_for_another_account_is_403(
    jwt_api: str, store: Store, http: aiohttp.ClientSession, kazoo_key: rsa.RSAPrivateKey
) -> None:
    await store.write(events_of(make_trace(account=ACCOUNT_B, call="b-call")))
    token = kazoo_jwt(kazoo_key, claims(ACCOUNT_A))
    status, body = await get_json(http, f"{jwt_api}/{ACCOUNT_B}/pivot/debug", token)
    assert (status, body["error"], body["message"]) == (403, "403", "forbidden")
    assert (await get_json(http, f"{jwt_api}/{ACCOUNT_B}/pivot/debug/b-call", token))[0] == 403
    # exactly the account in the token: a "*" claim grants nothing
    wildcard = kazoo_jwt(kazoo_key, claims("*"))
    assert (await get_json(http, f"{jwt_api}/{ACCOUNT_B}/pivot/debug", wildcard))[0] == 401


@SQLITE
async def test_expired_foreign_or_forged_tokens_are_401(
    jwt_api: str,
    store: Store,
    http: aiohttp.ClientSession,
    kazoo_key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
) -> None:
    url = f"{jwt_api}/{ACCOUNT_A}/pivot/debug"
    now = int(time.time())
    expired = claims() | {"iat": now - 7200, "exp": now - 3600}
    no_exp = {k: v for k, v in claims().items() if k != "exp"}
    header = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}))
    signing_input = f"{header}.{_b64(orjson.dumps(claims()))}"
    hs256 = (
        f"{signing_input}.{_b64(hmac.new(_pem(kazoo_key), signing_input.encode(), hashlib.sha256).digest())}"
    )
    none_alg = f"{_b64(orjson.dumps({'alg': 'none', 'typ': 'JWT'}))}.{_b64(orjson.dumps(claims()))}."
    good = kazoo_jwt(kazoo_key, claims())
    tampered = good.split(".")
    tampered[1] = _b64(orjson.dumps(claims() | {"account_id": ACCOUNT_B}))
    for token in (
        kazoo_jwt(kazoo_key, expired),
        kazoo_jwt(kazoo_key, no_exp),
        kazoo_jwt(other_key, claims()),
        kazoo_jwt(other_key, claims(), kid="another-kid"),
        hs256,
        none_alg,
        ".".join(tampered),
        kazoo_jwt(kazoo_key, claims() | {"account_id": ""}),
        "not.a.jwt",
    ):
        status, body = await get_json(http, url, token)
        assert (status, body["message"]) == (401, "invalid_credentials"), token
    assert (await get_json(http, url, good))[0] == 200


def test_a_jwks_key_verifies_only_its_kid(tmp_path: Path, kazoo_key: rsa.RSAPrivateKey) -> None:
    jwk = orjson.loads(RSAAlgorithm.to_jwk(kazoo_key.public_key()))
    path = tmp_path / "jwks.json"
    path.write_bytes(orjson.dumps({"keys": [jwk | {"kid": KID}]}))
    keys = KazooKeys([str(path)])
    assert keys.account(kazoo_jwt(kazoo_key, claims())) == ACCOUNT_A
    assert keys.account(kazoo_jwt(kazoo_key, claims(), kid="rotated-away")) is None


def test_unusable_key_files_name_the_setting(tmp_path: Path) -> None:
    for name, content in [("a.pem", b"not a key"), ("b.json", b'{"keys": []}'), ("c.json", b"[1]")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(KazooKeyError, match="PIVOT_KAZOO_AUTH_KEYS"):
            KazooKeys([str(tmp_path / name)])
    with pytest.raises(KazooKeyError, match="cannot be read"):
        KazooKeys([str(tmp_path / "missing.pem")])
    assert KazooKeys.from_setting(" , ") is None
