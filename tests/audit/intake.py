"""P1-5: hostile images fed to every place an image enters — the directory camera source inside a real
session worker, and ``python -m engine render`` — expecting clean error codes, no crash and no hang.

:func:`crafted_cases` builds the named cases (header bombs, truncations, wrong formats, odd modes) that form
the committed regression corpus (``tests/assets/corpus``); :func:`mutants` adds seeded random mutations of
real photos for the audit run. Any mutant that makes a decoder raise something undocumented, take too long,
or crash a process is copied into the corpus directory of the run for the maintainer to keep.
"""

from __future__ import annotations

import io
import json
import random
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / "tests" / "assets" / "faces"
SLOW_SECONDS = 5.0


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_header_bomb(
    width: int, height: int, *, mode: int = 2, depth: int = 8, idat: bytes | None = None
) -> bytes:
    """A valid PNG signature and IHDR (correct CRC) claiming ``width`` x ``height``, with a tiny IDAT."""
    ihdr = struct.pack("!IIBBBBB", width, height, depth, mode, 0, 0, 0)
    body = idat if idat is not None else zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )


def _zeros_bomb(width: int, height: int) -> bytes:
    """A real PNG whose pixels are all zero: tiny on disk, ``width*height*3`` bytes once decoded."""
    raw = b"".join(b"\0" + b"\0" * (width * 3) for _ in range(height))
    return png_header_bomb(width, height, idat=zlib.compress(raw, 9))


def _jpeg_sof_dims(jpeg: bytes, width: int, height: int) -> bytes:
    """Rewrite the SOF0/SOF2 dimensions of a JPEG."""
    data = bytearray(jpeg)
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        at = data.find(marker)
        if at >= 0:
            struct.pack_into("!HH", data, at + 5, height, width)
            return bytes(data)
    return bytes(data)


def _encode(rgb: np.ndarray, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **kwargs)
    return buf.getvalue()


