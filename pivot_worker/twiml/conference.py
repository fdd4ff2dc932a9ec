"""``<Dial><Conference>``: an ad-hoc Kazoo conference room, scoped to the account.

Kazoo's ``conference`` module hands the caller to the conference application
(``cf_exe:control_usurped``), so the flow ends there: the Dial ``action`` and the verbs after the
Dial never run.

The node's ``config`` is the room's conferences document. Its ``profile`` is the FreeSWITCH
conference profile: the conference application caches it under ``profile_name`` when the caller is
discovered (``conf_discovery_req``, ``conf_config_req:cache_profile``) and answers FreeSWITCH's
profile request with it; ecallmgr writes every key as a FreeSWITCH conference parameter. The
profile carries what the conferences document cannot: the wait music (``moh-sound``) and
"wait for a moderator" (``conference-flags: wait-mod``, with ``moderator`` on the participants
whose ``startConferenceOnEnter`` is true). FreeSWITCH reads a profile once, when the room starts,
so the participant who opens a room decides these for it.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from lxml import etree

from ..errors import Reason
from . import attrs
from .state import Node, State

MAX_ROOM_NAME = 128
SILENCE = "silence_stream://-1"
"""FreeSWITCH's endless silence, for ``waitUrl=""`` (Twilio then plays nothing while waiting)."""
KAZOO_HOLD_MUSIC = "$${hold_music}"
WAIT_MUSIC_EXTENSIONS = (".mp3", ".wav")
"""Audio FreeSWITCH plays from an http(s) URL; another ``waitUrl`` is taken for TwiML."""

BASE_PROFILE: dict[str, object] = {
    "caller-controls": "default",
    "channels": 2,
    "comfort-noise": 1000,
    "deaf-sound": "conf-deaf",
    "energy-level": 20,
    "interval": 20,
    "locked-sound": "conf-max_participants",
    "max-members-sound": "conf-max_participants",
    "moderator-controls": "default",
    "muted-sound": "conf-muted",
    "rate": 48000,
    "undeaf-sound": "conf-undeaf",
    "unmuted-sound": "conf-unmuted",
}
"""Kazoo's default conference profile (``DEFAULT_PROFILE_CONFIG``, ``kapps_conference.hrl``)
without what Twilio does not play: the "you are alone" and "joining the conference" prompts.
The entry and exit tones are added by the conference application from ``play_entry_tone`` and
``play_exit_tone`` (``conf_config_req:fix_profile``)."""

_NO_ROOM_EVENTS = "Kazoo's conference module reports no room events to a URL"
_NO_ROOM_RECORDING = "Kazoo's conference application records no room (no recording setting)"
UNSUPPORTED: dict[str, str] = {
    "record": _NO_ROOM_RECORDING,
    "recordingStatusCallback": _NO_ROOM_RECORDING,
    "recordingStatusCallbackMethod": _NO_ROOM_RECORDING,
    "recordingStatusCallbackEvent": _NO_ROOM_RECORDING,
    "recordingConfigurationId": _NO_ROOM_RECORDING,
    "trim": _NO_ROOM_RECORDING,
    "statusCallback": _NO_ROOM_EVENTS,
    "statusCallbackMethod": _NO_ROOM_EVENTS,
    "statusCallbackEvent": _NO_ROOM_EVENTS,
    "eventCallbackUrl": _NO_ROOM_EVENTS,
    "coach": "Kazoo's conference module cannot make a participant heard by one other participant only",
    "region": "Kazoo rooms run on the media server that opens them",
    "jitterBufferSize": "Kazoo's conference module has no jitter buffer setting",
    "participantLabel": "Kazoo conference participants have no label",
}
"""``<Conference>`` attributes Kazoo cannot honour, with the reason each warning gives."""
_HARMLESS = {"record": ("do-not-record",), "trim": ("do-not-trim",)}


