"""Amazon Polly and Google voices, as Twilio names them: the gender and language each one implies.

Kazoo's TTS engines (``callflows.tts``: flite, google, ispeech, voicefabric) take a ``voice`` of
``male`` or ``female`` and a ``language``; they cannot select a provider voice by name. A
``<Say voice="Polly.Joanna">`` therefore speaks with the engine's voice of the same gender, in the
voice's own language unless the ``<Say>`` names one.

Sources: Twilio's table of text-to-speech voices (TwilioDevEd/api-snippets,
``voice/tts/voices-list.md``, April 2023: every ``Polly.*`` and ``Google.*`` voice with its gender
and locale), completed with Amazon Polly's voice list (``DescribeVoices``, 2023) for the Polly
voices Twilio added later. A voice outside these tables keeps its language (a Google voice name
starts with its locale) but has no known gender.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

F = "female"
M = "male"

# fmt: off
POLLY_VOICES: dict[str, tuple[str, str]] = {
    "aditi": (F, "en-in"), "adriano": (M, "it-it"), "amy": (F, "en-gb"), "andres": (M, "es-mx"),
    "aria": (F, "en-nz"), "arlet": (F, "ca-es"), "arthur": (M, "en-gb"), "astrid": (F, "sv-se"),
    "ayanda": (F, "en-za"), "bianca": (F, "it-it"), "brian": (M, "en-gb"), "burcu": (F, "tr-tr"),
    "camila": (F, "pt-br"), "carla": (F, "it-it"), "carmen": (F, "ro-ro"), "celine": (F, "fr-fr"),
    "chantal": (F, "fr-ca"), "conchita": (F, "es-es"), "cristiano": (M, "pt-pt"), "daniel": (M, "de-de"),
    "danielle": (F, "en-us"), "dora": (F, "is-is"), "elin": (F, "sv-se"), "emma": (F, "en-gb"),
    "enrique": (M, "es-es"), "ewa": (F, "pl-pl"), "filiz": (F, "tr-tr"), "gabrielle": (F, "fr-ca"),
    "geraint": (M, "en-gb-wls"), "giorgio": (M, "it-it"), "gregory": (M, "en-us"),
    "gwyneth": (F, "cy-gb"), "hala": (F, "ar-ae"), "hannah": (F, "de-at"), "hans": (M, "de-de"),
    "hiujin": (F, "yue-cn"), "ida": (F, "nb-no"), "ines": (F, "pt-pt"), "isabelle": (F, "fr-be"),
    "ivy": (F, "en-us"), "jacek": (M, "pl-pl"), "jan": (M, "pl-pl"), "joanna": (F, "en-us"),
    "joey": (M, "en-us"), "justin": (M, "en-us"), "kajal": (F, "en-in"), "karl": (M, "is-is"),
    "kazuha": (F, "ja-jp"), "kendra": (F, "en-us"), "kevin": (M, "en-us"), "kimberly": (F, "en-us"),
    "laura": (F, "nl-nl"), "lea": (F, "fr-fr"), "liam": (M, "fr-ca"), "lisa": (F, "nl-be"),
    "liv": (F, "nb-no"), "lotte": (F, "nl-nl"), "lucia": (F, "es-es"), "lupe": (F, "es-us"),
    "mads": (M, "da-dk"), "maja": (F, "pl-pl"), "marlene": (F, "de-de"), "mathieu": (M, "fr-fr"),
    "matthew": (M, "en-us"), "maxim": (M, "ru-ru"), "mia": (F, "es-mx"), "miguel": (M, "es-us)"),
    "mizuki": (F, "ja-jp"), "naja": (F, "da-dk"), "niamh": (F, "en-ie"), "nicole": (F, "en-au"),
    "ola": (F, "pl-pl"), "olivia": (F, "en-au"), "pedro": (M, "es-us"), "penelope": (F, "es-us"),
    "raveena": (F, "en-in"), "remi": (M, "fr-fr"), "ricardo": (M, "pt-br"), "ruben": (M, "nl-nl"),
    "russell": (M, "en-au"), "ruth": (F, "en-us"), "salli": (F, "en-us"), "seoyeon": (F, "ko-kr"),
    "sergio": (M, "es-es"), "sofie": (F, "da-dk"), "stephen": (M, "en-us"), "suvi": (F, "fi-fi"),
    "takumi": (M, "ja-jp"), "tatyana": (F, "ru-ru"), "thiago": (M, "pt-br"), "tomoko": (F, "ja-jp"),
    "vicki": (F, "de-de"), "vitoria": (F, "pt-br"), "zayd": (M, "ar-ae"), "zeina": (F, "arb"),
    "zhiyu": (F, "cmn-cn"),
}
"""Polly voice id (lower case, without accents) -> (gender, language in Kazoo's lower-case spelling)."""

GOOGLE_VOICES: dict[str, str] = {
    "af-ZA-Standard": "Af", "ar-XA-Standard": "AfBmCmDf", "ar-XA-Wavenet": "AfBmCmDf",
    "bg-BG-Standard": "Af", "ca-ES-Standard": "Af", "cmn-CN-Standard": "AfBmCmDf",
    "cmn-CN-Wavenet": "AfBmCmDf", "cmn-TW-Standard": "AfBmCm", "cmn-TW-Wavenet": "AfBmCm",
    "cs-CZ-Standard": "Af", "cs-CZ-Wavenet": "Af", "da-DK-Standard": "AfCmDfEf",
    "da-DK-Wavenet": "AfCmDfEf", "de-DE-Neural2": "BmCfDmFf", "de-DE-Standard": "AfBmCfDmEmFf",
    "de-DE-Wavenet": "AfBmCfDmEmFf", "el-GR-Standard": "Af", "el-GR-Wavenet": "Af",
    "en-AU-Neural2": "AfBmCfDm", "en-AU-Standard": "AfBmCfDm", "en-AU-Wavenet": "AfBmCfDm",
    "en-GB-Neural2": "AfBmCfDmFf", "en-GB-Standard": "AfBmCfDmFf", "en-GB-Wavenet": "AfBmCfDmFf",
    "en-IN-Standard": "AfBmCmDf", "en-IN-Wavenet": "AfBmCmDf", "en-US-Neural2": "AmCfDmEfFfGfHfImJm",
    "en-US-Standard": "AmBmCfDmEfFfGfHfImJm", "en-US-Wavenet": "AmBmCfDmEfFfGfHfImJm",
    "es-ES-Neural2": "AfBmCfDfEfFm", "es-ES-Standard": "BmCfDf", "es-ES-Wavenet": "BmCfDf",
    "es-US-Neural2": "AfBmCm", "es-US-Standard": "AfBmCm", "es-US-Wavenet": "AfBmCm",
    "eu-ES-Standard": "Af", "fi-FI-Standard": "Af", "fi-FI-Wavenet": "Af", "fil-PH-Standard": "AfBfCmDm",
    "fil-PH-Wavenet": "AfBfCmDm", "fr-CA-Neural2": "AfBmCfDm", "fr-CA-Standard": "AfBmCfDm",
    "fr-CA-Wavenet": "AfBmCfDm", "fr-FR-Neural2": "AfBmCfDmEf", "fr-FR-Standard": "AfBmCfDmEf",
    "fr-FR-Wavenet": "AfBmCfDmEf", "gl-ES-Standard": "Af", "he-IL-Standard": "AfBmCfDm",
    "he-IL-Wavenet": "AfBmCfDm", "hi-IN-Neural2": "AfBmCmDf", "hi-IN-Standard": "AfBmCmDf",
    "hi-IN-Wavenet": "AfBmCmDf", "hu-HU-Standard": "Af", "hu-HU-Wavenet": "Af",
    "id-ID-Standard": "AfBmCmDf", "id-ID-Wavenet": "AfBmCmDf", "is-IS-Standard": "Af",
    "it-IT-Neural2": "AfCm", "it-IT-Standard": "BfCmDm", "it-IT-Wavenet": "BfCmDm",
    "ja-JP-Standard": "BfCmDm", "ja-JP-Wavenet": "BfCmDm", "ko-KR-Neural2": "AfBfCm",
    "ko-KR-Standard": "AfBfCmDm", "ko-KR-Wavenet": "AfBfCmDm", "lt-LT-Standard": "Am",
    "lv-LV-Standard": "Am", "ml-IN-Wavenet": "CfDm", "mr-IN-Standard": "AfBmCf",
    "mr-IN-Wavenet": "AfBmCf", "ms-MY-Standard": "AfBmCfDm", "ms-MY-Wavenet": "AfBmCfDm",
    "nb-NO-Standard": "AfBmCfDmEf", "nb-NO-Wavenet": "AfBmCfDmEf", "nl-BE-Standard": "AfBm",
    "nl-BE-Wavenet": "AfBm", "nl-NL-Standard": "AfBmCmDfEf", "nl-NL-Wavenet": "AfBmCmDfEf",
    "pa-IN-Standard": "AfBmCfDm", "pa-IN-Wavenet": "AfBmCfDm", "pl-PL-Standard": "AfBmCmDfEf",
    "pl-PL-Wavenet": "AfBmCmDfEf", "pt-BR-Neural2": "AfBmCf", "pt-BR-Standard": "BmCf",
    "pt-BR-Wavenet": "BmCf", "pt-PT-Standard": "AfBmCmDf", "pt-PT-Wavenet": "AfBmCmDf",
    "ro-RO-Standard": "Af", "ro-RO-Wavenet": "Af", "ru-RU-Standard": "AfBmCfDmEf",
    "ru-RU-Wavenet": "AfBmCfDmEf", "sk-SK-Standard": "Af", "sk-SK-Wavenet": "Af", "sr-RS-Standard": "Af",
    "sv-SE-Standard": "AfBfCfDmEm", "sv-SE-Wavenet": "AfBfCmDfEm", "ta-IN-Standard": "CfDm",
    "ta-IN-Wavenet": "CfDm", "te-IN-Standard": "AfBm", "th-TH-Standard": "Af",
    "tr-TR-Standard": "AfBmCfDfEm", "tr-TR-Wavenet": "AfBmCfDfEm", "uk-UA-Standard": "Af",
    "uk-UA-Wavenet": "Af", "vi-VN-Standard": "AfBmCfDm", "vi-VN-Wavenet": "AfBmCfDm",
    "yue-HK-Standard": "AfBmCfDm",
}
"""``<locale>-<type>`` -> each voice letter followed by ``f`` (female) or ``m`` (male)."""
# fmt: on

_POLLY = re.compile(r"^Polly\.([^-]+)(?:-(?:Neural|Generative|LongForm|Standard))?$", re.IGNORECASE)
_GOOGLE = re.compile(r"^Google\.(([a-z]{2,3})-([A-Z]{2})-.+)-([A-Za-z0-9]+)$")
_GENDERS = {"f": F, "m": M}


@dataclass(frozen=True, slots=True)
class ProviderVoice:
    """A Polly or Google voice: who makes it, and its gender and language when known."""

    provider: str
    gender: str | None
    language: str | None


def _plain(name: str) -> str:
    """``Céline`` -> ``celine``: Twilio accepts both spellings of accented Polly ids."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


def _polly(voice_id: str) -> ProviderVoice:
    known = POLLY_VOICES.get(_plain(voice_id))
    return ProviderVoice("Amazon Polly", *known) if known else ProviderVoice("Amazon Polly", None, None)


def _google_gender(family: str, letter: str) -> str | None:
    """The gender of voice ``letter`` of ``family`` (``en-US-Wavenet``), None when not in the table."""
    pairs = GOOGLE_VOICES.get(family, "")
    for at in range(0, len(pairs), 2):
        if pairs[at] == letter:
            return _GENDERS[pairs[at + 1]]
    return None


def provider_voice(raw: str) -> ProviderVoice | None:
    """The provider voice ``raw`` names (``Polly.Joanna-Neural``, ``Google.de-DE-Wavenet-F``), or None.

    A Google name always gives its language (its locale prefix), even for a voice not in the table.
    """
    name = raw.strip()
    polly = _POLLY.match(name)
    if polly is not None:
        return _polly(polly.group(1))
    google = _GOOGLE.match(name)
    if google is not None:
        family, language, region, letter = google.groups()
        return ProviderVoice("Google", _google_gender(family, letter), f"{language}-{region}".lower())
    if name.lower().startswith(("polly.", "google.")):
        provider = "Amazon Polly" if name.lower().startswith("polly.") else "Google"
        return ProviderVoice(provider, None, None)
    return None
