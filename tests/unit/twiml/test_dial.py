"""``<Dial>`` decisions the golden files show once: after-dial arming, sequential chains, ring
tones, answerOnBridge, conference profiles, and the documents Kazoo cannot dial."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pivot_worker.errors import Reason, TranslationError
from pivot_worker.twiml import translate_twiml
from pivot_worker.twiml.after_dial import CALL_VAR, NOTHING_FOLLOWS
from pivot_worker.twiml.conference import BASE_PROFILE, KAZOO_HOLD_MUSIC, SILENCE
from pivot_worker.twiml.continuation import AFTER_DIAL, open_token
from pivot_worker.twiml.dial import BUSY_CAUSES, FAILED_CAUSES, NO_ANSWER_CAUSES
from pivot_worker.twiml.ringtones import RINGBACK

from .support import CALL_ID, DOC_URL, KEY, make_ctx, modules_along

EXTENSION = "*7799"
USER = "6d2f0c1b2a3948576a5b4c3d2e1f0a9b"
DEVICE = "9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a"
TWILIO_RING_TONES = [
    "at",
    "au",
    "bg",
    "br",
    "be",
    "ch",
    "cl",
    "cn",
    "cz",
    "de",
    "dk",
    "ee",
    "es",
    "fi",
    "fr",
    "gr",
    "hu",
    "il",
    "in",
    "it",
    "lt",
    "jp",
    "mx",
    "my",
    "nl",
    "no",
    "nz",
    "ph",
    "pl",
    "pt",
    "ru",
    "se",
    "sg",
    "th",
    "uk",
    "us",
    "us-old",
    "tw",
    "ve",
    "za",
]


def _flow(body: str, **ctx: Any) -> dict[str, Any]:
    return translate_twiml(body.encode(), make_ctx(**ctx)).flow


def _after_dial_value(flow: dict[str, Any]) -> str:
    assert flow["module"] == "set_variables"
    value = flow["data"]["custom_application_vars"][CALL_VAR]
    assert isinstance(value, str)
    return value


# -- an answered Dial ----------------------------------------------------------------------------


def test_dial_with_action_arms_a_transfer_carrying_the_action() -> None:
    flow = _flow(
        '<Response><Dial action="next" method="GET"><Number>+14155551234</Number></Dial></Response>',
        after_dial_extension=EXTENSION,
    )
    assert modules_along(flow)[:4] == ["set_variables", "after_bridge", "answer", "resources"]
    assert flow["children"]["_"]["data"] == {"action": "transfer", "data": EXTENSION}
    cont = open_token(_after_dial_value(flow), key=KEY)
    assert (cont.kind, cont.call_id, cont.iteration) == (AFTER_DIAL, CALL_ID, 2)
    assert (cont.url, cont.method, cont.dial_status) == (
        "https://ivr.example.com/app/next",
        "get",
        "completed",
    )


def test_dial_followed_by_verbs_carries_them() -> None:
    flow = _flow(
        f"<Response><Dial><Device>{DEVICE}</Device></Dial><Say>bye</Say></Response>",
        after_dial_extension=EXTENSION,
    )
    cont = open_token(_after_dial_value(flow), key=KEY)
    assert (cont.remaining, cont.base_url) == ("<Response><Say>bye</Say></Response>", DOC_URL)
    dial_node = flow["children"]["_"]["children"]["_"]["children"]["_"]
    assert dial_node["module"] == "device"
    assert modules_along(dial_node["children"]["_"]) == ["tts", "hangup"]


def test_dial_with_nothing_after_disarms() -> None:
    flow = _flow(f"<Response><Dial><User>{USER}</User></Dial></Response>", after_dial_extension=EXTENSION)
    assert _after_dial_value(flow) == NOTHING_FOLLOWS


def test_failure_children_do_not_change_with_the_extension() -> None:
    body = '<Response><Dial action="/a"><Number>+14155551234</Number></Dial></Response>'
    armed = _flow(body, after_dial_extension=EXTENSION)["children"]["_"]["children"]["_"]
    plain = _flow(body)
    assert armed["module"] == plain["module"] == "answer"
    assert armed["children"]["_"]["children"].keys() == plain["children"]["_"]["children"].keys()


def test_conference_never_arms_a_transfer() -> None:
    flow = _flow('<Response><Dial action="/a"><Conference>room</Conference></Dial></Response>')
    assert modules_along(flow) == ["conference"]
    armed = _flow(
        '<Response><Dial action="/a"><Conference>room</Conference></Dial></Response>',
        after_dial_extension=EXTENSION,
    )
    assert modules_along(armed) == ["conference"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('<Response><Dial action="/a">+14155551234</Dial></Response>', "the action is requested only"),
        ("<Response><Dial>+14155551234</Dial><Hangup/></Response>", "the verbs after it run only"),
        ("<Response><Dial>+14155551234</Dial></Response>", None),
    ],
)
def test_without_the_extension_a_lost_continuation_is_a_warning(body: str, expected: str | None) -> None:
    warnings = translate_twiml(body.encode(), make_ctx()).warnings
    lost = [w for w in warnings if "PIVOT_AFTER_DIAL_EXTENSION" in w.message]
    if expected is None:
        assert lost == []
    else:
        assert [(w.code, w.pointer) for w in lost] == [("kazoo-unsupported", "/Response/Dial[1]")]
        assert expected in lost[0].message


# -- several nouns -------------------------------------------------------------------------------


def test_sequential_numbers_fail_over_in_order_then_request_the_action() -> None:
    flow = _flow(
        '<Response><Dial sequential="true" action="/a"><Number>+1111</Number><Number>+2222</Number>'
        "<Number>+3333</Number></Dial></Response>"
    )
    first = flow["children"]["_"]
    second = first["children"]["NO_ANSWER"]
    third = second["children"]["USER_BUSY"]
    assert [n["data"]["to_did"] for n in (first, second, third)] == ["+1111", "+2222", "+3333"]
    for node, following in ((first, second), (second, third)):
        causes = {*BUSY_CAUSES, *NO_ANSWER_CAUSES, *FAILED_CAUSES, "_"}
        assert set(node["children"]) == causes
        assert all(child is following for child in node["children"].values())
    assert third["children"]["USER_BUSY"]["module"] == "pivot"


def test_sequential_users_fall_back_through_underscore() -> None:
    flow = _flow(
        f'<Response><Dial sequential="true"><User>{USER}</User><Device>{DEVICE}</Device></Dial></Response>'
    )
    assert modules_along(flow) == ["answer", "user", "device"]
    assert list(flow["children"]["_"]["children"]) == ["_"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("<Dial><Number>1</Number><Number>2</Number></Dial>", "dial-several-numbers"),
        (f"<Dial><Number>1</Number><User>{USER}</User></Dial>", "dial-mixed"),
        ('<Dial sequential="false"><Number>1</Number><Number>2</Number></Dial>', "dial-several-numbers"),
    ],
)
def test_numbers_that_cannot_ring_at_once_are_refused(body: str, code: str) -> None:
    with pytest.raises(TranslationError) as info:
        translate_twiml(f"<Response>{body}</Response>".encode(), make_ctx())
    finding = info.value.findings[0]
    assert (info.value.reason, finding.code, finding.pointer) == (
        Reason.UNSUPPORTED_VERB,
        code,
        "/Response/Dial[1]",
    )
    assert 'sequential="true"' in finding.message


def test_sip_is_refused_with_what_to_use_instead() -> None:
    with pytest.raises(TranslationError) as info:
        translate_twiml(b"<Response><Dial><Sip>sip:a@b.c</Sip></Dial></Response>", make_ctx())
    finding = info.value.findings[0]
    assert (finding.code, finding.pointer) == ("unsupported-noun", "/Response/Dial[1]/Sip[1]")
    assert "<Device>" in finding.message
    assert "SIP URI" in finding.message


# -- ring tones and answering --------------------------------------------------------------------


def test_every_twilio_ring_tone_is_a_freeswitch_tone_stream() -> None:
    assert sorted(RINGBACK) == sorted(TWILIO_RING_TONES)
    segment = r"%\(\d+,\d+(,\d+)+\)"
    for tone in RINGBACK.values():
        assert re.fullmatch(rf"tone_stream://{segment}(;{segment})*", tone), tone


def test_ring_tone_on_one_device_uses_a_ring_group() -> None:
    flow = _flow(
        f'<Response><Dial ringTone="fr" answerOnBridge="true"><Device>{DEVICE}</Device></Dial></Response>'
    )
    group = flow
    assert group["module"] == "ring_group"
    assert group["data"]["ringback"] == RINGBACK["fr"]
    assert group["data"]["endpoints"][0]["endpoint_type"] == "device"


def test_ring_tone_is_not_set_for_a_caller_the_dial_answers_first() -> None:
    translation = translate_twiml(b'<Response><Dial ringTone="fr">+14155551234</Dial></Response>', make_ctx())
    assert translation.flow["module"] == "answer"
    assert "ringback" not in translation.flow["children"]["_"]["data"]
    (warning,) = [w for w in translation.warnings if w.code == "kazoo-unsupported"]
    assert "ringTone" in warning.message and "answered" in warning.message


@pytest.mark.parametrize(("value", "answered"), [(None, True), ("false", True), ("true", False)])
def test_answer_on_bridge(value: str | None, answered: bool) -> None:
    attribute = "" if value is None else f' answerOnBridge="{value}"'
    flow = _flow(f"<Response><Dial{attribute}>+14155551234</Dial></Response>")
    assert (flow["module"] == "answer") is answered


# -- conference ----------------------------------------------------------------------------------


def _profile(conference: str) -> dict[str, Any]:
    flow = _flow(f"<Response><Dial>{conference}</Dial></Response>")
    profile: dict[str, Any] = flow["data"]["config"]["profile"]
    return profile


@pytest.mark.parametrize(
    ("attributes", "music"),
    [
        ("", KAZOO_HOLD_MUSIC),
        ('waitUrl=""', SILENCE),
        ('waitUrl="/hold/Music.MP3?v=2"', "https://ivr.example.com/hold/Music.MP3?v=2"),
        ('waitUrl="https://cdn.example.com/a.wav"', "https://cdn.example.com/a.wav"),
        ('waitUrl="http://twimlets.com/holdmusic"', KAZOO_HOLD_MUSIC),
    ],
)
def test_wait_music(attributes: str, music: str) -> None:
    profile = _profile(f"<Conference {attributes}>room</Conference>")
    assert profile["moh-sound"] == music
    assert {k: v for k, v in profile.items() if k in BASE_PROFILE} == BASE_PROFILE


@pytest.mark.parametrize(("start", "flags"), [("true", None), ("false", "wait-mod")])
def test_start_conference_on_enter_false_waits_for_a_moderator(start: str, flags: str | None) -> None:
    flow = _flow(
        f'<Response><Dial><Conference startConferenceOnEnter="{start}">room</Conference></Dial></Response>'
    )
    assert flow["data"]["moderator"] is (start == "true")
    assert flow["data"]["config"]["profile"].get("conference-flags") == flags


def test_rooms_of_different_accounts_have_different_profiles() -> None:
    body = "<Response><Dial><Conference>room</Conference></Dial></Response>"
    names = {
        _flow(body, account_id=account)["data"]["config"]["profile_name"] for account in ("a" * 32, "b" * 32)
    }
    assert len(names) == 2
