"""A corpus of TwiML voice documents built with Twilio's own helper library (``twilio.twiml``).

Nothing here is hand-written XML. :func:`builders` reads, with :func:`inspect.signature`, every
method of ``VoiceResponse`` (and of each element class it nests) that nests an element: its
parameters are the element's attributes, except those the element's constructor takes, which are
its text. A ``twilio`` release that adds a verb, a noun or an attribute therefore adds it to the
corpus by itself. Each attribute gets a representative, valid value that differs from Twilio's
documented default (so that removing it must change the meaning); :data:`VALUES` holds the chosen
ones. Elsewhere a value is guessed from the attribute's name; :func:`unchosen_attributes` lists
the guessed ones of the elements Kazoo runs, and a test demands that list be empty.

Documents:

* ``<verb>``: each verb with every attribute set (and its text, if any);
* ``<verb>-<child>``: each noun or nested element with every attribute set, inside a minimal
  parent, with its own nested elements (one of each, every attribute set; SSML markup is not
  expanded further, each SSML element has its own ``say-<element>`` document);
* ``<verb>[-<noun>]~<attribute>=<value>``: for the verbs and nouns Kazoo's callflow engine runs
  (:data:`ISOLATED`), one document per attribute and per representative value, so that one
  attribute the translator refuses does not hide what it does with the others. The document
  also sets the attribute it qualifies (:data:`PRINCIPALS`) and nests what it acts on
  (:data:`NEEDS_CHILDREN`);
* ``docs-<name>``: examples from Twilio's TwiML documentation.

Every document is pretty-printed by lxml, one element per line, so that line numbers mean
something.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import re
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lxml import etree
from twilio.twiml import TwiML, lower_camel  # type: ignore[import-untyped]
from twilio.twiml.voice_response import VoiceResponse  # type: ignore[import-untyped]

HEX = "0123456789abcdef0123456789abcdef"
ACDC_QUEUE_ID = "9f0c1d2e3b4a59687f8e9dacbbcadef0"
"""A Kazoo ACDc queue id: 32 hex digits, which is also a valid Twilio queue name."""

DOCUMENT_URL = "https://ivr.example.com/app/start?tenant=7"
"""The URL the corpus documents are served from (``support.DOC_URL``; relative URLs resolve here)."""


@dataclass(frozen=True, slots=True)
class CorpusDocument:
    """One TwiML document of the corpus: its id, its XML, and where it comes from."""

    doc_id: str
    xml: bytes
    origin: str
    """``"helper"`` (generated from the helper library's signatures) or ``"twilio-docs"``."""


@dataclass(frozen=True, slots=True)
class Builder:
    """A helper-library method that nests one element, read from its signature."""

    name: str
    function: Callable[..., Any]
    element: type[Any]
    tag: str
    text_params: tuple[str, ...]
    attribute_params: tuple[str, ...]

    def xml_name(self, param: str) -> str:
        return attribute_name(param)


def attribute_name(param: str) -> str:
    """The XML attribute the helper library writes for keyword ``param`` (``from_`` -> ``from``)."""
    return str(lower_camel(TwiML.MAP.get(param, param)))


# -- introspection --------------------------------------------------------------------------------

MISPLACED_AT_TOP = {
    "queue": "<Queue> is a noun of <Dial>, never a verb of <Response>",
    "prompt": "<Prompt> is a child of <Pay>, never a verb of <Response>",
}
"""``VoiceResponse`` methods that nest an element Twilio rejects directly under ``<Response>``."""


def _nesting_methods(owner: type[Any]) -> Iterator[tuple[str, Callable[..., Any]]]:
    for name, member in vars(owner).items():
        if inspect.isfunction(member) and not name.startswith("_"):
            yield name, member


def _parameters(function: Callable[..., Any]) -> list[inspect.Parameter]:
    params = list(inspect.signature(function).parameters.values())[1:]  # drop self
    return [p for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]


_BUILDERS: dict[str, tuple[Builder, ...]] = {}


def builders(owner: type[Any]) -> tuple[Builder, ...]:
    """Every method of ``owner`` that nests an element, with that element's text and attributes."""
    key = f"{owner.__module__}.{owner.__qualname__}"
    if key not in _BUILDERS:
        _BUILDERS[key] = _read_builders(owner)
    return _BUILDERS[key]


def _read_builders(owner: type[Any]) -> tuple[Builder, ...]:
    found: list[Builder] = []
    for name, function in _nesting_methods(owner):
        if owner is VoiceResponse and name in MISPLACED_AT_TOP:
            continue
        made = _element_made_by(function)
        element = type(made)
        text_params = tuple(p.name for p in _parameters(element.__init__))
        attribute_params = tuple(p.name for p in _parameters(function) if p.name not in text_params)
        found.append(Builder(name, function, element, str(made.name), text_params, attribute_params))
    return tuple(found)


def _element_made_by(function: Callable[..., Any]) -> Any:
    """Call the nesting method on a stand-in parent that hands back what it is asked to nest."""
    required = {p.name: "x" for p in _parameters(function) if p.default is p.empty}
    return function(types.SimpleNamespace(nest=lambda element: element), **required)


def builder(owner: type[Any], name: str) -> Builder:
    for found in builders(owner):
        if found.name == name:
            return found
    raise KeyError(f"{owner.__name__} has no nesting method {name!r}")


def builder_path(path: tuple[str, ...]) -> list[Builder]:
    """The builders along ``path`` (method names from ``VoiceResponse`` down)."""
    owner: type[Any] = VoiceResponse
    steps = []
    for name in path:
        step = builder(owner, name)
        steps.append(step)
        owner = step.element
    return steps


# -- values ---------------------------------------------------------------------------------------

URL = "https://ivr.example.com/app/"
MEDIA = "https://media.example.com/"

TEXT: dict[tuple[str, str], str] = {
    ("Say", "message"): "Thanks for calling Example Corp.",
    ("Play", "url"): MEDIA + "welcome.mp3",
    ("Dial", "number"): "+14155550100",
    ("Number", "phone_number"): "+14155550101",
    ("Conference", "name"): "Team standup",
    ("Queue", "name"): "support",
    ("Enqueue", "name"): ACDC_QUEUE_ID,
    ("Redirect", "url"): URL + "next",
    ("Sms", "message"): "Your order has shipped.",
    ("Client", "identity"): "alice",
    ("Identity", "client_identity"): "alice",
    ("Sip", "sip_url"): "sip:alice@sip.example.com",
    ("Uri", "sip_url"): "sip:alice@sip.example.com",
    ("Sim", "sim_sid"): "DE" + HEX,
    ("Application", "application_sid"): "AP" + HEX,
    ("ApplicationSid", "sid"): "AP" + HEX,
    ("WhatsApp", "phone_number"): "+14155550102",
    ("Task", "body"): '{"account_number": "12345"}',
    ("Room", "name"): "DailyStandup",
    ("Autopilot", "name"): "UA" + HEX,
    ("phoneme", "words"): "tomato",
    ("say-as", "words"): "12345",
    ("sub", "words"): "W3C",
}
"""Element text, by (tag, constructor parameter). SSML elements otherwise speak :data:`WORDS`."""

WORDS = "Your call matters to us"

TEXT_REPLACED_BY_CHILD = {("Client", "identity"), ("Sip", "uri"), ("Application", "application_sid")}
"""An element whose nested element (second item) takes the place of its text when present."""

EXCLUSIVE_WITH_TEXT = {("Play", "digits")}
"""``<Play digits>`` plays tones instead of a URL: the element then has no text, and the attribute
is left out of documents that set every attribute (its own document tests it)."""

VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    # <Say>: defaults voice=man, loop=1, language=en-US
    ("Say", "voice"): ("woman", "Polly.Joanna", "Google.en-US-Neural2-C"),
    ("Say", "loop"): ("3", "0"),
    ("Say", "language"): ("fr-FR",),
    # <Play>: loop=1
    ("Play", "loop"): ("2", "0"),
    ("Play", "digits"): ("wwww3",),
    # <Pause>: length=1
    ("Pause", "length"): ("3",),
    # <Gather>: input=dtmf, method=POST, timeout=5, finishOnKey=#, numDigits unlimited,
    # speechTimeout=timeout, maxSpeechTime=60, profanityFilter=true, language=en-US,
    # bargeIn=true, debug=false, actionOnEmptyResult=false, speechModel=default, enhanced=false
    ("Gather", "input"): ("speech", "dtmf speech"),
    ("Gather", "action"): (URL + "choice",),
    ("Gather", "method"): ("GET",),
    ("Gather", "timeout"): ("7",),
    ("Gather", "speechTimeout"): ("auto", "3"),
    ("Gather", "maxSpeechTime"): ("20",),
    ("Gather", "profanityFilter"): ("false",),
    ("Gather", "finishOnKey"): ("*", ""),
    ("Gather", "numDigits"): ("4",),
    ("Gather", "partialResultCallback"): (URL + "partial",),
    ("Gather", "partialResultCallbackMethod"): ("GET",),
    ("Gather", "language"): ("fr-FR",),
    ("Gather", "hints"): ("billing, support, sales",),
    ("Gather", "bargeIn"): ("false",),
    ("Gather", "debug"): ("true",),
    ("Gather", "actionOnEmptyResult"): ("true",),
    ("Gather", "speechModel"): ("phone_call",),
    ("Gather", "enhanced"): ("true",),
    # <Record>: method=POST, timeout=5, finishOnKey=1234567890*#, maxLength=3600, playBeep=true,
    # trim=trim-silence, recordingStatusCallbackEvent=completed, transcribe=false
    ("Record", "action"): (URL + "recorded",),
    ("Record", "method"): ("GET",),
    ("Record", "timeout"): ("10",),
    ("Record", "finishOnKey"): ("#", ""),
    ("Record", "maxLength"): ("30",),
    ("Record", "playBeep"): ("false",),
    ("Record", "trim"): ("do-not-trim",),
    ("Record", "recordingStatusCallbackEvent"): ("in-progress completed absent",),
    ("Record", "transcribe"): ("true",),
    ("Record", "transcribeCallback"): (URL + "transcribed",),
    # <Dial>: method=POST, timeout=30, hangupOnStar=false, timeLimit=14400, record=do-not-record,
    # trim=do-not-trim, answerOnBridge=false, ringTone=the caller's country, recordingTrack=both,
    # sequential=false
    ("Dial", "action"): (URL + "dialled",),
    ("Dial", "method"): ("GET",),
    ("Dial", "timeout"): ("20",),
    ("Dial", "hangupOnStar"): ("true",),
    ("Dial", "timeLimit"): ("600",),
    ("Dial", "callerId"): ("+14155550199",),
    ("Dial", "record"): ("record-from-answer", "record-from-ringing-dual"),
    ("Dial", "trim"): ("trim-silence",),
    ("Dial", "answerOnBridge"): ("true",),
    ("Dial", "ringTone"): ("de",),
    ("Dial", "recordingTrack"): ("inbound",),
    ("Dial", "sequential"): ("true",),
    ("Dial", "referUrl"): (URL + "refer",),
    ("Dial", "events"): ("call-progress-event",),
    ("Dial", "passports"): ("ZXlKaGJHY2lPaUpGVXpJMU5pSjk",),
    # <Number>: method=POST; machine detection off, timeout 30, thresholds 2400/1200/5000 ms
    ("Number", "sendDigits"): ("wwww1928",),
    ("Number", "url"): (URL + "whisper",),
    ("Number", "byoc"): ("BY" + HEX,),
    ("Number", "machineDetection"): ("Enable", "DetectMessageEnd"),
    ("Number", "machineDetectionTimeout"): ("15",),
    ("Number", "machineDetectionSpeechThreshold"): ("3000",),
    ("Number", "machineDetectionSpeechEndThreshold"): ("1500",),
    ("Number", "machineDetectionSilenceTimeout"): ("3000",),
    # <Conference>: muted=false, beep=true, startConferenceOnEnter=true, endConferenceOnExit=false,
    # waitUrl=Twilio's hold music, waitMethod=POST, maxParticipants=250, record=do-not-record,
    # trim=trim-silence, jitterBufferSize=medium
    ("Conference", "muted"): ("true",),
    ("Conference", "beep"): ("false", "onEnter"),
    ("Conference", "startConferenceOnEnter"): ("false",),
    ("Conference", "endConferenceOnExit"): ("true",),
    ("Conference", "waitUrl"): (MEDIA + "hold-music.xml",),
    ("Conference", "maxParticipants"): ("10",),
    ("Conference", "record"): ("record-from-start",),
    ("Conference", "region"): ("ie1",),
    ("Conference", "coach"): ("CA" + HEX,),
    ("Conference", "trim"): ("do-not-trim",),
    ("Conference", "eventCallbackUrl"): (URL + "conference-events",),
    ("Conference", "jitterBufferSize"): ("large",),
    ("Conference", "participantLabel"): ("customer",),
    ("Conference", "statusCallbackEvent"): ("start end join leave mute hold",),
    # <Redirect>: method=POST. <Reject>: reason=rejected.
    ("Redirect", "method"): ("GET",),
    ("Reject", "reason"): ("busy",),
    # <Enqueue>: method=POST, waitUrl=Twilio's hold music, waitUrlMethod=POST, maxQueueSize=100
    ("Enqueue", "action"): (URL + "dequeued",),
    ("Enqueue", "maxQueueSize"): ("10",),
    ("Enqueue", "waitUrl"): (MEDIA + "queue-music.xml",),
    ("Enqueue", "workflowSid"): ("WW" + HEX,),
    ("Task", "priority"): ("5",),
    ("Task", "timeout"): ("120",),
    # Any element
    ("*", "method"): ("GET",),
    ("*", "waitMethod"): ("GET",),
    ("*", "waitUrlMethod"): ("GET",),
    ("*", "referMethod"): ("GET",),
    ("*", "statusCallback"): (URL + "status",),
    ("*", "statusCallbackMethod"): ("GET",),
    ("*", "statusCallbackEvent"): ("initiated ringing answered completed",),
    ("*", "recordingStatusCallback"): (URL + "recording-status",),
    ("*", "recordingStatusCallbackMethod"): ("GET",),
    ("*", "recordingStatusCallbackEvent"): ("in-progress completed",),
    ("*", "recordingConfigurationId"): ("RC" + HEX,),
    ("*", "amdStatusCallback"): (URL + "amd",),
    ("*", "amdStatusCallbackMethod"): ("GET",),
    ("*", "url"): (URL + "whisper",),
    ("*", "name"): ("customer_id",),
    ("*", "value"): ("12345",),
    ("*", "username"): ("alice",),
    ("*", "password"): ("s3cret-pass",),
    ("*", "language"): ("fr-FR",),
    ("*", "track"): ("inbound_track",),
    ("*", "action"): (URL + "next",),
    # Nouns and verbs Kazoo cannot run: valid values, though the element is refused as a whole
    ("*", "machineDetection"): ("Enable",),
    ("*", "machineDetectionTimeout"): ("15",),
    ("*", "machineDetectionSpeechThreshold"): ("3000",),
    ("*", "machineDetectionSpeechEndThreshold"): ("1500",),
    ("*", "machineDetectionSilenceTimeout"): ("3000",),
    ("Uri", "priority"): ("1",),
    ("Uri", "weight"): ("10",),
    ("Queue", "reservationSid"): ("WR" + HEX,),
    ("Queue", "postWorkActivitySid"): ("WA" + HEX,),
    ("Application", "customerId"): ("customer-42",),
    ("Application", "copyParentTo"): ("true",),
    ("Sms", "to"): ("+14155550103",),
    ("Sms", "from"): ("+14155550104",),
    ("Room", "participantIdentity"): ("alice",),
    ("*", "connectorName"): ("connector-1",),
    ("Stream", "url"): ("wss://stream.example.com/audio",),
    ("Stream", "audioFormat"): ("audio/x-mulaw",),
    ("Stream", "sampleRate"): ("8000",),
    ("*", "sentimentAnalysis"): ("true",),
    ("Transcription", "statusCallbackUrl"): (URL + "transcription",),
    ("Transcription", "inboundTrackLabel"): ("customer",),
    ("Transcription", "outboundTrackLabel"): ("agent",),
    ("Transcription", "partialResults"): ("true",),
    ("Transcription", "languageCode"): ("fr-FR",),
    ("Transcription", "transcriptionEngine"): ("google",),
    ("Transcription", "profanityFilter"): ("false",),
    ("Transcription", "speechModel"): ("telephony",),
    ("Transcription", "hints"): ("billing, support",),
    ("Transcription", "enableAutomaticPunctuation"): ("false",),
    ("Transcription", "intelligenceService"): ("GA" + HEX,),
    ("Recording", "trim"): ("do-not-trim",),
    ("Recording", "track"): ("inbound",),
    ("Recording", "channels"): ("dual",),
    ("Pay", "input"): ("dtmf",),
    ("Pay", "bankAccountType"): ("consumer-savings",),
    ("Pay", "timeout"): ("10",),
    ("Pay", "maxAttempts"): ("3",),
    ("Pay", "securityCode"): ("false",),
    ("Pay", "postalCode"): ("false",),
    ("Pay", "minPostalCodeLength"): ("5",),
    ("Pay", "paymentConnector"): ("Default",),
    ("Pay", "paymentMethod"): ("ach-debit",),
    ("Pay", "tokenType"): ("reusable",),
    ("Pay", "chargeAmount"): ("10.00",),
    ("Pay", "currency"): ("eur",),
    ("Pay", "description"): ("Order 1234",),
    ("Pay", "validCardTypes"): ("visa mastercard",),
    ("Prompt", "for"): ("payment-card-number",),
    ("Prompt", "errorType"): ("timeout",),
    ("Prompt", "cardType"): ("visa",),
    ("Prompt", "attempt"): ("1",),
    ("Prompt", "requireMatchingInputs"): ("true",),
    ("Conversation", "serviceInstanceSid"): ("IS" + HEX,),
    ("Conversation", "inboundAutocreation"): ("true",),
    ("Conversation", "routingAssignmentTimeout"): ("30",),
    ("Conversation", "inboundTimeout"): ("60",),
    ("Conversation", "record"): ("record-from-answer",),
    ("Conversation", "trim"): ("do-not-trim",),
    ("ConversationRelay", "url"): ("wss://relay.example.com/voice",),
    ("ConversationRelay", "welcomeGreeting"): ("Hello! How can I help?",),
    ("*", "ttsProvider"): ("ElevenLabs",),
    ("*", "transcriptionProvider"): ("Deepgram",),
    ("ConversationRelay", "voice"): ("UgBBYS2sOqTuMpoF3BR0",),
    ("Language", "voice"): ("UgBBYS2sOqTuMpoF3BR0",),
    ("Language", "code"): ("fr-FR",),
    ("*", "speechModel"): ("nova-2-general",),
    ("ConversationRelay", "interruptible"): ("speech",),
    ("ConversationRelay", "welcomeGreetingInterruptible"): ("none",),
    ("ConversationRelay", "intelligenceService"): ("GA" + HEX,),
    # SSML
    ("break", "strength"): ("strong",),
    ("break", "time"): ("2s",),
    ("emphasis", "level"): ("strong",),
    ("lang", "xml:lang"): ("fr-FR",),
    ("phoneme", "alphabet"): ("ipa",),
    ("phoneme", "ph"): ("t\u0259\u02c8m\u0251\u02d0to\u028a",),
    ("prosody", "volume"): ("loud",),
    ("prosody", "rate"): ("slow",),
    ("prosody", "pitch"): ("high",),
    ("say-as", "interpret-as"): ("telephone",),
    ("say-as", "format"): ("ymd",),
    ("sub", "alias"): ("World Wide Web Consortium",),
    ("w", "role"): ("amazon:VBD",),
}
"""Representative valid values, by (tag or ``*``, XML attribute): the first is used where one
value is needed, every one gets a document of its own for :data:`ISOLATED` elements. Each differs
from the default the comment above it quotes from Twilio's TwiML reference."""