def _exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def crafted_cases() -> dict[str, bytes]:
    """Named hostile inputs, small enough to commit (each well under 64 KiB)."""
    with Image.open(FACES / "hopper.jpg") as im:
        small = np.array(im.convert("RGB"))
    jpeg = _encode(small, "JPEG", quality=90)
    png = _encode(small, "PNG")
    progressive = _encode(small, "JPEG", quality=90, progressive=True)
    cases: dict[str, bytes] = {
        "png-header-bomb-100000x100000.png": png_header_bomb(100_000, 100_000),
        "png-header-bomb-2147483647x1.png": png_header_bomb(2**31 - 1, 1),
        "png-header-bomb-65535x65535-rgba16.png": png_header_bomb(65535, 65535, mode=6, depth=16),
        "png-zero-width.png": png_header_bomb(0, 100),
        "png-7000x7000-tiny-idat.png": png_header_bomb(7000, 7000),
        "png-zeros-bomb-3000x3000.png": _zeros_bomb(3000, 3000),
        "jpeg-sof-65535x65535.jpg": _jpeg_sof_dims(jpeg, 65535, 65535),
        "jpeg-sof-0x0.jpg": _jpeg_sof_dims(jpeg, 0, 0),
        "jpeg-sof-9000x9000.jpg": _jpeg_sof_dims(jpeg, 9000, 9000),
        "jpeg-truncated-header.jpg": jpeg[:40],
        "jpeg-truncated-half.jpg": jpeg[: len(jpeg) // 2],
        "jpeg-truncated-no-eoi.jpg": jpeg[:-2],
        "jpeg-progressive-truncated.jpg": progressive[: len(progressive) * 2 // 3],
        "jpeg-soi-only.jpg": b"\xff\xd8\xff",
        "jpeg-garbage-after-soi.jpg": b"\xff\xd8\xff" + bytes(range(256)) * 8,
        "jpeg-exif-orientation-9.jpg": _encode(small, "JPEG", exif=_exif_orientation(9)),
        "jpeg-exif-orientation-0.jpg": _encode(small, "JPEG", exif=_exif_orientation(0)),
        "jpeg-exif-broken.jpg": _encode(small, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff"),
        "jpeg-cmyk.jpg": _cmyk_jpeg(small),
        "png-truncated-idat.png": png[: len(png) * 2 // 3],
        "png-bad-crc.png": png[:29] + bytes([png[29] ^ 0xFF]) + png[30:],
        "png-no-iend.png": png[:-12],
        "png-16bit-grey.png": _encode((np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16), "PNG"),
        "png-palette-transparency.png": _palette_png(small),
        "png-la.png": _encode(np.dstack([small[:, :, 0], small[:, :, 1]]), "PNG"),
        "png-1x1.png": _encode(np.zeros((1, 1, 3), np.uint8), "PNG"),
        "gif-as-jpg.jpg": _encode(small, "GIF"),
        "bmp-as-png.png": _encode(small, "BMP"),
        "tiff-as-jpg.jpg": _encode(small, "TIFF"),
        "webp-header.jpg": b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\0" * 32,
        "heic-header.jpg": b"\x00\x00\x00\x18ftypheic" + b"\0" * 32,
        "text.jpg": b"this is not an image\n",
        "empty.png": b"",
        "html.png": b"<html><script>alert(1)</script></html>",
    }
    return cases


def _cmyk_jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buf, "JPEG")
    return buf.getvalue()


def _palette_png(rgb: np.ndarray) -> bytes:
    img = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    img.info["transparency"] = 0
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)
    return buf.getvalue()


def mutants(count: int, seed: int) -> dict[str, bytes]:
    """``count`` random mutations (bit flips, truncations, splices, chunk-length edits) of real photos."""
    rng = random.Random(seed)
    sources = [
        (FACES / "hopper.jpg").read_bytes(),
        _encode(np.array(Image.open(FACES / "hopper.jpg").convert("RGB")), "PNG"),
        (FACES / "hopper_orientation_6.jpg").read_bytes(),
    ]
    out: dict[str, bytes] = {}
    for n in range(count):
        data = bytearray(rng.choice(sources))
        how = rng.choice(["flip", "truncate", "splice", "length", "repeat"])
        if how == "flip":
            for _ in range(rng.randint(1, 20)):
                at = rng.randrange(len(data))
                data[at] ^= 1 << rng.randrange(8)
        elif how == "truncate":
            data = data[: rng.randrange(1, len(data))]
        elif how == "splice":
            at = rng.randrange(len(data))
            data[at:at] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64)))
        elif how == "length":
            at = rng.randrange(2, min(400, len(data) - 4))
            struct.pack_into("!H", data, at, rng.getrandbits(16))
        else:
            at = rng.randrange(len(data) - 64)
            data[at:at] = data[at : at + 64] * rng.randint(2, 50)
        suffix = ".png" if data[:4] == b"\x89PNG" else ".jpg"
        out[f"mutant-{n:04d}-{how}{suffix}"] = bytes(data)
    return out


@dataclass
class IntakeResult:
    """What every entry point did with the cases."""

    cases: int = 0
    in_process: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    interesting: dict[str, str] = field(default_factory=dict)
    cli: str = ""
    worker: str = ""
    refused_by_both: set[str] = field(default_factory=set)


