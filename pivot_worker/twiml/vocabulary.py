"""The TwiML voice vocabulary we recognise: which attributes each element may carry.

An attribute outside these sets is reported as a warning (Twilio's 12200), never a failure,
exactly as Twilio treats unknown attributes. Attribute names are case-sensitive, as on Twilio.
Names come from Twilio's published TwiML vocabulary plus Kazoo's own extensions (``engine`` on
Say, ``recordingUrl`` on Record, ``strategy`` on Dial, ``prompt`` on Reject, ``<Set>``,
``<Variable>``, ``<User>``, ``<Device>``).
"""

from __future__ import annotations

_STATUS_CALLBACK = frozenset({"statusCallback", "statusCallbackMethod", "statusCallbackEvent"})
_AMD = frozenset(
    {
        "machineDetection",
        "amdStatusCallback",
        "amdStatusCallbackMethod",
        "machineDetectionTimeout",
        "machineDetectionSpeechThreshold",
        "machineDetectionSpeechEndThreshold",
        "machineDetectionSilenceTimeout",
    }
)

ATTRIBUTES: dict[str, frozenset[str]] = {
    "Response": frozenset(),
    "Say": frozenset({"voice", "loop", "language", "engine"}),
    "Play": frozenset({"loop", "digits"}),
    "Pause": frozenset({"length"}),
    "Gather": frozenset(
        {
            "input",
            "action",
            "method",
            "timeout",
            "speechTimeout",
            "maxSpeechTime",
            "profanityFilter",
            "finishOnKey",
            "numDigits",
            "partialResultCallback",
            "partialResultCallbackMethod",
            "language",
            "hints",
            "bargeIn",
            "debug",
            "actionOnEmptyResult",
            "speechModel",
            "enhanced",
        }
    ),
    "Record": frozenset(
        {
            "action",
            "method",
            "timeout",
            "finishOnKey",
            "maxLength",
            "playBeep",
            "trim",
            "recordingStatusCallback",
            "recordingStatusCallbackMethod",
            "recordingStatusCallbackEvent",
            "transcribe",
            "transcribeCallback",
            "recordingConfigurationId",
            "recordingUrl",
        }
    ),
    "Dial": frozenset(
        {
            "action",
            "method",
            "timeout",
            "hangupOnStar",
            "timeLimit",
            "callerId",
            "record",
            "trim",
            "recordingStatusCallback",
            "recordingConfigurationId",
            "recordingStatusCallbackMethod",
            "recordingStatusCallbackEvent",
            "answerOnBridge",
            "ringTone",
            "recordingTrack",
            "sequential",
            "referUrl",
            "referMethod",
            "events",
            "passports",
            "hangupOn",
            "strategy",
            "continueOnFail",
        }
    ),
    "Number": frozenset({"sendDigits", "url", "method", "byoc"}) | _STATUS_CALLBACK | _AMD,
    "User": frozenset(),
    "Device": frozenset(),
    "Conference": frozenset(
        {
            "muted",
            "beep",
            "startConferenceOnEnter",
            "endConferenceOnExit",
            "waitUrl",
            "waitMethod",
            "maxParticipants",
            "record",
            "recordingConfigurationId",
            "region",
            "coach",
            "trim",
            "eventCallbackUrl",
            "jitterBufferSize",
            "participantLabel",
            "recordingStatusCallback",
            "recordingStatusCallbackMethod",
            "recordingStatusCallbackEvent",
        }
    )
    | _STATUS_CALLBACK,
    "Redirect": frozenset({"method"}),
    "Hangup": frozenset(),
    "Reject": frozenset({"reason", "prompt"}),
    "Set": frozenset(),
    "Variable": frozenset({"key", "value"}),
    "Enqueue": frozenset({"action", "maxQueueSize", "method", "waitUrl", "waitUrlMethod", "workflowSid"}),
}

SSML_ELEMENTS = frozenset(
    {"break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w", "amazon:effect"}
)

UNSUPPORTED_VERBS: dict[str, str] = {
    "Leave": "Kazoo's callflow engine has no module that leaves a queue from a document",
    "Refer": "Kazoo's callflow modules cannot send a SIP REFER ('transfer' is a dialplan transfer)",
    "Connect": "media streams, rooms and AI connectors have no Kazoo callflow module",
    "Start": "media streams, recordings and transcriptions started mid-call have no Kazoo callflow module",
    "Stop": "media streams, recordings and transcriptions started mid-call have no Kazoo callflow module",
    "Pay": "payment capture has no Kazoo callflow module",
    "Sms": "messages cannot be sent from a Kazoo callflow",
    "Message": "messages cannot be sent from a Kazoo callflow",
    "Echo": "Kazoo's callflow engine has no echo-test module",
    "Prompt": "<Prompt> belongs inside <Pay>, which Kazoo cannot run",
}
"""Real TwiML verbs that Kazoo's callflow engine cannot run, with the reason we report."""

UNSUPPORTED_DIAL_NOUNS: dict[str, str] = {
    "Sip": "Kazoo's dial modules take a number (resources) or a Kazoo user or device id (user, "
    "device, ring_group), never a SIP URI; create a Kazoo device whose SIP settings route to that "
    "URI (invite format 'route') and dial it with <Device>",
    "Client": "Twilio clients do not exist on Kazoo; dial the person with <User> or the phone with <Device>",
    "Queue": "dequeuing a caller has no Kazoo callflow module (ACDc queues hand callers out themselves)",
    "Sim": "Twilio SIMs do not exist on Kazoo",
    "Application": "Twilio applications do not exist on Kazoo",
    "WhatsApp": "WhatsApp calling has no Kazoo callflow module",
}