ISOLATED: tuple[tuple[str, ...], ...] = (
    ("say",),
    ("play",),
    ("pause",),
    ("gather",),
    ("record",),
    ("dial",),
    ("dial", "number"),
    ("dial", "conference"),
    ("redirect",),
    ("reject",),
    ("enqueue",),
)
"""Verbs and nouns Kazoo's callflow engine runs: one document per attribute and value."""


def _two_numbers(dial: Any) -> None:
    dial.number("+14155550101")
    dial.number("+14155550102")


def _a_prompt(gather: Any) -> None:
    gather.say(TEXT["Say", "message"])


NEEDS_CHILDREN: dict[tuple[str, str], Callable[[Any], None]] = {
    ("Dial", "sequential"): _two_numbers,
    ("Gather", "bargeIn"): _a_prompt,
}
"""Attributes about an element's nested elements (the order of a ``<Dial>``'s nouns, whether a
key interrupts a ``<Gather>``'s prompts): their own document nests what they act on."""

PRINCIPALS: dict[tuple[str, str], str] = {
    **{
        ("Gather", speech): "input"
        for speech in (
            "speechTimeout",
            "maxSpeechTime",
            "profanityFilter",
            "partialResultCallback",
            "language",
            "hints",
            "speechModel",
            "enhanced",
        )
    },
    ("Gather", "partialResultCallbackMethod"): "partialResultCallback",
    ("Record", "recordingStatusCallbackMethod"): "recordingStatusCallback",
    ("Record", "recordingStatusCallbackEvent"): "recordingStatusCallback",
    ("Dial", "method"): "action",
    ("Dial", "trim"): "record",
    ("Dial", "recordingTrack"): "record",
    ("Dial", "recordingStatusCallback"): "record",
    ("Dial", "recordingStatusCallbackMethod"): "recordingStatusCallback",
    ("Dial", "recordingStatusCallbackEvent"): "recordingStatusCallback",
    ("Dial", "recordingConfigurationId"): "record",
    ("Dial", "referMethod"): "referUrl",
    ("Number", "method"): "url",
    ("Number", "statusCallbackMethod"): "statusCallback",
    ("Number", "statusCallbackEvent"): "statusCallback",
    ("Number", "amdStatusCallback"): "machineDetection",
    ("Number", "amdStatusCallbackMethod"): "amdStatusCallback",
    **{
        ("Number", amd): "machineDetection"
        for amd in (
            "machineDetectionTimeout",
            "machineDetectionSpeechThreshold",
            "machineDetectionSpeechEndThreshold",
            "machineDetectionSilenceTimeout",
        )
    },
    ("Conference", "waitMethod"): "waitUrl",
    ("Conference", "trim"): "record",
    ("Conference", "recordingConfigurationId"): "record",
    ("Conference", "recordingStatusCallback"): "record",
    ("Conference", "recordingStatusCallbackMethod"): "recordingStatusCallback",
    ("Conference", "recordingStatusCallbackEvent"): "recordingStatusCallback",
    ("Conference", "statusCallbackMethod"): "statusCallback",
    ("Conference", "statusCallbackEvent"): "statusCallback",
    ("Enqueue", "method"): "action",
    ("Enqueue", "waitUrlMethod"): "waitUrl",
}
"""Attributes that only qualify another one (per Twilio's TwiML reference): without it, or when it
is itself reported as ignored, the qualifier means nothing. ``Gather``'s speech settings need
``input`` to include ``speech`` (default ``dtmf``); a callback's method needs its URL; recording
settings need ``record``; machine-detection settings need ``machineDetection``."""

_GUESSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"method$", re.IGNORECASE), "GET"),
    (re.compile(r"(url|callback)$", re.IGNORECASE), URL + "callback"),
    (re.compile(r"sid$", re.IGNORECASE), "XX" + HEX),
    (re.compile(r"(timeout|time|length|threshold|attempts|size|priority|weight)$", re.IGNORECASE), "5"),
    (re.compile(r"(language|code)$", re.IGNORECASE), "fr-FR"),
    (re.compile(r"events?$", re.IGNORECASE), "completed"),
)
"""Values by the shape of a name, for attributes of elements outside :data:`ISOLATED` that have no
chosen value (a new attribute in a newer ``twilio``, or a setting of an AI connector)."""


def _guess(name: str) -> str:
    for pattern, value in _GUESSES:
        if pattern.search(name):
            return value
    return "true"


def attribute_values(tag: str, name: str) -> tuple[str, ...]:
    """The representative values of attribute ``name`` on ``tag`` (a guess by name if none chosen)."""
    return VALUES.get((tag, name)) or VALUES.get(("*", name)) or (_guess(name),)


def is_chosen(tag: str, name: str) -> bool:
    return (tag, name) in VALUES or ("*", name) in VALUES


def text_value(tag: str, param: str) -> str:
    return TEXT.get((tag, param), WORDS)


