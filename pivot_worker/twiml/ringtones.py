"""Twilio's ``<Dial ringTone>`` country codes as FreeSWITCH tone streams.

Kazoo's ``resources`` and ``ring_group`` modules take a ``ringback`` (a tone or a media file) that
FreeSWITCH plays to the caller while the dialled party rings (``cf_resources`` passes it to
stepswitch's bridge, ``cf_ring_group`` to its own bridge; ecallmgr sets FreeSWITCH's ``ringback``
from it and passes ``tone_stream://`` through unchanged).

Twilio's country codes are exactly the sections of Asterisk's ``indications.conf``; cadences and
frequencies come from those sections' ``ring`` lines (ITU-T E.180). FreeSWITCH's tone syntax
``%(on_ms,off_ms,hz,hz...)`` mixes frequencies; an amplitude-modulated tone (``f1*f2``, and
Japan's 400 Hz + 15 Hz) is rendered as its two sidebands ``f1-f2`` and ``f1+f2``, as FreeSWITCH's
own ``in-ring`` and ``jp-ring`` do.
"""

from __future__ import annotations


def _tone(*segments: str) -> str:
    return "tone_stream://" + ";".join(f"%({segment})" for segment in segments)


_EUROPEAN = _tone("1000,4000,425")
_DOUBLE_RING = ("400,200", "400,2000")


def _double(frequencies: str) -> str:
    return _tone(*(f"{timing},{frequencies}" for timing in _DOUBLE_RING))


RINGBACK: dict[str, str] = {
    "at": _tone("1000,5000,420"),
    "au": _double("413,438"),
    "be": _tone("1000,3000,425"),
    "bg": _EUROPEAN,
    "br": _EUROPEAN,
    "ch": _EUROPEAN,
    "cl": _tone("1000,3000,400"),
    "cn": _tone("1000,4000,450"),
    "cz": _EUROPEAN,
    "de": _EUROPEAN,
    "dk": _EUROPEAN,
    "ee": _EUROPEAN,
    "es": _tone("1500,3000,425"),
    "fi": _EUROPEAN,
    "fr": _tone("1500,3500,440"),
    "gr": _EUROPEAN,
    "hu": _tone("1250,3750,425"),
    "il": _tone("1000,3000,414"),
    "in": _double("375,425"),
    "it": _EUROPEAN,
    "jp": _tone("1000,2000,385,415"),
    "lt": _EUROPEAN,
    "mx": _EUROPEAN,
    "my": _double("425"),
    "nl": _EUROPEAN,
    "no": _EUROPEAN,
    "nz": _double("400,450"),
    "ph": _tone("1000,4000,425,480"),
    "pl": _EUROPEAN,
    "pt": _tone("1000,5000,425"),
    "ru": _EUROPEAN,
    "se": _tone("1000,5000,425"),
    "sg": _double("401,449"),
    "th": _tone("1000,5000,420"),
    "tw": _tone("1000,2000,440,480"),
    "uk": _double("400,450"),
    "us": _tone("2000,4000,440,480"),
    "us-old": _tone("2000,4000,380,460"),
    "ve": _EUROPEAN,
    "za": _double("367,433"),
}
"""Twilio ``ringTone`` value -> ``ringback`` for ``resources`` / ``ring_group``."""
