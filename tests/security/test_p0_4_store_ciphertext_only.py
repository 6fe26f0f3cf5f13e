"""P0-4: only ciphertext reaches the RAM store: no planted marker, no JPEG/PNG signature, high byte entropy.

Realistic plaintexts go through a real vault: a JPEG and a PNG as the engine would produce them (with a unique
marker planted inside), and a raw RGB capture whose bytes are far from random, so the entropy check can tell
plaintext from ciphertext. Runs on the unprivileged /dev/shm store everywhere and on a mounted tmpfs as root.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import io
import math
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from appliance.store import SessionStore, new_session_id

MIN_ENTROPY_BITS = 7.9
MIN_BLOB_BYTES = 64 * 1024

# Signatures searched at the start of every stored file (where file-type sniffers look). Anywhere else a
# 3-byte pattern turns up in random data about once per 16 MiB, so inside files we search for the longer forms
# (JPEG SOI + APP0 JFIF header, the full 8-byte PNG signature), which random data essentially never contains.
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG"
JPEG_JFIF_HEADER = b"\xff\xd8\xff\xe0\x00\x10JFIF"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def entropy_bits_per_byte(data: bytes) -> float:
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256).astype(np.float64)
    p = counts[counts > 0] / len(data)
    return float(-(p * np.log2(p)).sum())


def encodings(marker: bytes) -> list[bytes]:
    """The marker raw, as hex, and as base64 at all three byte alignments (stable inner slice of each)."""
    forms = [marker, marker.hex().encode(), marker.hex().upper().encode()]
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + marker)
        start = math.ceil(shift * 4 / 3) + 1
        forms.append(encoded[start : len(encoded) - 4])
    return forms


def portrait(rng: np.random.Generator) -> np.ndarray:  # type: ignore[type-arg]
    """A 512x512 RGB test image: a grey studio gradient with a skin-toned disc, plus sensor noise. Like a real
    capture its byte histogram is concentrated, so its entropy is well below that of ciphertext."""
    y, x = np.mgrid[0:512, 0:512]
    grey = 100 + (x + y) / 16
    base = np.stack([grey, grey, grey + 8], axis=-1)
    face = (x - 256) ** 2 + (y - 220) ** 2 < 120**2
    base[face] = (205, 160, 135)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def _tmpfs_mount_reason(target: Path) -> str | None:
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    target.mkdir()
    if libc.mount(b"probe", os.fsencode(target), b"tmpfs", 0, b"size=1m") != 0:
        return f"tmpfs mount refused: {os.strerror(ctypes.get_errno())}"
    libc.umount2(os.fsencode(target), 0)
    return None


@pytest.fixture(params=["shm-fallback", "tmpfs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SessionStore]:
    if request.param == "tmpfs":
        reason = _tmpfs_mount_reason(tmp_path / "probe")
        if reason is not None:
            pytest.skip(reason)
    store = SessionStore(tmp_path / "ram", size_mib=32, allow_mount=request.param == "tmpfs")
    store.open()
    yield store
    store.close()


def test_p0_4_store_holds_only_ciphertext(store: SessionStore) -> None:
    rng = np.random.default_rng(4)
    marker = b"P0-4-PLANTED-MARKER-" + secrets.token_hex(16).encode()
    image = Image.fromarray(portrait(rng))
    jpeg = io.BytesIO()
    image.save(jpeg, format="JPEG", quality=95, comment=marker)
    png = io.BytesIO()
    image.save(png, format="PNG")
    raw_capture = portrait(rng).tobytes()
    plaintexts = {
        "headshot": jpeg.getvalue(),
        "preview": png.getvalue() + marker,
        "capture": marker + raw_capture + marker,
    }
    # The planted material is really there, and the detectors flag it in plaintext.
    assert plaintexts["headshot"].startswith(JPEG_JFIF_HEADER)
    assert plaintexts["preview"].startswith(PNG_SIGNATURE)
    assert all(marker in data for data in plaintexts.values())
    assert all(len(data) >= MIN_BLOB_BYTES for data in plaintexts.values())
    assert entropy_bits_per_byte(raw_capture) < 7.5

    session_id = new_session_id()
    vault = store.begin(session_id)
    ids = {kind: vault.put(kind, data, expires_at=2e9) for kind, data in plaintexts.items()}
    for kind, obj_id in ids.items():
        assert vault.get(obj_id) == plaintexts[kind]

    stored = [p for p in store.path.rglob("*") if p.is_file()]
    assert len(stored) == len(plaintexts)  # the scan is not vacuous
    forbidden = [*encodings(marker), JPEG_JFIF_HEADER, PNG_SIGNATURE, plaintexts["headshot"][:16]]
    for path in stored:
        data = path.read_bytes()
        name = str(path.relative_to(store.path))
        assert marker.decode() not in name
        assert not data.startswith(JPEG_MAGIC), name
        assert not data.startswith(PNG_MAGIC), name
        found = [pattern for pattern in forbidden if pattern in data]
        assert found == [], f"{name} contains plaintext material"
        assert len(data) >= MIN_BLOB_BYTES
        assert entropy_bits_per_byte(data) >= MIN_ENTROPY_BITS, name

    vault.wipe()
    assert [p for p in store.path.rglob("*")] == []


def test_p0_4_entropy_detector_distinguishes_plaintext() -> None:
    """Sanity for the threshold: random bytes pass, a realistic raw capture does not."""
    assert entropy_bits_per_byte(os.urandom(MIN_BLOB_BYTES)) >= MIN_ENTROPY_BITS
    assert entropy_bits_per_byte(portrait(np.random.default_rng(0)).tobytes()) < MIN_ENTROPY_BITS