# -- building -------------------------------------------------------------------------------------


def _ssml(step: Builder) -> bool:
    return step.element.__name__.startswith("Ssml")


def _nest(
    parent: Any, step: Builder, attributes: dict[str, str], *, with_text: bool, children: tuple[str, ...] = ()
) -> Any:
    """Nest ``step``'s element under ``parent`` with ``attributes`` (XML names) and its text."""
    kwargs: dict[str, Any] = {}
    by_xml = {step.xml_name(p): p for p in step.attribute_params}
    for name, value in attributes.items():
        kwargs[by_xml.get(name, name)] = value
    replaced = any((step.tag, child) in TEXT_REPLACED_BY_CHILD for child in children)
    exclusive = any((step.tag, name) in EXCLUSIVE_WITH_TEXT for name in attributes)
    for param in step.text_params:
        required = _is_required(step, param)
        if required or (with_text and not replaced and not exclusive):
            kwargs[param] = text_value(step.tag, param)
    return step.function(parent, **kwargs)


def _is_required(step: Builder, param: str) -> bool:
    return any(p.name == param and p.default is p.empty for p in _parameters(step.function))


def all_attributes(step: Builder) -> dict[str, str]:
    """Every attribute of ``step``'s element, each with its first representative value (but those
    that replace the element's text, which have documents of their own)."""
    names = [step.xml_name(p) for p in step.attribute_params]
    return {n: attribute_values(step.tag, n)[0] for n in names if (step.tag, n) not in EXCLUSIVE_WITH_TEXT}


