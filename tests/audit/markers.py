"""Planted markers and the secrets the audit searches for, in every encoding a leak could take.

A run plants unique material in the camera's input frames — a per-run random pixel patch and a text marker
in a JPEG COM segment — and learns more secrets as it goes: every delivery token the API hands out, the
bytes of every headshot and preview it downloads, and the raw RGB pixels the worker captures (derived by
decoding the source frames exactly as the camera does). :class:`SecretBook` turns each secret into search
patterns — raw, hex (both cases), UTF-16LE, URL-encoded, base64 and base64url at all three byte alignments —
and :class:`Matcher` finds them all in one pass (Aho-Corasick over bytes).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import random
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import ahocorasick_rs
import numpy as np
import numpy.typing as npt
from PIL import Image

WINDOW_BYTES = 32
PATCH_PIXELS = 48  # the planted noise patch is PATCH_PIXELS x PATCH_PIXELS
JPEG_SOS = b"\xff\xda"

RgbImage = npt.NDArray[np.uint8]


def _b64_inner(data: bytes, shift: int, *, urlsafe: bool) -> bytes:
    """The base64 characters of ``data`` that do not depend on its neighbours, when it starts ``shift``
    bytes after a 3-byte group boundary (characters mixing neighbour bits are cut off at both ends)."""
    encoded = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(b"\0" * shift + data).rstrip(b"=")
    start = math.ceil(4 * shift / 3)
    end = (4 * (shift + len(data))) // 3
    return encoded[start:end]


def encodings(secret: bytes) -> dict[str, bytes]:
    """Every searchable form of ``secret``: name -> pattern (duplicates removed, short ones dropped)."""
    forms: dict[str, bytes] = {
        "raw": secret,
        "hex": binascii.hexlify(secret),
        "HEX": binascii.hexlify(secret).upper(),
        "utf16le": secret.decode("latin-1").encode("utf-16-le"),
        "utf16le-hex": binascii.hexlify(secret).decode().encode("utf-16-le"),
        "url": quote(secret, safe="").encode(),
        "url-lower": _lower_percent(quote(secret, safe="")).encode(),
    }
    for shift in range(3):
        forms[f"base64/{shift}"] = _b64_inner(secret, shift, urlsafe=False)
        forms[f"base64url/{shift}"] = _b64_inner(secret, shift, urlsafe=True)
    out: dict[str, bytes] = {}
    seen: set[bytes] = set()
    for name, pattern in forms.items():
        if len(pattern) >= 16 and pattern not in seen:
            seen.add(pattern)
            out[name] = pattern
    return out


def _lower_percent(text: str) -> str:
    parts = text.split("%")
    return parts[0] + "".join("%" + p[:2].lower() + p[2:] for p in parts[1:])


def distinct_enough(window: bytes) -> bool:
    """A window is a usable fingerprint only if it is not a run of a few values (flat image areas are
    shared by many pictures and would match by accident)."""
    return len(set(window)) >= 24


def jpeg_windows(jpeg: bytes, rng: random.Random, count: int) -> list[bytes]:
    """``count`` random 32-byte windows from the middle of the entropy-coded data of a JPEG. The tables
    before the scan are shared by every JPEG a libjpeg writes, and the first rows of a headshot are often pure
    synthetic background that another render would encode to the same bytes; the middle (face, shoulders)
    carries this run's pixels."""
    sos = jpeg.rfind(JPEG_SOS)
    scan = sos + 32 if sos >= 0 else 0
    start = scan + (len(jpeg) - scan) * 2 // 5
    end = len(jpeg) - 2 - WINDOW_BYTES
    out: list[bytes] = []
    for _ in range(count * 4):
        if end <= start or len(out) >= count:
            break
        at = rng.randrange(start, end)
        window = jpeg[at : at + WINDOW_BYTES]
        if distinct_enough(window):
            out.append(window)
    return out


def pixel_windows(rgb: RgbImage, rng: random.Random, count: int) -> list[bytes]:
    """``count`` random 32-byte windows of the raw RGB bytes of an image, each with enough distinct values."""
    flat = np.ascontiguousarray(rgb).tobytes()
    out: list[bytes] = []
    for _ in range(count * 20):
        if len(out) >= count:
            break
        at = rng.randrange(0, len(flat) - WINDOW_BYTES)
        window = flat[at : at + WINDOW_BYTES]
        if distinct_enough(window):
            out.append(window)
    return out


@dataclass(frozen=True)
class Pattern:
    """One search pattern: which secret (``label``, e.g. ``token#12``), its ``category`` and ``encoding``."""

    category: str
    label: str
    encoding: str


