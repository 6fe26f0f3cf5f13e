"""`python -m engine`: render headshots from photo files (the operator's and the tests' way in)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.compose import parse_background
from engine.config import EngineConfig
from engine.errors import EngineError
from engine.fileio import write_atomic
from engine.framing import PRESETS

EXIT_OK = 0
EXIT_SETUP = 1  # the engine could not start (models missing, backend unavailable)
EXIT_SOME_FAILED = 2


def _background(value: str) -> str:
    try:
        parse_background(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="render headshots from JPEG/PNG photos")
    r.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    r.add_argument("-o", "--outdir", required=True, type=Path, metavar="OUTDIR")
    r.add_argument("--preset", choices=sorted(PRESETS), default="square")
    r.add_argument(
        "--background",
        type=_background,
        default="studio-grey",
        help="studio-grey, white, blur or #RRGGBB (default: studio-grey)",
    )
    r.add_argument("--backend", choices=["auto", "onnxruntime", "tensorrt"], default="auto")
    r.add_argument("--models-dir", type=Path, default=None, help="directory with the model files")
    r.add_argument("--json", action="store_true", help="print one JSON object per input")
    return parser


def _output_path(outdir: Path, src: Path, taken: set[str]) -> Path:
    stem, n = src.stem or "photo", 1
    name = f"{stem}.jpg"
    while name in taken:  # two inputs with one stem (a/x.png, b/x.jpg) must not overwrite each other
        n += 1
        name = f"{stem}-{n}.jpg"
    taken.add(name)
    return outdir / name


def render_main(args: argparse.Namespace) -> int:
    from engine.pipeline import HeadshotEngine  # noqa: PLC0415 - heavy: only for render

    overrides: dict[str, Any] = {"backend": args.backend}
    if args.models_dir is not None:
        overrides["models_dir"] = args.models_dir
    try:
        engine = HeadshotEngine(EngineConfig(**overrides))
    except EngineError as exc:
        print(f"engine could not start: {exc}", file=sys.stderr)
        return EXIT_SETUP
    args.outdir.mkdir(parents=True, exist_ok=True)
    failed = 0
    taken: set[str] = set()
    with engine:
        for src in args.inputs:
            result: dict[str, Any] = {"input": str(src)}
            try:
                try:
                    data = src.read_bytes()
                except OSError as exc:
                    raise _Unreadable(
                        f"cannot read the file ({exc.strerror or exc.__class__.__name__})"
                    ) from exc
                shot = engine.render(data, preset=args.preset, background=args.background)
                out = _output_path(args.outdir, src, taken)
                # Atomic, so a failure never leaves a partial output; 0644 like any exported photo.
                write_atomic(out, shot.jpeg, mode=0o644)
            except EngineError as exc:
                failed += 1
                result.update(ok=False, error=exc.code, message=str(exc))
            else:
                result.update(
                    output=str(out),
                    ok=True,
                    backend=shot.backend,
                    preset=shot.preset,
                    background=shot.background,
                    width=shot.width,
                    height=shot.height,
                    face=shot.face.to_json(),
                    timings_ms=shot.timings_ms,
                    warnings=list(shot.warnings),
                )
            if args.json:
                print(json.dumps(result), flush=True)
            elif result["ok"]:
                print(f"{src} -> {result['output']} ({result['timings_ms']['total']:.0f} ms)", flush=True)
            else:
                print(f"{src}: {result['error']}: {result['message']}", file=sys.stderr, flush=True)
    return EXIT_SOME_FAILED if failed else EXIT_OK


class _Unreadable(EngineError):
    code = "unreadable"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "render":
        return render_main(args)
    return EXIT_SETUP  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