def _expand(element: Any, depth: int) -> None:
    """Nest one of each element ``element`` can hold, every attribute set (no SSML, two levels)."""
    if depth >= 2:
        return
    for step in builders(type(element)):
        if _ssml(step) or type(element) is step.element:
            continue
        grandchildren = tuple(s.name for s in builders(step.element) if not _ssml(s))
        child = _nest(element, step, all_attributes(step), with_text=True, children=grandchildren)
        _expand(child, depth + 1)


def _parents(response: VoiceResponse, path: list[Builder]) -> Any:
    """Nest minimal parents along ``path`` (all but its last step); return the innermost."""
    parent: Any = response
    for step, following in itertools.pairwise(path):
        parent = _nest(parent, step, _parent_attributes(step, following.name), with_text=False)
    return parent


def _parent_attributes(step: Builder, child: str) -> dict[str, str]:
    if step.tag == "Enqueue" and child == "task":
        return {"workflowSid": attribute_values("Enqueue", "workflowSid")[0]}  # TaskRouter needs it
    return {}


def full_document(path: tuple[str, ...]) -> VoiceResponse:
    """The element at ``path`` with every attribute set, inside minimal parents.

    A verb alone has no nested elements (they have documents of their own); a nested element
    holds one of each element it can hold.
    """
    steps = builder_path(path)
    response = VoiceResponse()
    parent = _parents(response, steps)
    target = steps[-1]
    children = () if len(path) == 1 else tuple(s.name for s in builders(target.element) if not _ssml(s))
    element = _nest(parent, target, all_attributes(target), with_text=True, children=children)
    if len(path) > 1 and not _ssml(target):
        _expand(element, 0)
    return response


