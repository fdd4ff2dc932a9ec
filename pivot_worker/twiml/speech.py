"""``<Say>``, ``<Play>`` and ``<Pause>``: prompts, standalone or nested in ``<Gather>``.

Outside a Gather, Twilio's prompts cannot be interrupted by keys, so nodes get empty
``terminators``. Inside a Gather any key stops the prompt and counts as input: Kazoo's
``tts``/``play`` store keys pressed while they wait into the call's ``default`` DTMF collection,
which the following ``collect_dtmf`` reads first. A nested ``<Pause>`` is played as silence
(``silence_stream://``) for the same reason; ``sleep`` would swallow the keys.
"""

from __future__ import annotations

import functools
import re

from lxml import etree

from ..errors import Reason
from . import attrs
from .attrs import DTMF_KEYS
from .limits import MAX_PLAY_LOOP, MAX_SAY_CHARS, MAX_SAY_LOOP, TTS_NODE_CHARS
from .state import Node, State, Step
from .voices import ProviderVoice, provider_voice

TTS_ENGINES = ("flite", "google", "ispeech", "voicefabric")
_VOICES = {"man": "male", "male": "male", "woman": "female", "female": "female", "alice": "female"}
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_MAX_LANGUAGE_CHARS = 64  # longer values are checked without the cache
_SPACES = re.compile(r"\s+")
_DIGITS = re.compile(r"^[0-9*#wWA-D]+$")
DTMF_TONE_MS = 250  # per key; Kazoo's default of 2000 ms would make "1234" last eight seconds
DEFAULT_VOICE = "male"
"""Twilio's documented default voice is ``man``; also used for a provider voice of unknown gender."""
DEFAULT_LANGUAGE = "en-us"  # Twilio's en-US, in Kazoo's lower-case spelling


def _voice(element: etree._Element, raw: str | None, st: State) -> tuple[str, str | None]:
    """Kazoo's ``voice`` (``male``/``female``) and the language a provider voice implies, if any."""
    if raw is None:
        return DEFAULT_VOICE, None
    mapped = _VOICES.get(raw) or _VOICES.get(raw.strip().lower())
    if mapped is not None:
        return mapped, None
    provider = provider_voice(raw)
    if provider is None:
        st.warn(
            element,
            "kazoo-unsupported",
            f"voice={raw!r} is not available on Kazoo's TTS engines; using {DEFAULT_VOICE!r}",
        )
        return DEFAULT_VOICE, None
    return _provider_gender(element, raw, provider, st), provider.language


def _provider_gender(element: etree._Element, raw: str, provider: ProviderVoice, st: State) -> str:
    """A Polly/Google voice: the engine's voice of the same gender (the default when unknown)."""
    if provider.gender is None:
        gender, instead = DEFAULT_VOICE, f"its gender is not known, so the default {DEFAULT_VOICE!r} voice"
    else:
        gender, instead = provider.gender, f"the engine's {provider.gender!r} voice"
    st.warn(
        element,
        "kazoo-unsupported",
        f"voice={raw!r}: Kazoo's TTS engines cannot use {provider.provider} voices; {instead} speaks instead",
    )
    return gender


def _language_tag(raw: str) -> str | None:
    """Kazoo's spelling of a language tag (``en-US`` -> ``en-us``), or None if ``raw`` is not one."""
    tag = raw.strip()
    return tag.lower() if _LANGUAGE.match(tag) else None


_cached_language_tag = functools.lru_cache(maxsize=256)(_language_tag)
"""A worker sees the same few tags over and over; only short values are cached."""


def _language(element: etree._Element, raw: str | None, st: State, implied: str | None = None) -> str:
    """Kazoo's ``language``: the attribute, else the language of a provider voice, else en-US."""
    fallback = implied or DEFAULT_LANGUAGE
    if raw is None:
        return fallback
    tag = _cached_language_tag(raw) if len(raw) <= _MAX_LANGUAGE_CHARS else _language_tag(raw)
    if tag is None:
        st.warn(element, "say-language", f"language={raw!r} is not a language tag; using {fallback!r}")
        return fallback
    return tag


def _chunks(text: str) -> list[str]:
    """Split at spaces into pieces of at most :data:`TTS_NODE_CHARS` (Kazoo's tts text limit)."""
    if len(text) <= TTS_NODE_CHARS:
        return [text]
    pieces: list[str] = []
    while len(text) > TTS_NODE_CHARS:
        cut = text.rfind(" ", 0, TTS_NODE_CHARS + 1)
        if cut <= 0:
            cut = TTS_NODE_CHARS
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces


def say(element: etree._Element, st: State, *, in_gather: bool = False, barge_in: bool = True) -> list[Node]:
    return [node for repetition in say_repetitions(element, st, in_gather, barge_in) for node in repetition]