@dataclass
class Hits:
    """Hits found in one location: a count per category and a few examples for the report."""

    total: int = 0
    by_category: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    secrets: dict[str, set[str]] = field(default_factory=dict)

    def add(self, pattern: Pattern, where: str) -> None:
        self.total += 1
        self.by_category[pattern.category] += 1
        self.secrets.setdefault(pattern.category, set()).add(pattern.label)
        if len(self.examples) < 12:
            self.examples.append(f"{pattern.category} {pattern.label} ({pattern.encoding}) in {where}")

    def merge(self, other: Hits) -> None:
        self.total += other.total
        self.by_category.update(other.by_category)
        for cat, labels in other.secrets.items():
            self.secrets.setdefault(cat, set()).update(labels)
        self.examples.extend(other.examples[: max(0, 12 - len(self.examples))])

    def summary(self) -> str:
        if not self.total:
            return "0"
        cats = ", ".join(
            f"{k} {v} occurrences of {len(self.secrets.get(k, ()))} distinct secrets"
            for k, v in sorted(self.by_category.items())
        )
        return f"{self.total} ({cats})"


class SecretBook:
    """Everything the run must never find anywhere: categories ``marker``, ``pixels``, ``token``, ``key``,
    ``image``. Thread-safe; :meth:`matcher` compiles the current set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._patterns: dict[bytes, Pattern] = {}
        self.counts: Counter[str] = Counter()

    def add(self, category: str, label: str, secret: bytes) -> None:
        with self._lock:
            self.counts[category] += 1
            for name, pattern in encodings(secret).items():
                self._patterns.setdefault(pattern, Pattern(category, label, name))

    def add_token(self, label: str, token: str) -> None:
        """A delivery token ``<id>.<key>``: the whole token and the 32-byte key inside it."""
        self.add("token", label, token.encode())
        key_text = token.split(".", 1)[1]
        self.add("key", label, key_text.encode())
        self.add("key", label, base64.urlsafe_b64decode(key_text + "="))

    def matcher(self) -> Matcher:
        with self._lock:
            return Matcher(dict(self._patterns))

    def __len__(self) -> int:
        return len(self._patterns)


class Matcher:
    """All patterns compiled into one Aho-Corasick automaton over bytes."""

    def __init__(self, patterns: dict[bytes, Pattern]) -> None:
        self._keys = list(patterns)
        self._meta = [patterns[k] for k in self._keys]
        self._ac = ahocorasick_rs.BytesAhoCorasick(self._keys) if self._keys else None
        self.longest = max((len(k) for k in self._keys), default=1)

    def find(self, data: bytes | memoryview) -> list[Pattern]:
        """Patterns found in ``data`` (each occurrence once; overlapping forms of one secret may repeat)."""
        if self._ac is None or not data:
            return []
        return [self._meta[i] for i, _s, _e in self._ac.find_matches_as_indexes(data, overlapping=True)]

    def find_spans(self, data: bytes) -> list[tuple[Pattern, int, int]]:
        """Patterns found in ``data`` with their start and end offsets."""
        if self._ac is None or not data:
            return []
        return [(self._meta[i], s, e) for i, s, e in self._ac.find_matches_as_indexes(data, overlapping=True)]

    def scan_chunks(self, chunks: Iterable[bytes]) -> list[Pattern]:
        """Search a stream read in chunks, carrying an overlap so no match is cut at a boundary."""
        found: list[Pattern] = []
        tail = b""
        keep = self.longest - 1
        for chunk in chunks:
            data = tail + chunk
            # Only count matches that end after the carried tail, so none is counted twice.
            for i, _s, end in self._ac.find_matches_as_indexes(data, overlapping=True) if self._ac else []:
                if end > len(tail):
                    found.append(self._meta[i])
            tail = data[-keep:] if keep > 0 else b""
        return found


# -- planted input frames ----------------------------------------------------------------------------------


@dataclass
class PlantedFrames:
    """The camera directory of a run: which files, the text markers and the pixels each decodes to."""

    directory: Path
    text_markers: list[str]
    decoded: list[RgbImage]
    patch_rows: list[bytes]


def _noise_patch(rng: np.random.Generator) -> RgbImage:
    """A per-run random pattern: 8x8 blocks of 6x6 pixels, each pixel a random colour around its block's
    random base colour, so every 32-byte window of its rows is unique to this run."""
    blocks = rng.integers(0, 256, size=(8, 8, 3), dtype=np.int16)
    base = np.kron(blocks, np.ones((6, 6, 1), dtype=np.int16))
    noise = rng.integers(-40, 41, size=base.shape, dtype=np.int16)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _colour_field(rng: np.random.Generator, shape: tuple[int, ...]) -> npt.NDArray[np.int16]:
    """A smooth random offset per pixel and channel (within +-18): a 6x6 random grid, bilinearly upsampled."""
    h, w = shape[0], shape[1]
    grid = rng.uniform(-18, 18, size=(6, 6, 3))
    ys = np.linspace(0, 5, h)
    xs = np.linspace(0, 5, w)
    y0 = np.minimum(ys.astype(int), 4)
    x0 = np.minimum(xs.astype(int), 4)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return np.rint(top * (1 - fy) + bottom * fy).astype(np.int16)


def plant_frames(directory: Path, portraits: list[Path], *, seed: int, count: int = 4) -> PlantedFrames:
    """Write ``count`` camera frames into ``directory``: each a portrait with the run's noise patch in its
    top-left corner; JPEG frames carry a text marker in a COM segment, PNG frames in a ``tEXt`` chunk."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    markers: list[str] = []
    decoded: list[RgbImage] = []
    patch_rows: list[bytes] = []
    for n in range(count):
        src = portraits[n % len(portraits)]
        with Image.open(src) as picture:
            rgb = np.array(picture.convert("RGB"), dtype=np.uint8)
        # Faint per-run noise over the whole frame: every render and preview of this run is then unique to it
        # (the public portraits alone would render to the same bytes in any run or test).
        # A fine grain does not survive blur and JPEG quantisation, so add a smooth per-run colour field too:
        # it changes block averages everywhere, the blurred background included.
        grain = rng.integers(-3, 4, size=rgb.shape, dtype=np.int16)
        rgb = np.clip(rgb.astype(np.int16) + grain + _colour_field(rng, rgb.shape), 0, 255).astype(np.uint8)
        patch = _noise_patch(rng)
        rgb[8 : 8 + PATCH_PIXELS, 8 : 8 + PATCH_PIXELS] = patch
        marker = f"HKAUDIT-{seed:016x}-{n:02d}-{rng.integers(0, 2**62):016x}"
        markers.append(marker)
        image = Image.fromarray(rgb)
        buf = io.BytesIO()
        if n % 2 == 0:
            image.save(buf, "JPEG", quality=95, comment=marker.encode())
            name = f"frame-{n:03d}.jpg"
        else:
            from PIL.PngImagePlugin import PngInfo

            info = PngInfo()
            info.add_text("Comment", marker)
            image.save(buf, "PNG", pnginfo=info)
            name = f"frame-{n:03d}.png"
        (directory / name).write_bytes(buf.getvalue())
        with Image.open(directory / name) as picture:  # what the camera will decode
            got = np.array(picture.convert("RGB"), dtype=np.uint8)
        decoded.append(got)
        for row in got[8 : 8 + PATCH_PIXELS, 8 : 8 + PATCH_PIXELS]:
            patch_rows.append(row.tobytes())
    return PlantedFrames(directory, markers, decoded, patch_rows)