def single_attribute_document(path: tuple[str, ...], name: str, value: str) -> VoiceResponse:
    """The element at ``path`` with its text, attribute ``name``, and the attribute it qualifies."""
    steps = builder_path(path)
    response = VoiceResponse()
    parent = _parents(response, steps)
    target = steps[-1]
    attributes = {name: value}
    principal = PRINCIPALS.get((target.tag, name))
    while principal is not None and principal not in attributes:
        attributes[principal] = attribute_values(target.tag, principal)[0]
        principal = PRINCIPALS.get((target.tag, principal))
    needs_children = (target.tag, name) in NEEDS_CHILDREN
    element = _nest(parent, target, attributes, with_text=not needs_children)
    if needs_children:
        NEEDS_CHILDREN[target.tag, name](element)
    return response


def pretty(response: TwiML) -> bytes:
    """The helper library's XML, re-indented by lxml (one element per line; mixed content kept)."""
    root = etree.fromstring(response.to_xml().encode())
    xml: bytes = etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")
    return xml


def document_paths() -> list[tuple[str, ...]]:
    """Every verb, and every element a verb can hold (one level down)."""
    paths: list[tuple[str, ...]] = []
    for verb in builders(VoiceResponse):
        paths.append((verb.name,))
        paths.extend((verb.name, child.name) for child in builders(verb.element))
    return paths