def check_in_process(cases: dict[str, bytes], workdir: Path, result: IntakeResult) -> None:
    """Both decoders in this process: only documented errors (or a good image), each within SLOW_SECONDS."""
    from appliance.camera import ImageDecodeError, decode_image_file
    from engine.errors import ImageError
    from engine.imageio import decode

    workdir.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, int] = {}
    for name, data in cases.items():
        path = workdir / name
        path.write_bytes(data)
        refused = 0
        for label, call, ok_errors in (
            (
                "engine.decode",
                lambda d=data: decode(d, max_pixels=50_000_000, max_bytes=40 * 2**20),
                ImageError,
            ),
            (
                "camera.decode_image_file",
                lambda p=path: decode_image_file(p, max_pixels=50_000_000, max_bytes=40 * 2**20),
                ImageDecodeError,
            ),
        ):
            t0 = time.perf_counter()
            try:
                call()
                outcome = "decoded"
            except ok_errors as exc:
                outcome = getattr(exc, "code", None) or "refused"
                refused += 1
            except Exception as exc:
                outcome = f"UNEXPECTED {type(exc).__name__}"
                result.problems.append(f"{label}({name}) raised {type(exc).__name__}: {str(exc)[:120]}")
                result.interesting[name] = f"{label}: {type(exc).__name__}"
            seconds = time.perf_counter() - t0
            if seconds > SLOW_SECONDS:
                result.problems.append(f"{label}({name}) took {seconds:.1f} s")
                result.interesting[name] = f"{label}: slow {seconds:.1f} s"
            key = f"{label}: {outcome}"
            outcomes[key] = outcomes.get(key, 0) + 1
        if refused == 2:
            result.refused_by_both.add(name)
    result.in_process = outcomes


def check_cli(files: list[Path], outdir: Path, result: IntakeResult, timeout: float = 300.0) -> None:
    """``python -m engine render --json`` over every file: one JSON line per input, a clean exit status
    (0 or 2), no traceback, within ``timeout``."""
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "engine",
                "render",
                *map(str, files),
                "-o",
                str(outdir),
                "--json",
                "--backend",
                "onnxruntime",
            ],
            cwd=REPO,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        result.problems.append(f"engine render hung (> {timeout:.0f} s)")
        result.cli = "HUNG"
        return
    seconds = time.monotonic() - t0
    lines = [json.loads(x) for x in proc.stdout.decode().splitlines() if x.startswith("{")]
    codes: dict[str, int] = {}
    for line in lines:
        key = "ok" if line.get("ok") else str(line.get("error"))
        codes[key] = codes.get(key, 0) + 1
    if proc.returncode not in (0, 2):
        result.problems.append(f"engine render exited {proc.returncode} (a crash or signal)")
    if len(lines) != len(files):
        result.problems.append(f"engine render answered {len(lines)} of {len(files)} inputs")
    if b"Traceback" in proc.stderr:
        result.problems.append("engine render printed a traceback")
    result.cli = f"exit {proc.returncode} in {seconds:.1f} s; outcomes {json.dumps(codes, sort_keys=True)}"


def check_worker(directory: Path, store: Path, result: IntakeResult, *, with_good: bool) -> str:
    """A real session worker whose directory camera holds ``directory``'s files: frames and a capture must
    answer (an image, or a clean ``camera``/``no_face`` error), the worker must stay alive and answer."""
    from appliance.config import KioskConfig
    from appliance.store import new_session_id
    from appliance.workerproc import WorkerDied, WorkerProcess, WorkerRequestError

    cfg = KioskConfig.model_validate(
        {
            "camera": {"source": "directory", "path": str(directory), "reconnect_attempts": 0, "fps": 60},
            "store": {"path": str(store), "size_mib": 64},
            "engine": {"backend": "onnxruntime"},
        }
    )
    store.mkdir(parents=True, exist_ok=True)
    worker = WorkerProcess(cfg, str(store))
    outcomes: dict[str, int] = {}
    t0 = time.monotonic()
    try:
        worker.wait_ready()
        worker.call("begin", session_id=new_session_id(), capacity_bytes=64 * 2**20)
        # One preview frame per file (the source serves them in name order), so every decodable oddity —
        # 1x1, 16-bit, LA, CMYK, a 3000x3000 zero bomb — goes through the preview analyser; then captures.
        frames = min(120, len(list(directory.iterdir())) + 2)
        calls = (
            [("open_camera", {})]
            + [("frame", {"background": None})] * frames
            + [("frame", {"background": "#204060"})] * 4
            + [("capture", {"burst": 3})] * 2
        )
        for op, args in calls:
            try:
                worker.call(op, timeout=120, **args)
                key = f"{op}: ok"
            except WorkerRequestError as exc:
                key = f"{op}: {exc.code}"
            outcomes[key] = outcomes.get(key, 0) + 1
        worker.call("ping", timeout=10)
        worker.wipe()
    except WorkerDied as exc:
        result.problems.append(f"the session worker died on hostile camera files ({exc})")
        worker.kill()
        return "DIED"
    seconds = time.monotonic() - t0
    which = "with" if with_good else "without"
    summary = f"{which} a good frame: {json.dumps(outcomes, sort_keys=True)} in {seconds:.1f} s"
    if with_good and not outcomes.get("capture: ok"):
        result.problems.append("with a good frame among hostile ones the worker could not capture")
    if not with_good and any(k.endswith(": ok") for k in outcomes if not k.startswith("open_camera")):
        result.problems.append("the worker produced a frame from files that no decoder accepts")
    return summary


