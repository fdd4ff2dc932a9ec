"""The debug API over a real store: Kazoo's shapes (docs/kazoo-contract.md §7.3), auth, isolation, paging."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
import orjson
import pytest

from pivot_worker.collector import auth
from pivot_worker.collector.store import Store
from pivot_worker.debug.gregorian import month_prefix, unix_to_gregorian
from pivot_worker.errors import Finding, Reason
from pivot_worker.trace import Outcome

from .support import ACCOUNT_A, ACCOUNT_B, TOKEN_A, TOKEN_ALL, TOKEN_B, events_of, get_json, make_trace

KAZOO_ROW_KEYS = {
    "call_id", "created", "uri", "status_code", "node", "iteration",
    "has_schema_errors", "has_json_errors", "debug_id",
}  # fmt: skip
SUCCESS_KEYS = {"auth_token", "data", "request_id", "revision", "status", "node", "timestamp", "version"}
ERROR_KEYS = {"auth_token", "data", "request_id", "status", "error", "message"}


def _list_url(api: str, account: str = ACCOUNT_A) -> str:
    return f"{api}/v2/accounts/{account}/pivot/debug"


async def _seed(store: Store, *traces: object) -> None:
    await store.write([e for t in traces for e in events_of(t)])  # type: ignore[arg-type]


async def test_list_rows_have_kazoos_shape(api: str, store: Store, http: aiohttp.ClientSession) -> None:
    trace = make_trace(call="4f6c1e2a-93b1-123d-77aa-00163e0a0b0c@10.0.0.1", status=206)
    await _seed(store, trace)
    status, body = await get_json(http, _list_url(api), TOKEN_A)
    assert status == 200
    assert SUCCESS_KEYS | {"page_size"} <= body.keys()
    assert body["status"] == "success"
    assert body["auth_token"] == TOKEN_A
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timestamp"])
    [row] = body["data"]
    assert row.keys() >= KAZOO_ROW_KEYS
    created = unix_to_gregorian(trace.received_at)
    assert row["created"] == created
    assert row["call_id"] == trace.call_id
    assert row["uri"] == trace.voice_uri
    assert row["status_code"] == "206"  # the real status, a string as in Kazoo
    assert row["node"] == trace.node
    assert row["iteration"] == 1
    assert row["has_schema_errors"] is False
    assert row["has_json_errors"] is False
    assert row["debug_id"] == f"{month_prefix(created)}-{trace.call_id}"
    assert (row["failed"], row["reason"]) == (False, None)
    assert body["page_size"] == 1
    assert "next_start_key" not in body


async def test_per_call_records_oldest_first_by_call_id_or_debug_id(
    api: str, store: Store, http: aiohttp.ClientSession
) -> None:
    call = "a84b1c@sip.example.com"
    first = make_trace(call=call, received_at=time.time() - 30)
    second = make_trace(call=call, iteration=2, status=404, outcome=Outcome.FAILED, reason=Reason.HTTP_STATUS)
    await _seed(store, second, first)  # stored out of order on purpose
    status, by_call = await get_json(http, f"{_list_url(api)}/{quote(call, safe='')}", TOKEN_A)
    assert status == 200
    records = by_call["data"]
    assert [(r["iteration"], r["event_type"]) for r in records] == [
        (1, "request"), (1, "response"), (1, "result"), (2, "request"), (2, "response"), (2, "result"),
    ]  # fmt: skip
    for record in records:
        assert {"call_id", "created", "node", "debug_id", "id"} <= record.keys()
        assert record["debug_id"] == f"{month_prefix(record['created'])}-{call}"
    assert records[0]["uri"] == first.voice_uri
    assert records[0]["req_headers"]["authorization"] == "Bearer ***"
    assert records[1]["resp_status_code"] == "200"
    assert records[1]["resp_headers"]["x-trace"] == "MixedCase"  # values keep their case
    assert records[1]["resp_body"] == "<Response><Say>Hello</Say></Response>"
    assert records[2]["callflow"] == {"module": "tts", "data": {"text": "Hello"}, "children": {}}
    assert records[4]["resp_status_code"] == "404"
    assert records[5]["reason"] == "http_status"

    status, by_debug_id = await get_json(
        http, f"{_list_url(api)}/{quote(records[0]['debug_id'], safe='')}", TOKEN_A
    )
    assert status == 200
    assert [r["id"] for r in by_debug_id["data"]] == [r["id"] for r in records]


async def test_a_debug_id_of_another_month_finds_nothing(
    api: str, store: Store, http: aiohttp.ClientSession
) -> None:
    trace = make_trace(call="month-call", received_at=time.mktime((2024, 3, 12, 12, 0, 0, 0, 0, 0)))
    await _seed(store, trace)
    assert (await get_json(http, f"{_list_url(api)}/202403-month-call", TOKEN_A))[0] == 200
    status, body = await get_json(http, f"{_list_url(api)}/202402-month-call", TOKEN_A)
    assert (status, body["status"], body["data"]) == (200, "success", [])  # crossbar: an empty success


async def test_a_call_id_that_looks_like_a_debug_id_is_still_found(
    api: str, store: Store, http: aiohttp.ClientSession
) -> None:
    await _seed(store, make_trace(call="202401-looks-like-a-debug-id"))
    status, body = await get_json(http, f"{_list_url(api)}/202401-looks-like-a-debug-id", TOKEN_A)
    assert status == 200
    assert body["data"][0]["call_id"] == "202401-looks-like-a-debug-id"


@pytest.mark.parametrize("token", [None, "", "not-a-known-token"])
async def test_missing_or_unknown_token_is_401(
    api: str, store: Store, http: aiohttp.ClientSession, token: str | None
) -> None:
    status, body = await get_json(http, _list_url(api), token)
    assert status == 401
    assert body.keys() >= ERROR_KEYS
    assert (body["status"], body["error"], body["message"]) == ("error", "401", "invalid_credentials")


async def test_another_accounts_data_is_forbidden_and_an_unknown_call_is_empty(
    api: str, store: Store, http: aiohttp.ClientSession
) -> None:
    await _seed(store, make_trace(account=ACCOUNT_B, call="b-only-call"))
    status, listing = await get_json(http, _list_url(api, ACCOUNT_B), TOKEN_A)
    assert listing.keys() >= ERROR_KEYS
    assert (status, listing["status"], listing["error"], listing["message"]) == (
        403,
        "error",
        "403",
        "forbidden",
    )
    status, forbidden = await get_json(http, f"{_list_url(api, ACCOUNT_B)}/b-only-call", TOKEN_A)
    assert (status, forbidden["message"]) == (403, "forbidden")
    assert "b-only-call" not in orjson.dumps(forbidden).decode()  # nothing of the call leaks
    status, unknown = await get_json(http, f"{_list_url(api, ACCOUNT_A)}/b-only-call", TOKEN_A)
    assert (status, unknown["status"], unknown["data"]) == (200, "success", [])
    assert (await get_json(http, f"{_list_url(api, ACCOUNT_B)}/b-only-call", TOKEN_B))[0] == 200
    assert (await get_json(http, f"{_list_url(api, ACCOUNT_B)}/b-only-call", TOKEN_ALL))[0] == 200
    assert (await get_json(http, _list_url(api, ACCOUNT_A), TOKEN_A))[1]["data"] == []


async def test_pagination_follows_next_start_key(api: str, store: Store, http: aiohttp.ClientSession) -> None:
    t0 = time.time() - 100
    await _seed(store, *[make_trace(call=f"page-{i}", received_at=t0 + i) for i in range(5)])
    seen: list[str] = []
    params: dict[str, object] = {"page_size": 2}
    pages = 0
    while True:
        status, body = await get_json(http, _list_url(api), TOKEN_A, **params)
        assert status == 200
        pages += 1
        assert body["page_size"] == len(body["data"])
        if "start_key" in params:
            assert body["start_key"] == params["start_key"]
        seen += [r["call_id"] for r in body["data"]]
        if "next_start_key" not in body:
            break
        params["start_key"] = body["next_start_key"]
    assert pages == 3
    assert seen == [f"page-{i}" for i in reversed(range(5))]  # newest first

    status, body = await get_json(http, _list_url(api), TOKEN_A, ascending=True, paginate=False)
    assert [r["call_id"] for r in body["data"]] == [f"page-{i}" for i in range(5)]
    assert not {"page_size", "start_key", "next_start_key"} & body.keys()


async def test_created_range_selects_calls(api: str, store: Store, http: aiohttp.ClientSession) -> None:
    now = time.time()
    await _seed(
        store,
        make_trace(call="yesterday", received_at=now - 86400),
        make_trace(call="today", received_at=now),
    )
    g_now = unix_to_gregorian(now)
    _, body = await get_json(http, _list_url(api), TOKEN_A, created_from=g_now - 3600, created_to=g_now + 10)
    assert [r["call_id"] for r in body["data"]] == ["today"]
    _, body = await get_json(
        http, _list_url(api), TOKEN_A, created_from=g_now - 2 * 86400, created_to=g_now - 3600
    )
    assert [r["call_id"] for r in body["data"]] == ["yesterday"]


async def test_failed_filter_and_error_flags(api: str, store: Store, http: aiohttp.ClientSession) -> None:
    parse = make_trace(
        call="bad-xml",
        outcome=Outcome.FAILED,
        reason=Reason.PARSE_ERROR,
        errors=[Finding("12100", "not XML")],
    )
    await _seed(store, make_trace(call="fine"), parse)
    _, body = await get_json(http, _list_url(api), TOKEN_A, failed=True)
    [row] = body["data"]
    assert (row["call_id"], row["failed"], row["reason"], row["has_json_errors"]) == (
        "bad-xml",
        True,
        "parse_error",
        True,
    )


@pytest.mark.parametrize(
    ("params", "parameter", "code"),
    [
        ({"page_size": 0}, "page_size", "minimum"),
        ({"page_size": "ten"}, "page_size", "type"),
        ({"page_size": 5000}, "page_size", "maximum"),
        ({"page_size": 5000, "paginate": "false"}, "page_size", "maximum"),  # found by fuzzing
        ({"created_from": "yesterday"}, "created_from", "type"),
        ({"created_to": -5}, "created_to", "minimum"),
        ({"created_from": 63_900_000_000, "created_to": 63_800_000_000}, "created_from", "date_range"),
        ({"created_from": 63_800_000_000, "created_to": 63_900_000_000}, "created_from", "date_range"),
        ({"start_key": "%%%"}, "start_key", "type"),
        ({"start_key": "WzEsMl0"}, "start_key", "type"),  # valid base64 of [1,2]: wrong shape
        ({"failed": "maybe"}, "failed", "type"),
        ({"paginate": "perhaps"}, "paginate", "type"),
        ({"ascending": "true", "descending": "true"}, "ascending", "conflict"),
        ({"descending": "null"}, "descending", "type"),
    ],
)
async def test_bad_parameters_get_a_400_naming_them(
    api: str, store: Store, http: aiohttp.ClientSession, params: dict[str, object], parameter: str, code: str
) -> None:
    status, body = await get_json(http, _list_url(api), TOKEN_A, **params)
    assert status == 400
    assert (body["status"], body["error"], body["message"]) == ("error", "400", "validation error")
    assert list(body["data"]) == [parameter]
    assert list(body["data"][parameter]) == [code]
    assert body["data"][parameter][code]["message"]


async def test_a_parameter_given_twice_is_refused(
    api: str, store: Store, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        f"{_list_url(api)}?page_size=1&page_size=2", headers={"X-Auth-Token": TOKEN_A}
    ) as resp:
        body = orjson.loads(await resp.read())
    assert resp.status == 400
    assert body["data"] == {
        "page_size": {"repeated": {"message": "must be given at most once", "cause": ["1", "2"]}}
    }


async def test_unknown_paths_and_methods_answer_in_envelopes(
    api: str, store: Store, http: aiohttp.ClientSession
) -> None:
    status, body = await get_json(http, f"{api}/v2/accounts/{ACCOUNT_A}/nothing-here", TOKEN_A)
    assert (status, body["error"], body["message"]) == (404, "404", "not_found")
    async with http.post(_list_url(api), headers={"X-Auth-Token": TOKEN_A}) as resp:
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET"
        assert orjson.loads(await resp.read())["message"] == "invalid_method"


async def test_bearer_token_is_accepted_too(api: str, store: Store, http: aiohttp.ClientSession) -> None:
    async with http.get(_list_url(api), headers={"Authorization": f"Bearer {TOKEN_A}"}) as resp:
        assert resp.status == 200


async def test_tokens_file_edits_take_effect_and_broken_edits_are_ignored(
    api: str, store: Store, http: aiohttp.ClientSession, tokens_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "RECHECK_S", 0.0)
    tokens_file.write_bytes(orjson.dumps({"fresh-token": [ACCOUNT_A]}))
    assert (await get_json(http, _list_url(api), "fresh-token"))[0] == 200
    assert (await get_json(http, _list_url(api), TOKEN_A))[0] == 401
    time.sleep(0.01)
    tokens_file.write_text("{ not json")
    assert (await get_json(http, _list_url(api), "fresh-token"))[0] == 200


def test_tokens_file_errors_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    for content, words in [
        ("[]", "must be a JSON object"),
        ('{"t": 5}', "token #1 must map to a list"),
        ('{"": ["a"]}', "token #1 is empty"),
        ("{", "not JSON"),
    ]:
        path.write_text(content)
        with pytest.raises(auth.TokenFileError, match=words) as info:
            auth.TokenBook(str(path))
        assert "PIVOT_API_TOKENS_FILE" in str(info.value)
    with pytest.raises(auth.TokenFileError, match="cannot be read"):
        auth.TokenBook(str(tmp_path / "missing.json"))


async def test_openapi_document_is_served(api: str, store: Store, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{api}/openapi.json") as resp:
        doc = orjson.loads(await resp.read())
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {
        "/v2/accounts/{account_id}/pivot/debug",
        "/v2/accounts/{account_id}/pivot/debug/{debug_id}",
    }
    for path in doc["paths"].values():
        assert {"200", "400", "401", "403"} <= path["get"]["responses"].keys()