def _slug(value: str) -> str:
    return re.sub(r"[\s,]+", "_", value) if value else "empty"


def generated_documents() -> list[CorpusDocument]:
    documents = [
        CorpusDocument("-".join(path), pretty(full_document(path)), "helper") for path in document_paths()
    ]
    for path in ISOLATED:
        target = builder_path(path)[-1]
        for param in target.attribute_params:
            name = target.xml_name(param)
            for value in attribute_values(target.tag, name):
                doc_id = f"{'-'.join(path)}~{name}={_slug(value)}"
                xml = pretty(single_attribute_document(path, name, value))
                documents.append(CorpusDocument(doc_id, xml, "helper"))
    return documents


def unchosen_attributes() -> list[str]:
    """``Tag.attribute`` of every attribute of an :data:`ISOLATED` element that has no chosen value."""
    missing = []
    for path in ISOLATED:
        target = builder_path(path)[-1]
        for param in target.attribute_params:
            name = target.xml_name(param)
            if not is_chosen(target.tag, name):
                missing.append(f"{target.tag}.{name}")
    return missing


# -- examples from Twilio's TwiML documentation ---------------------------------------------------


def _voicemail() -> VoiceResponse:
    response = VoiceResponse()
    response.say("Please leave a message at the beep. Press the star key when finished.")
    response.record(
        action="http://foo.edu/handleRecording.php", method="GET", max_length=20, finish_on_key="*"
    )
    response.say("I did not receive a recording")
    return response


def _dial_then_survey() -> VoiceResponse:
    response = VoiceResponse()
    response.dial("415-123-4567")
    response.say("Please stay on the line for a short survey about your call.")
    gather = response.gather(num_digits=1, action="/survey/answer")
    gather.say("On a scale of 1 to 5, how satisfied were you?")
    return response