def run_intake(workdir: Path, store: Path, *, mutant_count: int, seed: int) -> IntakeResult:
    """All P1-5 checks; interesting mutants are written to ``workdir/corpus-candidates``."""
    result = IntakeResult()
    cases = {**crafted_cases(), **mutants(mutant_count, seed)}
    result.cases = len(cases)
    files_dir = workdir / "cases"
    check_in_process(cases, files_dir, result)
    files = sorted(files_dir.iterdir())
    check_cli(files, workdir / "cli-out", result)
    # The camera: first only the files both decoders refuse (every frame must be a clean camera error), then
    # every case with one good portrait among them (frames and a capture must work, skipping the rest).
    refused = workdir / "camera-refused"
    everything = workdir / "camera-all"
    refused.mkdir(parents=True, exist_ok=True)
    everything.mkdir(parents=True, exist_ok=True)
    for path in files:
        if path.stat().st_size < 8 * 2**20:
            (everything / path.name).write_bytes(path.read_bytes())
            if path.name in result.refused_by_both:
                (refused / path.name).write_bytes(path.read_bytes())
    result.worker = check_worker(refused, store, result, with_good=False)
    (everything / "zz-good.jpg").write_bytes((FACES / "grace_hopper.jpg").read_bytes())
    result.worker += "; " + check_worker(everything, store, result, with_good=True)
    if result.interesting:
        keep = workdir / "corpus-candidates"
        keep.mkdir(exist_ok=True)
        for name in result.interesting:
            (keep / name).write_bytes(cases[name])
    return result


def decode_outcomes(path: Path) -> dict[str, str]:
    """What the two in-process decoders do with ``path``: ``engine`` is ``decoded`` or the engine's error
    code, ``camera`` is ``decoded`` or ``refused``. Warnings are ignored, as in the product (pytest would turn
    Pillow's "Corrupt EXIF data" warning into an exception and change the answer)."""
    import warnings

    from appliance.camera import ImageDecodeError, decode_image_file
    from engine.errors import ImageError
    from engine.imageio import decode

    out: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            decode(path.read_bytes(), max_pixels=50_000_000, max_bytes=40 * 2**20)
            out["engine"] = "decoded"
        except ImageError as exc:
            out["engine"] = exc.code
        try:
            decode_image_file(path, max_pixels=50_000_000, max_bytes=40 * 2**20)
            out["camera"] = "decoded"
        except ImageDecodeError:
            out["camera"] = "refused"
    return out


def write_corpus(directory: Path, extra: dict[str, bytes] | None = None) -> None:
    """(Re)write the regression corpus: the crafted cases (plus ``extra`` interesting mutants) and
    ``MANIFEST.json`` with each file's expected outcomes."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict[str, str]] = {}
    for name, data in {**crafted_cases(), **(extra or {})}.items():
        path = directory / name
        path.write_bytes(data)
        manifest[name] = decode_outcomes(path)
    (directory / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
