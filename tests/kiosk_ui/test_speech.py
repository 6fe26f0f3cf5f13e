"""Speech for the guest screens (kiosk_ui.speech, issue 14.2): every text of every language has audio,
made offline by espeak-ng; nothing outside the guest catalog is ever spoken."""

from __future__ import annotations

import io
import os
import shutil
import wave
from pathlib import Path

import pytest

from kiosk_ui.speech import Speech, SpeechRefused, SpeechUnavailable, catalog_texts, fix_wav_sizes

TRANSLATIONS = Path(__file__).resolve().parents[2] / "kiosk_ui" / "translations"
LANGUAGES = ("en", "fr", "es", "de")
ESPEAK = shutil.which("espeak-ng")
needs_espeak = pytest.mark.skipif(
    ESPEAK is None, reason="espeak-ng is not installed (apt-get install espeak-ng)"
)


@pytest.fixture(scope="module")
def speech() -> Speech:
    return Speech(catalog_texts(TRANSLATIONS, LANGUAGES), extra=["Career Fair 2026"])


def _duration(audio: bytes) -> float:
    with wave.open(io.BytesIO(audio)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        return w.getnframes() / w.getframerate()


def test_every_language_has_its_own_texts(speech: Speech) -> None:
    texts = catalog_texts(TRANSLATIONS, LANGUAGES)
    assert set(texts) == set(LANGUAGES)
    assert all(len(texts[lang]) > 50 for lang in LANGUAGES)
    assert set(texts["fr"]) != set(texts["en"])


def test_only_screen_texts_are_speakable(speech: Speech) -> None:
    assert speech.speakable("en", "Delete now")
    assert speech.speakable("en", "  Delete\n  now ")  # as the page's textContent gives it
    assert speech.speakable("en", "A JPEG photo of about 250 KB.")  # a number in a placeholder
    assert speech.speakable("fr", "Career Fair 2026")  # the event's name, in every language
    assert not speech.speakable("en", "A JPEG photo of about Jane KB.")  # placeholders take numbers only
    assert not speech.speakable("en", "jane.doe@example.com")
    assert not speech.speakable("en", "Delete now please")
    assert not speech.speakable("it", "Delete now")  # not a kiosk language
    with pytest.raises(SpeechRefused):
        speech.wav("en", "Say something else")


@needs_espeak
def test_every_text_of_every_language_has_audio(speech: Speech) -> None:
    texts = catalog_texts(TRANSLATIONS, LANGUAGES)
    # Every text, rendered for real: about 600 short renders. HK_SPEECH_SAMPLE=N renders every Nth only.
    step = int(os.environ.get("HK_SPEECH_SAMPLE", "1"))
    for lang in LANGUAGES:
        for text in texts[lang][::step]:
            if not speech.speakable(lang, text):
                continue  # a text with a placeholder is spoken with its number filled in
            audio = speech.wav(lang, text)
            assert _duration(audio) > 0.1, (lang, text)


@needs_espeak
def test_placeholders_and_the_cache(speech: Speech) -> None:
    first = speech.wav("de", "Career Fair 2026")
    assert speech.wav("de", "Career Fair 2026") is first  # cached
    assert _duration(speech.wav("en", "A JPEG photo of about 250 KB.")) > 1.0


def test_without_espeak_the_page_goes_on_silently() -> None:
    quiet = Speech({"en": ["Delete now"]}, binary="/nonexistent/espeak-ng")
    with pytest.raises(SpeechUnavailable):
        quiet.wav("en", "Delete now")


def test_wav_sizes_are_fixed() -> None:
    body = b"\x01\x00" * 100
    broken = b"RIFF\xff\xff\xff\x7fWAVEfmt \x10\x00\x00\x00" + bytes(16) + b"data\xff\xff\xff\x7f" + body
    fixed = fix_wav_sizes(broken)
    assert int.from_bytes(fixed[4:8], "little") == len(fixed) - 8
    assert int.from_bytes(fixed[40:44], "little") == len(body)