def _menu_with_nested_prompts() -> VoiceResponse:
    response = VoiceResponse()
    gather = response.gather(action="/process_gather.php", method="GET", num_digits=1, timeout=10)
    gather.say("Welcome to Example Corp.")
    gather.play("https://api.twilio.com/cowbell.mp3")
    gather.pause(length=2)
    gather.say("Press 1 for sales, 2 for support.")
    response.say("We didn't receive any input. Goodbye!")
    return response


def _conference_moderator() -> VoiceResponse:
    response = VoiceResponse()
    dial = response.dial()
    dial.conference("My Conference Room", start_conference_on_enter=True, end_conference_on_exit=True)
    return response


def _conference_participant() -> VoiceResponse:
    response = VoiceResponse()
    dial = response.dial()
    dial.conference(
        "My Conference Room",
        start_conference_on_enter=False,
        wait_url="http://twimlets.com/holdmusic?Bucket=com.twilio.music.classical",
        muted=True,
        beep=False,
    )
    return response


def _redirect_loop() -> VoiceResponse:
    response = VoiceResponse()
    gather = response.gather(num_digits=1, action="/app/choice")
    gather.say("Press 1 for sales, or 2 for support.")
    response.say("Sorry, I didn't get that.")
    response.redirect("/app/start?tenant=7", method="POST")
    return response


def _speech_gather() -> VoiceResponse:
    response = VoiceResponse()
    gather = response.gather(input="speech", action="/completed", timeout=3, speech_timeout="auto")
    gather.say("Please tell us why you're calling")
    return response


def _dial_with_status() -> VoiceResponse:
    response = VoiceResponse()
    response.dial(
        "415-123-4567", action="/handleDialCallStatus", method="GET", caller_id="+15551112222", timeout=10
    )
    response.say("I am unreachable")
    return response


def _dial_simultaneous() -> VoiceResponse:
    response = VoiceResponse()
    dial = response.dial()
    dial.number("858-987-6543")
    dial.number("415-123-4567")
    dial.number("619-765-4321")
    return response


def _send_digits() -> VoiceResponse:
    response = VoiceResponse()
    response.dial().number("415-123-4567", send_digits="wwww1928")
    return response


def _polly_ssml() -> VoiceResponse:
    response = VoiceResponse()
    say = response.say("Hi", voice="Polly.Joanna")
    say.break_(strength="x-weak", time="100ms")
    say.emphasis("Words to emphasize", level="moderate")
    say.p("Words to speak")
    say.append("More words to speak")
    say.prosody("Words to speak", pitch="-10%", rate="85%", volume="-6dB")
    say.say_as("Words to speak", interpret_as="spell-out")
    return response


def _reject_busy() -> VoiceResponse:
    response = VoiceResponse()
    response.reject(reason="busy")
    return response


def _enqueue_support() -> VoiceResponse:
    response = VoiceResponse()
    response.enqueue("support", wait_url="wait-music.xml")
    return response


def _record_transcribe() -> VoiceResponse:
    response = VoiceResponse()
    response.record(transcribe=True, transcribe_callback="/handle_transcribe.php")
    return response


def _pause_then_say() -> VoiceResponse:
    response = VoiceResponse()
    response.pause(length=5)
    response.say("Hi there.")
    return response


def _dial_recorded() -> VoiceResponse:
    response = VoiceResponse()
    response.dial(
        "+15558675310", record="record-from-ringing-dual", recording_status_callback="www.myexample.com"
    )
    return response


EXAMPLES: dict[str, Callable[[], VoiceResponse]] = {
    "voicemail": _voicemail,
    "dial-then-survey": _dial_then_survey,
    "menu-nested-prompts": _menu_with_nested_prompts,
    "conference-moderator": _conference_moderator,
    "conference-participant": _conference_participant,
    "redirect-loop": _redirect_loop,
    "speech-gather": _speech_gather,
    "dial-status": _dial_with_status,
    "dial-simultaneous": _dial_simultaneous,
    "number-send-digits": _send_digits,
    "polly-ssml": _polly_ssml,
    "reject-busy": _reject_busy,
    "enqueue-support": _enqueue_support,
    "record-transcribe": _record_transcribe,
    "pause-then-say": _pause_then_say,
    "dial-recorded": _dial_recorded,
}
"""Examples from Twilio's TwiML reference pages (<Record>, <Dial>, <Gather>, <Conference>, ...)."""


def example_documents() -> list[CorpusDocument]:
    return [CorpusDocument(f"docs-{name}", pretty(make()), "twilio-docs") for name, make in EXAMPLES.items()]


@functools.cache
def corpus() -> tuple[CorpusDocument, ...]:
    """Every document of the corpus, in a stable order."""
    return (*generated_documents(), *example_documents())
