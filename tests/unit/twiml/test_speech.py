"""<Say> voices and loops: provider voices keep their gender and language; capped loops say why."""

from __future__ import annotations

import pytest

from pivot_worker.twiml import translate_twiml
from pivot_worker.twiml.voices import GOOGLE_VOICES, POLLY_VOICES, ProviderVoice, provider_voice

from .support import make_ctx


@pytest.mark.parametrize(
    ("voice", "expected"),
    [
        ("Polly.Joanna", ProviderVoice("Amazon Polly", "female", "en-us")),
        ("Polly.Matthew-Neural", ProviderVoice("Amazon Polly", "male", "en-us")),
        ("Polly.Joanna-Generative", ProviderVoice("Amazon Polly", "female", "en-us")),
        ("Polly.Céline", ProviderVoice("Amazon Polly", "female", "fr-fr")),
        ("Polly.Celine", ProviderVoice("Amazon Polly", "female", "fr-fr")),
        ("Polly.Hans", ProviderVoice("Amazon Polly", "male", "de-de")),
        ("Polly.Zeina", ProviderVoice("Amazon Polly", "female", "arb")),
        ("Polly.Unheard", ProviderVoice("Amazon Polly", None, None)),
        ("Google.en-US-Standard-C", ProviderVoice("Google", "female", "en-us")),
        ("Google.en-US-Neural2-A", ProviderVoice("Google", "male", "en-us")),
        ("Google.de-DE-Wavenet-B", ProviderVoice("Google", "male", "de-de")),
        ("Google.cmn-CN-Wavenet-A", ProviderVoice("Google", "female", "cmn-cn")),
        ("Google.de-DE-Wavenet-Z", ProviderVoice("Google", None, "de-de")),
        ("Google.en-US-Chirp3-HD-Aoede", ProviderVoice("Google", None, "en-us")),
        ("Google.something", ProviderVoice("Google", None, None)),
        ("alice", None),
        ("Joanna", None),
    ],
)
def test_provider_voices_give_their_gender_and_language(voice: str, expected: ProviderVoice | None) -> None:
    assert provider_voice(voice) == expected


def test_the_voice_tables_are_well_formed() -> None:
    assert len(POLLY_VOICES) >= 90
    assert all(gender in ("male", "female") and language for gender, language in POLLY_VOICES.values())
    assert sum(len(pairs) // 2 for pairs in GOOGLE_VOICES.values()) >= 360
    for family, pairs in GOOGLE_VOICES.items():
        assert family.rsplit("-", 1)[1] in ("Standard", "Wavenet", "Neural2")
        letters, genders = pairs[::2], pairs[1::2]
        assert letters.isupper() and len(set(letters)) == len(letters), family
        assert set(genders) <= {"f", "m"}, family


def _say(attributes: str, text: str = "Hello.") -> tuple[dict[str, object], list[tuple[str, str]]]:
    translation = translate_twiml(f"<Response><Say {attributes}>{text}</Say></Response>".encode(), make_ctx())
    return translation.flow["data"], [(w.code, w.message) for w in translation.warnings]


def test_a_polly_voice_speaks_with_the_engine_voice_of_its_gender_in_its_language() -> None:
    data, warnings = _say('voice="Polly.Mathieu"')
    assert (data["voice"], data["language"]) == ("male", "fr-fr")
    assert warnings == [
        (
            "kazoo-unsupported",
            "voice='Polly.Mathieu': Kazoo's TTS engines cannot use Amazon Polly voices; the engine's "
            "'male' voice speaks instead",
        )
    ]


def test_a_language_attribute_wins_over_the_voice_language() -> None:
    data, _ = _say('voice="Google.fr-FR-Wavenet-B" language="en-GB"')
    assert (data["voice"], data["language"]) == ("male", "en-gb")


def test_a_bad_language_falls_back_to_the_voice_language() -> None:
    data, warnings = _say('voice="Polly.Vicki" language="not a tag"')
    assert data["language"] == "de-de"
    assert ("say-language", "language='not a tag' is not a language tag; using 'de-de'") in warnings


def test_a_voice_of_unknown_gender_uses_the_default_voice_and_says_so() -> None:
    data, warnings = _say('voice="Google.en-GB-Studio-B"')
    assert (data["voice"], data["language"]) == ("male", "en-gb")
    assert "its gender is not known, so the default 'male' voice speaks instead" in warnings[0][1]


def test_twilio_basic_voices_map_without_warning() -> None:
    data, warnings = _say('voice="alice"')
    assert (data["voice"], data["language"], warnings) == ("female", "en-us", [])
    assert _say('voice="woman"')[0]["voice"] == "female"
    assert _say("")[0]["voice"] == "male"


def test_a_loop_above_the_cap_is_capped_with_a_located_warning() -> None:
    translation = translate_twiml(b'<Response>\n<Say loop="12">Hi</Say></Response>', make_ctx())
    [warning] = translation.warnings
    assert (warning.code, warning.pointer, warning.line) == ("say-loop", "/Response/Say[1]", 2)
    assert "repeated 10 times" in warning.message and "callflow node" in warning.message


def test_an_endless_loop_of_long_text_is_capped_and_says_why() -> None:
    text = "word " * 300
    translation = translate_twiml(f'<Response><Say loop="0">{text}</Say></Response>'.encode(), make_ctx())
    [warning] = translation.warnings
    assert warning.code == "say-loop"
    assert "Kazoo cannot loop" in warning.message


def test_loops_within_the_cap_are_exact_and_quiet() -> None:
    translation = translate_twiml(b'<Response><Say loop="10">Hi</Say></Response>', make_ctx())
    assert translation.warnings == []