def register_frames(book: SecretBook, frames: PlantedFrames, rng: random.Random) -> None:
    """Put the planted material of ``frames`` into ``book``: text markers, patch rows (RGB and BGR, cut in
    32-byte windows) and random windows of every frame's raw capture pixels."""
    for i, marker in enumerate(frames.text_markers):
        book.add("marker", f"text#{i}", marker.encode())
    for i, row in enumerate(frames.patch_rows):
        if i % 3:
            continue
        bgr = np.frombuffer(row, dtype=np.uint8).reshape(-1, 3)[:, ::-1].tobytes()
        for data, label in ((row, "rgb"), (bgr, "bgr")):
            for at in range(0, len(data) - WINDOW_BYTES + 1, 48):
                window = data[at : at + WINDOW_BYTES]
                if distinct_enough(window):
                    book.add("marker", f"patch-{label}#{i}", window)
    for i, rgb in enumerate(frames.decoded):
        for window in pixel_windows(rgb, rng, 24):
            book.add("pixels", f"frame#{i}", window)


def entropy_bits_per_byte(data: bytes) -> float:
    """Shannon entropy of the byte histogram (8.0 for uniformly random bytes)."""
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256).astype(np.float64)
    p = counts[counts > 0] / len(data)
    return float(-(p * np.log2(p)).sum())


def iter_file_chunks(path: Path, chunk: int = 8 * 2**20) -> Iterator[bytes]:
    """Read a file in chunks (raises OSError to the caller)."""
    with path.open("rb") as handle:
        while True:
            data = handle.read(chunk)
            if not data:
                return
            yield data