def conference(noun: etree._Element, st: State) -> Node | None:
    """The ``conference`` node for one ``<Conference>`` noun (None after a located error)."""
    na = attrs.read(noun, st)
    room = (noun.text or "").strip()
    if not room or len(room) > MAX_ROOM_NAME:
        st.error(noun, "13237", "<Conference> needs a room name of 1 to 128 characters", Reason.SCHEMA_ERROR)
        return None
    muted = attrs.boolean(noun, na, st, "muted", False, "13230")
    start = attrs.boolean(noun, na, st, "startConferenceOnEnter", True, "13232")
    _warn_end_conference(noun, na, st)
    beep = attrs.choice(noun, na, st, "beep", ("true", "false", "onEnter", "onExit"), "true", "13235")
    wait_music = _wait_music(noun, na, st)
    _warn_unsupported(noun, na, st)
    entry, leave = beep in ("true", "onEnter"), beep in ("true", "onExit")
    identity = room_id(st.ctx.account_id, room)
    config = _room_config(room, muted, start, entry, leave)
    config["profile_name"] = profile_name(identity, st.ctx.account_id)
    config["profile"] = _profile(start, wait_music)
    if na.get("maxParticipants") is not None:
        config["max_participants"] = attrs.integer(
            noun, na, st, "maxParticipants", 250, "conference-max", minimum=2, maximum=250
        )
    data: dict[str, object] = {
        "id": identity,
        "moderator": start,
        "play_entry_tone": entry,
        "play_exit_tone": leave,
        "welcome_prompt": {"play": False},
        "config": config,
    }
    return st.node(noun, "conference", data)


def room_id(account_id: str, room: str) -> str:
    """Kazoo needs a 32-character id; rooms of different accounts must never meet."""
    return hashlib.md5(f"{account_id}:{room}".encode(), usedforsecurity=False).hexdigest()


def profile_name(identity: str, account_id: str) -> str:
    """``<room id>_<account id>``: the name ``conf_participant`` would give the room's profile,
    and one ``conf_config_req`` can split back into the room and its account."""
    return f"{identity}_{account_id}" if account_id else identity


def _warn_end_conference(noun: etree._Element, na: attrs.Values, st: State) -> None:
    if attrs.boolean(noun, na, st, "endConferenceOnExit", False, "13231"):
        st.warn(
            noun,
            "kazoo-unsupported",
            "endConferenceOnExit is ignored: Kazoo's conference command sets only the mute, deaf and "
            "moderator flags of a participant (ecallmgr), so none can end the room; it ends when the "
            "last participant leaves",
        )


def _wait_music(noun: etree._Element, na: attrs.Values, st: State) -> str:
    """``moh-sound`` for ``waitUrl``: its audio, silence for ``""``, else Kazoo's hold music."""
    raw = na.get("waitUrl")
    audio = raw is not None and urlsplit(raw.strip()).path.lower().endswith(WAIT_MUSIC_EXTENSIONS)
    if audio:
        why = "the media server fetches wait music with GET"
        attrs.unsupported(noun, na, st, "waitMethod", why, unless=("GET", "get"))
    else:
        attrs.unsupported(noun, na, st, "waitMethod", "it is the method of a waitUrl that is not requested")
    if raw is None:
        return KAZOO_HOLD_MUSIC
    if not raw.strip():
        return SILENCE
    if not audio:
        why = (
            "Kazoo's conference plays hold music, it cannot run the TwiML a waitUrl returns; give an "
            ".mp3 or .wav URL, or Kazoo's hold music plays"
        )
        attrs.unsupported(noun, na, st, "waitUrl", why)
        return KAZOO_HOLD_MUSIC
    return st.url(noun, raw.strip(), "<Conference> waitUrl")


def _warn_unsupported(noun: etree._Element, na: attrs.Values, st: State) -> None:
    for name in na:
        why = UNSUPPORTED.get(name)
        if why is not None:
            attrs.unsupported(noun, na, st, name, why, unless=_HARMLESS.get(name, ()))


def _room_config(room: str, muted: bool, start: bool, entry: bool, leave: bool) -> dict[str, object]:
    member = {"join_muted": muted, "join_deaf": False}
    return {
        "name": room,
        "play_welcome": False,
        "wait_for_moderator": not start,
        "member": member,
        "moderator": dict(member),
        "play_entry_tone": entry,
        "play_exit_tone": leave,
    }


def _profile(start: bool, wait_music: str) -> dict[str, object]:
    profile = dict(BASE_PROFILE)
    profile["moh-sound"] = wait_music
    if not start:
        profile["conference-flags"] = "wait-mod"
    return profile
