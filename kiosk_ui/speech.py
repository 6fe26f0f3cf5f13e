"""Speech for the guest screens, made on the kiosk and offline (issue 14.2: EN 301 549 §5.1.3 closed
functionality — a guest who cannot read the screen hears it).

The page asks for the audio of a text it shows; this module answers only for texts of the guest catalog
in the kiosk's languages (numbers filled into their placeholders, and the event's name), so the speech
route can never be made to say, or to log, anything a guest typed or anything about a guest. Audio is
made by espeak-ng (Debian and JetPack both package it; no network, no model download) as 16-bit mono WAV,
kept in a small in-memory cache (the same few dozen texts are asked for all day), and played by the page's
own audio element, whose volume the guest sets.
"""

from __future__ import annotations

import logging
import re
import shutil
import struct
import subprocess
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path

from babel.messages.mofile import read_mo

logger = logging.getLogger(__name__)

# espeak-ng voice per kiosk language.
VOICES: dict[str, str] = {"en": "en-us", "fr": "fr-fr", "es": "es", "de": "de"}
# A little slower than espeak-ng's 175 words per minute: guests listen once, in a public place.
WORDS_PER_MINUTE = 150
CACHE_ENTRIES = 96
RENDER_TIMEOUT_SECONDS = 10.0
MAX_TEXT_CHARS = 600

# A placeholder in a catalog text: "%(size)s", "%(n)d", "{count}".
_PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]|\{[a-z_]+\}")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


class SpeechRefused(Exception):
    """The text is not one the guest screens show (or the language is not the kiosk's)."""


class SpeechUnavailable(Exception):
    """espeak-ng is missing or failed; the page goes on without sound."""


def normalise(text: str) -> str:
    """Whitespace collapsed, tags removed: the form in which the page's text and the catalog's compare."""
    return _SPACE.sub(" ", _TAG.sub("", text)).strip()


def _pattern(text: str, fills: Iterable[str] = ()) -> re.Pattern[str] | None:
    parts = _PLACEHOLDER.split(normalise(text))
    if len(parts) == 1:
        return None
    # Placeholders take numbers (sizes, counts, seconds) and the given fills (the event's name) only.
    # Anything else stays unspeakable.
    value = "|".join([r"[0-9]{1,6}", *(re.escape(normalise(f)) for f in fills if f.strip())])
    return re.compile(f"(?:{value})".join(re.escape(p) for p in parts))


class Speech:
    """The speakable texts per language and the audio made for them. Thread-safe.

    ``texts`` maps a language to the texts its screens show (catalog strings, possibly with placeholders);
    ``extra`` are literal texts allowed in every language (the event's name); ``fills`` are the texts a
    placeholder may take besides a number (the event's name, in "%(event)s makes your headshot...")."""

    def __init__(
        self,
        texts: Mapping[str, Iterable[str]],
        *,
        extra: Iterable[str] = (),
        fills: Iterable[str] = (),
        binary: str | None = None,
        cache_entries: int = CACHE_ENTRIES,
    ) -> None:
        self.binary = binary or shutil.which("espeak-ng")
        self._exact: dict[str, set[str]] = {}
        self._patterns: dict[str, list[re.Pattern[str]]] = {}
        literal = {normalise(t) for t in extra if t.strip()}
        fills = list(fills)
        for lang, items in texts.items():
            exact, patterns = set(literal), []
            for item in items:
                pattern = _pattern(item, fills)
                if pattern is None:
                    exact.add(normalise(item))
                else:
                    patterns.append(pattern)
            exact.discard("")
            self._exact[lang], self._patterns[lang] = exact, patterns
        self._cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._cache_entries = cache_entries
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self.binary is not None

    def languages(self) -> list[str]:
        return sorted(self._exact)

    def speakable(self, lang: str, text: str) -> bool:
        """Whether ``text`` is one the screens in ``lang`` show."""
        text = normalise(text)
        if lang not in self._exact or not text or len(text) > MAX_TEXT_CHARS:
            return False
        return text in self._exact[lang] or any(p.fullmatch(text) for p in self._patterns[lang])

    def wav(self, lang: str, text: str) -> bytes:
        """WAV audio of ``text`` in ``lang``. Raises SpeechRefused or SpeechUnavailable."""
        if not self.speakable(lang, text):
            raise SpeechRefused
        text = normalise(text)
        key = (lang, text)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        audio = self._render(lang, text)
        with self._lock:
            self._cache[key] = audio
            while len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)
        return audio

    def _render(self, lang: str, text: str) -> bytes:
        if self.binary is None:
            raise SpeechUnavailable("espeak-ng is not installed")
        voice = VOICES.get(lang, lang)
        try:
            # The text on stdin, not in argv (which other users could read in /proc).
            done = subprocess.run(
                [self.binary, "-v", voice, "-s", str(WORDS_PER_MINUTE), "--stdout"],
                input=text.encode(),
                capture_output=True,
                timeout=RENDER_TIMEOUT_SECONDS,
                check=True,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            logger.warning("speech: espeak-ng failed (%s)", type(exc).__name__)
            raise SpeechUnavailable(type(exc).__name__) from None
        return fix_wav_sizes(done.stdout)


def fix_wav_sizes(wav: bytes) -> bytes:
    """espeak-ng writing to a pipe cannot seek back, so its RIFF and data sizes say 0x7fffffff-ish;
    set them to the real ones (some players refuse or cut a WAV whose sizes are wrong)."""
    if len(wav) < 44 or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise SpeechUnavailable("espeak-ng gave no WAV")
    out = bytearray(wav)
    struct.pack_into("<I", out, 4, len(out) - 8)
    offset = 12
    while offset + 8 <= len(out):
        chunk, size = out[offset : offset + 4], struct.unpack_from("<I", out, offset + 4)[0]
        if chunk == b"data":
            struct.pack_into("<I", out, offset + 4, len(out) - offset - 8)
            break
        offset += 8 + size
    return bytes(out)


def catalog_texts(
    translations: Path, languages: Iterable[str], domain: str = "messages"
) -> dict[str, list[str]]:
    """The texts each language's screens show: the msgstrs of ``domain``'s compiled catalogs (the msgids
    for English, the source language). Plural forms give each of their texts."""
    texts: dict[str, list[str]] = {}
    any_catalog = next(iter(sorted(translations.glob(f"*/LC_MESSAGES/{domain}.mo"))), None)
    for lang in languages:
        mo = any_catalog if lang == "en" else translations / lang / "LC_MESSAGES" / f"{domain}.mo"
        if mo is None or not mo.exists():
            texts[lang] = []
            continue
        with mo.open("rb") as f:
            catalog = read_mo(f)
        items: list[str] = []
        for message in catalog:
            if not message.id:
                continue
            # An untranslated text is shown (and so spoken) as its English source.
            source = message.string if lang != "en" and message.string else message.id
            items.extend([source] if isinstance(source, str) else [t for t in source if t])
        texts[lang] = items
    return texts
