"""TwiML to Kazoo callflow translation, stateless across requests.

The worker uses these names: :func:`open_continuation` strips and verifies the state token from an
incoming ``Voice-URI``; :func:`plan_followup` turns it into request params (or a document to run
without fetching); :func:`translate_twiml` turns a document into a validated callflow, given a
:class:`TwimlContext`. See docs/twiml.md for the verb-by-verb mapping and its deviations.
"""

from __future__ import annotations

from .after_dial import after_dial_disarmed, is_after_dial, open_after_dial
from .context import Translation, TwimlContext
from .continuation import TOKEN_PARAM, Continuation, open_continuation
from .followup import Followup, call_aliases, plan_followup
from .memo import TranslationMemo
from .translate import translate_twiml

__all__ = [
    "TOKEN_PARAM",
    "Continuation",
    "Followup",
    "Translation",
    "TranslationMemo",
    "TwimlContext",
    "after_dial_disarmed",
    "call_aliases",
    "is_after_dial",
    "open_after_dial",
    "open_continuation",
    "plan_followup",
    "translate_twiml",
]
