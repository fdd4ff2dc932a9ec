"""Bounds on what one TwiML document may ask for.

Every bound protects something concrete: the worker's CPU and memory, the size of the callflow
Kazoo has to carry in ``CHANNEL_PIVOT`` and in the call's KVS, and JSON nesting (a callflow chain
nests two JSON levels per node; Kazoo and our JSON encoder both cap nesting depth). A document that
exceeds one is refused with reason ``limit_exceeded`` and a located finding; nothing is truncated
silently.
"""

from __future__ import annotations

MAX_DOCUMENT_BYTES = 128 * 1024
"""Larger bodies are refused before parsing (the fetcher's own cap is normally lower)."""

MAX_ELEMENT_DEPTH = 12
"""``Response`` > ``Gather`` > ``Say`` > SSML: real documents stay far below this."""

MAX_VERBS = 100
"""Verbs and nouns counted over the whole document, nested ones included."""

MAX_FLOW_NODES = 60
"""Callflow nodes emitted for one document (a ``Say`` with ``loop="3"`` emits three); keeps a
chain within the 64 levels the flow validator (and Kazoo's own nesting) accept."""

MAX_SAY_CHARS = 4096
"""Characters of text in one ``Say`` after whitespace is collapsed (Twilio's own bound)."""

TTS_NODE_CHARS = 1000
"""Kazoo's ``callflows.tts`` caps ``text`` at 1000 characters: longer text is split over nodes."""

MAX_SAY_LOOP = 10
"""``Say loop`` repeats by chaining nodes; larger values are capped (``loop="0"`` plays endlessly)."""

MAX_PLAY_LOOP = 1000
"""Twilio's documented maximum for ``Play loop``."""

MAX_VARIABLES = 32
MAX_VARIABLE_KEY_CHARS = 64
MAX_VARIABLE_VALUE_CHARS = 512

MAX_TOKEN_CHARS = 4096
"""Encoded continuation token; bounds what a ``Gather`` can carry for its no-input path."""

MAX_URL_CHARS = 2048
"""Any URL the document names (action, Redirect, Play, recording storage)."""

MAX_FINDINGS = 50
"""Errors reported for one document; the rest are counted, not listed."""