def say_repetitions(
    element: etree._Element, st: State, in_gather: bool = False, barge_in: bool = True
) -> list[list[Node]]:
    """The ``tts`` nodes of each repetition of a ``<Say>`` (a long text is several nodes per repetition)."""
    a = attrs.read(element, st)
    text = _spoken_text(element, st)
    if not text:
        st.warn(element, "13520", "<Say> has no text to speak; it is skipped")
        return []
    loop = attrs.integer(element, a, st, "loop", 1, "13322" if in_gather else "13510", minimum=0)
    data = _tts_data(element, a, st)
    data["terminators"] = list(DTMF_KEYS) if in_gather and barge_in else []
    if loop == 1 and len(text) <= TTS_NODE_CHARS:
        return [[st.node(element, "tts", {"text": text, **data})]]  # the usual case
    chunks = _chunks(text)
    if loop == 0 and len(chunks) == 1:
        return [[st.node(element, "tts", {"text": chunks[0], **data, "endless_playback": True})]]
    repetitions = _capped_loop(element, a, st, loop)
    return [
        [st.node(element, "tts", {"text": chunk, **data}) for chunk in chunks] for _ in range(repetitions)
    ]


def _spoken_text(element: etree._Element, st: State) -> str:
    """The text to speak, whitespace collapsed; SSML markup is dropped with a warning."""
    if len(element) == 0:
        raw = element.text or ""
    else:
        if any(isinstance(child.tag, str) for child in element):
            st.warn(
                element,
                "kazoo-unsupported",
                "SSML is not available on Kazoo's TTS: its text is spoken plainly",
            )
        raw = "".join(str(t) for t in element.itertext())
    text = " ".join(raw.split())
    if len(text) > MAX_SAY_CHARS:
        raise st.fatal(
            element,
            "say-length",
            f"<Say> text is {len(text)} characters; at most {MAX_SAY_CHARS} are allowed",
            Reason.LIMIT_EXCEEDED,
        )
    return text


def _tts_data(element: etree._Element, a: attrs.Values, st: State) -> dict[str, object]:
    voice, implied_language = _voice(element, a.get("voice"), st)
    data: dict[str, object] = {
        "voice": voice,
        "language": _language(element, a.get("language"), st, implied_language),
    }
    engine = a.get("engine")
    if engine is not None:
        if engine in TTS_ENGINES:
            data["engine"] = engine
        else:
            st.warn(
                element, "kazoo-unsupported", f"engine={engine!r} must be one of {', '.join(TTS_ENGINES)}"
            )
    return data


def _capped_loop(element: etree._Element, a: attrs.Values, st: State, loop: int) -> int:
    """Repetitions of a ``<Say>`` whose each repetition is a node: at most :data:`MAX_SAY_LOOP`.

    ``loop="0"`` (endless) is one endless node, except for text longer than one node, which Kazoo
    cannot repeat by itself.
    """
    if 0 < loop <= MAX_SAY_LOOP:
        return loop
    if loop == 0:
        why = f"text longer than {TTS_NODE_CHARS} characters is several tts nodes, which Kazoo cannot loop"
    else:
        why = "each repetition is a callflow node (Twilio allows up to 1000)"
    st.warn(element, "say-loop", f"loop={a.get('loop')!r}: <Say> is repeated {MAX_SAY_LOOP} times, as {why}")
    return MAX_SAY_LOOP


def play(element: etree._Element, st: State, *, in_gather: bool = False, barge_in: bool = True) -> list[Node]:
    a = attrs.read(element, st)
    nodes: list[Node] = []
    digits = a.get("digits")
    if digits is not None:
        if _DIGITS.match(digits):
            nodes.append(st.node(element, "send_dtmf", {"digits": digits, "duration_ms": DTMF_TONE_MS}))
        else:
            st.warn(
                element, "play-digits", f"digits={digits!r} may hold only 0-9, *, #, A-D, w and W; ignored"
            )
    reference = (element.text or "").strip()
    if not reference:
        if not nodes:
            st.error(
                element,
                attrs.SCHEMA_WARNING,
                "<Play> needs a media URL (or a digits attribute)",
                Reason.SCHEMA_ERROR,
            )
        return nodes
    url = st.url(element, reference, "<Play> URL")
    loop = attrs.integer(element, a, st, "loop", 1, "13410", minimum=0, maximum=MAX_PLAY_LOOP)
    data: dict[str, object] = {"id": url, "terminators": list(DTMF_KEYS) if in_gather and barge_in else []}
    if loop == 0:
        data["endless_playback"] = True
    elif loop > 1:
        data["loop_count"] = loop
    nodes.append(st.node(element, "play", data))
    return nodes


def pause(
    element: etree._Element, st: State, *, in_gather: bool = False, barge_in: bool = True
) -> list[Node]:
    a = attrs.read(element, st)
    length = attrs.integer(element, a, st, "length", 1, "13910", minimum=1, maximum=86400)
    if in_gather:
        terminators = list(DTMF_KEYS) if barge_in else []
        return [
            st.node(element, "play", {"id": f"silence_stream://{length * 1000}", "terminators": terminators})
        ]
    return [st.node(element, "sleep", {"duration": length, "unit": "s"})]


def say_step(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    return Step(say(element, st))


def play_step(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    return Step(play(element, st))


def pause_step(element: etree._Element, st: State, rest: list[etree._Element]) -> Step:
    return Step(pause(element, st))
