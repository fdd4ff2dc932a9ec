"""The after-dial request: recognised by its URL, continued from the call's variables."""

from __future__ import annotations

from typing import Any

import pytest

from pivot_worker.errors import PivotError, Reason
from pivot_worker.twiml import after_dial_disarmed, is_after_dial, open_after_dial
from pivot_worker.twiml.after_dial import AFTER_DIAL_URL, CALL_VAR, EXTENSION, NOTHING_FOLLOWS
from pivot_worker.twiml.continuation import AFTER_DIAL, RESUME, Continuation, payload, seal_payload

from .support import CALL_ID

KEY = b"after-dial test key"


def _call(**cavs: Any) -> dict[str, Any]:
    return {"Call-ID": CALL_ID, "Custom-Application-Vars": cavs}


def _token(key: bytes = KEY, call_id: str = CALL_ID) -> str:
    data = payload(call_id, 4, AFTER_DIAL, {"lang": "fr"}, url="https://ivr.example.com/after", method="post")
    return seal_payload(data, key)


@pytest.mark.parametrize(
    ("voice_uri", "expected"),
    [
        (AFTER_DIAL_URL, True),
        ("https://after-dial.pivot.invalid/anything?x=1", True),
        ("HTTPS://AFTER-DIAL.PIVOT.INVALID/", True),
        ("https://after-dial.pivot.invalid.example.com/", False),
        ("https://example.com/after-dial.pivot.invalid", False),
        ("http://[::1", False),  # not a URL at all
    ],
)
def test_the_after_dial_url_is_recognised_by_its_host(voice_uri: str, expected: bool) -> None:
    assert is_after_dial(voice_uri) is expected


def test_the_continuation_comes_from_the_call_variable() -> None:
    cont = open_after_dial(_call(**{CALL_VAR: _token()}), key=KEY)
    assert cont == Continuation(
        call_id=CALL_ID,
        iteration=4,
        kind=AFTER_DIAL,
        variables={"lang": "fr"},
        url="https://ivr.example.com/after",
        method="post",
    )


@pytest.mark.parametrize("cavs", [{}, {CALL_VAR: NOTHING_FOLLOWS}, {CALL_VAR: ""}, {CALL_VAR: 7}])
def test_nothing_to_continue_means_an_empty_resume(cavs: dict[str, Any]) -> None:
    cont = open_after_dial(_call(**cavs), key=KEY)
    assert (cont.kind, cont.remaining, cont.call_id) == (RESUME, "", CALL_ID)


def test_no_variables_object_at_all_is_an_empty_resume() -> None:
    assert open_after_dial({"Call-ID": CALL_ID}, key=KEY).kind == RESUME


@pytest.mark.parametrize("token", [_token(key=b"another key"), _token()[:-3] + "AAA", "not a token"])
def test_a_forged_or_damaged_token_is_refused(token: str) -> None:
    with pytest.raises(PivotError) as caught:
        open_after_dial(_call(**{CALL_VAR: token}), key=KEY)
    assert caught.value.reason is Reason.INVALID_CONTINUATION


@pytest.mark.parametrize("extension", ["*7799", "pivot_after_dial", "+15551234", "9#1"])
def test_extension_accepts_dialplan_extensions(extension: str) -> None:
    assert EXTENSION.fullmatch(extension)


@pytest.mark.parametrize("extension", ["", "77 XML context_2", "7799:XML:context_2", "x" * 65, "ext\n"])
def test_extension_refuses_dialplan_and_context_parts(extension: str) -> None:
    assert not EXTENSION.fullmatch(extension)


@pytest.mark.parametrize(
    ("cavs", "expected"),
    [
        ({CALL_VAR: "AQ-some-token"}, {CALL_VAR: NOTHING_FOLLOWS}),
        ({CALL_VAR: NOTHING_FOLLOWS}, {}),
        ({CALL_VAR: ""}, {}),
        ({"other": "x"}, {}),
    ],
)
def test_a_pending_continuation_is_disarmed_by_the_next_flow(
    cavs: dict[str, Any], expected: dict[str, str]
) -> None:
    assert after_dial_disarmed(_call(**cavs)) == expected
