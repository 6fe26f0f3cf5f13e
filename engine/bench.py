"""`python -m engine.bench`: headshot render speed against the plain MODNet cut-out, measured in one run.

The baseline is the straightforward way to use the same MODNet file: resize the whole photo to MODNet's
512 reference size, run a default ONNX Runtime session, resize the matte back with Pillow, composite on
grey, encode. Our render does strictly more (framing, edge refinement, tone, retouch) on a face-sized
crop; ``ratio`` = render / baseline, medians over the same inputs in the same process."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from engine.config import EngineConfig
from engine.imageio import RgbImage, decode, encode_jpeg
from engine.models import MATTING, verified_path

DEFAULT_PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "assets" / "faces"
BENCH_PHOTOS = ("astronaut.png", "grace_hopper.jpg")
REF_SIZE = 512


def camera_frame(rgb: RgbImage, width: int = 1920, height: int = 1080) -> bytes:
    """Turn a portrait into what the kiosk camera delivers: a 1080p landscape JPEG with the person
    in the middle (portrait scaled to the frame height, sides continued by reflection)."""
    h, w = rgb.shape[:2]
    scaled = cv2.resize(rgb, (round(w * height / h), height), interpolation=cv2.INTER_CUBIC)
    pad = max(0, width - scaled.shape[1])
    framed = cv2.copyMakeBorder(scaled, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_REFLECT_101)
    return encode_jpeg(np.ascontiguousarray(framed[:, :width]), quality_percent=90)


class PlainCutout:
    """The baseline: MODNet used the obvious way (MODNet's own demo resizing rule, default session)."""

    def __init__(self, onnx_path: Path) -> None:
        import onnxruntime as ort  # noqa: PLC0415 - the baseline uses ORT directly, on purpose

        self.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def __call__(self, data: bytes) -> bytes:
        img = Image.open(io.BytesIO(data)).convert("RGB")
        w, h = img.size
        # MODNet demo rule: scale so the short side is 512 (when both sides are on one side of 512),
        # then round each side down to a multiple of 32.
        if max(h, w) < REF_SIZE or min(h, w) > REF_SIZE:
            s = REF_SIZE / min(h, w)
            rw, rh = int(w * s), int(h * s)
        else:
            rw, rh = w, h
        rw, rh = rw - rw % 32, rh - rh % 32
        x = np.asarray(img.resize((rw, rh), Image.Resampling.BILINEAR), dtype=np.float32) / 127.5 - 1.0
        matte = self.session.run(None, {"input": x.transpose(2, 0, 1)[None]})[0][0, 0]
        alpha = np.asarray(Image.fromarray(matte).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)
        rgb = np.asarray(img, dtype=np.float32)
        out = rgb * alpha[..., None] + 128.0 * (1 - alpha[..., None])
        buf = io.BytesIO()
        Image.fromarray(out.astype(np.uint8)).save(buf, "JPEG", quality=92)
        return buf.getvalue()


def _median_ms(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), samples


class StepTimer:
    """``--steps``: the time of every engine function ``engine.pipeline`` calls by name (warp_into,
    keep_guest, decontaminate, tone_rects, ...) plus the two model callers, summed per render. It wraps
    the names in that module's namespace for the life of the ``with`` block (a benchmark's instrument,
    never used by the kiosk), so the same breakdown can be taken of any revision of the pipeline."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def _wrap(self, owner: Any, attr: str, label: str) -> None:
        fn = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.current[label] = self.current.get(label, 0.0) + (time.perf_counter() - t0) * 1000

        self._undo.append((owner, attr, fn))
        setattr(owner, attr, timed)

    def __enter__(self) -> StepTimer:
        from engine import pipeline  # noqa: PLC0415
        from engine.detect import FaceDetector  # noqa: PLC0415
        from engine.matting import Matter  # noqa: PLC0415

        for name, obj in list(vars(pipeline).items()):
            module = getattr(obj, "__module__", "") or ""
            if callable(obj) and not isinstance(obj, type) and module.startswith("engine."):
                self._wrap(pipeline, name, name)
        self._wrap(Matter, "matte", "modnet")
        self._wrap(FaceDetector, "detect", "blazeface")
        self._wrap(FaceDetector, "detect_view", "blazeface_crop")
        return self

    def __exit__(self, *exc: object) -> None:
        while self._undo:
            owner, attr, fn = self._undo.pop()
            setattr(owner, attr, fn)


def run(photos_dir: Path, repeats: int, cfg: EngineConfig, *, steps: bool = False) -> dict[str, Any]:
    from engine.pipeline import HeadshotEngine  # noqa: PLC0415 - keeps `--help` instant
    from engine.preview import PreviewAnalyzer  # noqa: PLC0415

    portraits = [
        decode((photos_dir / n).read_bytes(), max_pixels=10**8, max_bytes=2**30).rgb for n in BENCH_PHOTOS
    ]
    frames = [camera_frame(p) for p in portraits]
    baseline = PlainCutout(verified_path(MATTING, cfg.models_dir))
    render_ms: list[float] = []
    overhead_ms: list[float] = []
    baseline_ms: list[float] = []
    stage_samples: dict[str, list[float]] = {}
    step_samples: dict[str, list[float]] = {}
    timer = StepTimer()
    with HeadshotEngine(cfg) as engine, timer if steps else contextlib.nullcontext():
        for data in frames:  # warm-up: first runs allocate arenas and JIT nothing, but page in weights
            engine.render(data)
            baseline(data)
        for _ in range(repeats):
            for data in frames:
                # Interleave so that machine noise hits both sides alike.
                timer.current.clear()
                t0 = time.perf_counter()
                shot = engine.render(data)
                render_ms.append((time.perf_counter() - t0) * 1000)
                overhead_ms.append(shot.timings_ms["total"] - shot.timings_ms["inference"])
                for k, v in shot.timings_ms.items():
                    stage_samples.setdefault(k, []).append(v)
                for k, v in timer.current.items():
                    step_samples.setdefault(k, []).append(v)
                t0 = time.perf_counter()
                baseline(data)
                baseline_ms.append((time.perf_counter() - t0) * 1000)
        backend = engine.backend_name
    preview_frames = [np.asarray(cv2.resize(p, (1280, 720)), dtype=np.uint8) for p in portraits]
    with PreviewAnalyzer(cfg) as analyzer:
        for f in preview_frames:
            analyzer.analyze(f)
        preview_ms = [
            analyzer.analyze(f).timings_ms["total"]
            for _ in range(max(10, repeats * 4))
            for f in preview_frames
        ]
    render = statistics.median(render_ms)
    base = statistics.median(baseline_ms)
    extra: dict[str, Any] = {}
    if steps:
        medians = {k: round(statistics.median(v), 2) for k, v in step_samples.items()}
        extra["steps_ms_median"] = dict(sorted(medians.items(), key=lambda kv: -kv[1]))
    return {
        "render_ms_median": round(render, 1),
        "overhead_ms_median": round(statistics.median(overhead_ms), 1),
        "baseline_ms_median": round(base, 1),
        "ratio": round(render / base, 3),
        "preview_step_ms_median": round(statistics.median(preview_ms), 1),
        "stages_ms_median": {k: round(statistics.median(v), 1) for k, v in stage_samples.items()},
        **extra,
        "targets": {"ratio_max": 0.5, "overhead_ms_max": 40.0, "preview_step_ms_max": 25.0},
        "backend": backend,
        "input": "1920x1080 JPEG camera frames built from " + ", ".join(BENCH_PHOTOS),
        "preset": "square",
        "background": "studio-grey",
        "renders": len(render_ms),
        "machine": {
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "platform": platform.machine(),
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.bench", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object (default: readable lines)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--backend", choices=["auto", "onnxruntime", "tensorrt"], default="auto")
    parser.add_argument(
        "--steps", action="store_true", help="also report the median ms of each pipeline step (StepTimer)"
    )
    args = parser.parse_args(argv)
    result = run(args.photos, args.repeats, EngineConfig(backend=args.backend), steps=args.steps)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
