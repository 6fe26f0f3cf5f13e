"""P1-5: the image-intake regression corpus (``tests/assets/corpus``) replayed through every way in.

The corpus holds hostile inputs found or crafted by the audit's intake fuzzer (``python -m tests.audit``):
PNG header bombs (valid IHDR with CRC claiming up to 2^31-1 x 1 or 100000 x 100000 pixels), JPEG SOF
dimensions rewritten to 65535 x 65535 and 0 x 0, truncations, bad CRCs, wrong formats behind a .jpg/.png
name, odd modes (CMYK, LA, 16-bit, palette with transparency) and broken EXIF. ``MANIFEST.json`` records
what each decoder answers; any change is a regression to look at, and nothing may crash, hang or raise an
undocumented exception.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from appliance.camera import ImageDecodeError, decode_image_file
from engine.errors import ImageError
from engine.imageio import decode
from tests.conftest import REPO

CORPUS = REPO / "tests" / "assets" / "corpus"
MANIFEST = json.loads((CORPUS / "MANIFEST.json").read_text())
MAX_PIXELS = 50_000_000
MAX_BYTES = 40 * 2**20
PER_FILE_SECONDS = 5.0


def test_the_manifest_lists_every_corpus_file() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.suffix in (".jpg", ".png")}
    assert files == set(MANIFEST)
    assert len(files) >= 30


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_decoders_answer_as_recorded(name: str) -> None:
    """Both in-process decoders: the recorded outcome, a documented error type, no hang. Warnings are
    ignored as in the product (Pillow warns on corrupt EXIF; pytest would make that an exception)."""
    path = CORPUS / name
    expected = MANIFEST[name]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            photo = decode(path.read_bytes(), max_pixels=MAX_PIXELS, max_bytes=MAX_BYTES)
            engine = "decoded"
            assert photo.rgb.ndim == 3 and photo.rgb.shape[2] == 3
        except ImageError as exc:
            engine = exc.code
        try:
            rgb = decode_image_file(path, max_pixels=MAX_PIXELS, max_bytes=MAX_BYTES)
            camera = "decoded"
            assert rgb.ndim == 3 and rgb.shape[2] == 3
        except ImageDecodeError as exc:
            camera = "refused"
            assert str(path) not in str(exc)  # reasons never name the file
    assert time.perf_counter() - t0 < PER_FILE_SECONDS
    assert {"engine": engine, "camera": camera} == expected


def test_engine_cli_answers_every_hostile_file_cleanly(tmp_path: Path) -> None:
    """``python -m engine render --json`` over the whole corpus: one JSON line per input, exit status 2
    (some failed), no traceback, the recorded error code for every file the decoder refuses."""
    files = sorted(CORPUS / name for name in MANIFEST)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "render",
            *map(str, files),
            "-o",
            str(tmp_path / "out"),
            "--json",
            "--backend",
            "onnxruntime",
        ],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr.decode()[-2000:]
    assert b"Traceback" not in proc.stderr
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [Path(line["input"]).name for line in lines] == [f.name for f in files]
    for line in lines:
        expected = MANIFEST[Path(line["input"]).name]["engine"]
        if expected == "decoded":
            assert line["ok"] or line["error"] == "no_face"
        else:
            assert not line["ok"] and line["error"] == expected
