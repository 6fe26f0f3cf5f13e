"""The headshot pipeline: photo in, professional headshot out. Knows nothing of sessions or HTTP."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from engine.backend import InferenceBackend
from engine.compose import Background, background_image, composite, parse_background
from engine.config import EngineConfig
from engine.detect import Face, FaceDetector, primary_face
from engine.errors import FaceCutOff, FaceTooSmall, NoFace
from engine.framing import (
    PRESETS,
    Framing,
    Preset,
    Rect,
    continuation_fill,
    continue_alpha,
    frame_face,
    padding_masks,
    soften_continuation,
    warp_into,
    warp_reduced,
)
from engine.imageio import DecodedPhoto, RgbImage, decode, encode_jpeg
from engine.matting import AlphaMap, Matter, decontaminate, nonzero_rects, refine_alpha
from engine.models import FACE_DETECTION, MATTING, verified_path
from engine.retouch import FaceGeometry, face_window, map_face, skin_patch_mask, smooth_skin
from engine.runtime import open_backend
from engine.scene import box_iou, boxes_in_crop, face_problem, keep_guest
from engine.tone import measure_tone, tone_rects

logger = logging.getLogger(__name__)

SMALL_FACE_PX = 90  # a face box smaller than this in the photo is upscaled so much it looks soft
CROP_DETECT_GAIN = 1.25
"""Run the detector on the matting crop only when it shows the photo at least this much larger than the
whole-photo run did (both are letterboxed to 128 px); otherwise the whole-photo faces are reused."""


@dataclass
class Timings:
    """Milliseconds per stage. ``inference`` is the part spent inside model runtimes."""

    stages: dict[str, float] = field(default_factory=dict)
    inference: float = 0.0

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + (time.perf_counter() - t0) * 1000

    def as_json(self) -> dict[str, float]:
        out = {k: round(v, 2) for k, v in self.stages.items()}
        out["total"] = round(sum(self.stages.values()), 2)
        return out


@dataclass(frozen=True)
class Cutout:
    """One take framed and matted for one preset. Compositing it on another background is cheap
    (no inference), so the kiosk keeps it while the guest flips through backgrounds.

    All arrays are output-sized (``preset.height`` × ``preset.width``) and owned by the cutout;
    ``foreground`` is already toned and retouched; ``plate`` is the old background without the person,
    at a quarter of the size or less (it is only ever shown blurred)."""

    preset: Preset
    framing: Framing
    face: Face
    geometry: FaceGeometry
    foreground: RgbImage
    alpha: AlphaMap
    plate: RgbImage
    warnings: tuple[str, ...]
    region: tuple[Rect, ...] | None = None
    """Rectangles of the output outside which ``alpha`` is 0 (``engine.matting.nonzero_rects``); None:
    anywhere. ``foreground`` is zero outside them."""

    def release(self) -> None:
        """Zero the pixel buffers now instead of waiting for the garbage collector (they are guest data)."""
        for arr in (self.foreground, self.alpha, self.plate):
            if arr.flags.writeable:
                arr.fill(0)


@dataclass(frozen=True)
class Headshot:
    """An encoded headshot: metadata-free JPEG bytes plus what the CLI/UI report about it."""

    jpeg: bytes
    width: int
    height: int
    preset: str
    background: str
    face: Face
    backend: str
    timings_ms: dict[str, float]
    warnings: tuple[str, ...]


class HeadshotEngine:
    """Loads the detector and matting models once; renders any number of photos.

    Owns its backends: call ``close()`` (or use it as a context manager) to release runtime memory.
    Not thread-safe: one engine per worker process."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self._backends: list[InferenceBackend] = []
        try:
            det = self._open(FACE_DETECTION.name, verified_path(FACE_DETECTION, cfg.models_dir))
            mat = self._open(MATTING.name, verified_path(MATTING, cfg.models_dir))
        except BaseException:
            self.close()
            raise
        self.backend_name = mat.name
        self._detector = FaceDetector(det)
        self._matter = Matter(mat)

    def _open(self, name: str, path: Path) -> InferenceBackend:
        backend = open_backend(name, path, self.cfg)
        self._backends.append(backend)
        return backend

    # -- stages ---------------------------------------------------------------------------------------

    def decode(self, data: bytes) -> DecodedPhoto:
        return decode(
            data,
            max_pixels=int(self.cfg.max_input_megapixels * 1_000_000),
            max_bytes=int(self.cfg.max_input_mib * 2**20),
        )

    def detect_faces(self, rgb: RgbImage, timings: Timings | None = None) -> list[Face]:
        """Every face the detector finds in ``rgb`` (photo pixels), best first; one BlazeFace run
        (a few more when the whole view finds nothing). What ``engine.scene.scene_problem`` takes."""
        t0 = time.perf_counter()
        faces = self._detector.detect(rgb)
        if timings is not None:
            timings.inference += (time.perf_counter() - t0) * 1000
        return faces

    def find_face(self, rgb: RgbImage, timings: Timings | None = None) -> tuple[Face, tuple[str, ...]]:
        """The primary face and warnings (``several_faces``, ``small_face``). Raises ``NoFace``, or its
        subclasses ``FaceTooSmall`` / ``FaceCutOff`` when the face found cannot make a real headshot
        (``engine.scene.face_problem``): callers that skip frames on ``NoFace`` skip those too."""
        face, _faces, notes = self._guest(rgb, timings)
        return face, notes

    def _guest(
        self, rgb: RgbImage, timings: Timings | None = None
    ) -> tuple[Face, list[Face], tuple[str, ...]]:
        faces = self.detect_faces(rgb, timings)
        size = (rgb.shape[1], rgb.shape[0])
        face = primary_face(faces, size)
        if face is None:
            raise NoFace("no face was found; face the camera with your whole face visible")
        problem = face_problem(face, size)
        if problem == "face_too_small":
            raise FaceTooSmall(
                f"the face is {face.height:.0f} px tall in a {size[0]}×{size[1]} photo, too small for a "
                "headshot (needs at least 8 % of the shorter side and 32 px); step closer or crop the photo"
            )
        if problem == "face_cut_off":
            raise FaceCutOff(
                "the face is cut by the edge of the photo; the whole face, both eyes included, "
                "must be inside the picture"
            )
        notes: list[str] = []
        if len(faces) > 1:
            notes.append("several_faces")
        if face.height < SMALL_FACE_PX:
            notes.append("small_face")
        return face, faces, tuple(notes)

    def cutout(
        self,
        rgb: RgbImage,
        face: Face,
        preset: str | Preset,
        timings: Timings | None = None,
        *,
        smoothing: bool | None = None,
        others: Sequence[Face] = (),
    ) -> Cutout:
        """Frame, matte, refine edges, tone and retouch one take for one preset. ``smoothing`` overrides
        ``EngineConfig.skin_smoothing`` for this call (a guest's own answer); None keeps the config's.

        Only the guest stays in the matte (``engine.scene.keep_guest``). ``others`` are the other faces
        found in ``rgb`` (photo pixels) if the caller has them; the crop is searched for faces as well
        (one BlazeFace run on the matting input), so a caller that kept only ``face`` loses nothing."""
        return self._cutout(rgb, face, preset, timings, smoothing=smoothing, others=others)

    def _matte_size(self, preset: Preset) -> tuple[int, int]:
        """The matting input (h, w) this engine uses for ``preset``: ``preset.cpu_matte_size`` on ONNX
        Runtime, where MODNet's cost is most of a render, ``preset.matte_size`` on TensorRT."""
        if self.backend_name == "onnxruntime" and preset.cpu_matte_size is not None:
            return preset.cpu_matte_size
        return preset.matte_size

    def _cutout(
        self,
        rgb: RgbImage,
        face: Face,
        preset: str | Preset,
        timings: Timings | None,
        *,
        smoothing: bool | None,
        others: Sequence[Face],
        all_faces: bool = False,
    ) -> Cutout:
        """``cutout``; ``all_faces`` says that ``others`` (with ``face``) are every face the detector found
        in the whole of ``rgb``, which lets a crop that shows no more detail than that view reuse them."""
        p = PRESETS[preset] if isinstance(preset, str) else preset
        t = timings or Timings()
        size = (rgb.shape[1], rgb.shape[0])
        with t.stage("compose"):
            framing = frame_face(face, size, p)
            mh, mw = self._matte_size(p)
            # The matting input straight from the photo; the full-size frame is warped later, and only
            # where the guest's matte is (``warp_into``).
            small = warp_reduced(rgb, framing, (mw, mh))
            valid = below = fill = None
            if framing.coverage < 1.0:
                valid, below = padding_masks(size, framing, (mw, mh))
                if below.any():
                    fill = continuation_fill(small, (p.width, p.height))
                    soften_continuation(small, below, fill=fill)
                else:
                    below = None
        with t.stage("matte"):
            t0 = time.perf_counter()
            alpha_small = self._matter.matte(small)
            t.inference += (time.perf_counter() - t0) * 1000
        with t.stage("detect"):
            t0 = time.perf_counter()
            # The photo seen through the crop at the detector's 128 px: when that is no closer a view than
            # the whole photo was, a second run finds nothing the first did not.
            closer = max(size) / (max(p.width, p.height) / framing.scale)
            in_crop = [] if all_faces and closer < CROP_DETECT_GAIN else self._detector.detect_view(small)
            t.inference += (time.perf_counter() - t0) * 1000
        with t.stage("compose"):
            (guest_box,) = boxes_in_crop([face], framing, (mw, mh))
            other_boxes = [
                b
                for b in boxes_in_crop([f for f in others if f is not face], framing, (mw, mh))
                + [f.bbox for f in in_crop]
                if box_iou(b, guest_box) < 0.3
            ]
            if below is not None:
                continue_alpha(alpha_small, below)
            if valid is not None:
                alpha_small *= valid
            guest_only = keep_guest(alpha_small, small, guest_box, other_boxes)
            alpha_small = guest_only.alpha
            up = cv2.resize(alpha_small, (p.width, p.height), interpolation=cv2.INTER_LINEAR)
            alpha = refine_alpha(np.asarray(up, dtype=np.float32))
            # Everything at full size happens where the guest is: outside these rectangles α = 0 and the
            # headshot shows the backdrop (35-45 % of the frame is the guest).
            rects = nonzero_rects(alpha)
            # Zeros, not np.empty: the foreground outside the rectangles must not be stale memory.
            fg = warp_into(np.zeros((p.height, p.width, 3), dtype=np.uint8), rgb, framing, rects)
            if below is not None:
                soften_continuation(fg, below, fill=fill, rects=rects)
            fg, plate = decontaminate(
                fg, alpha, context=(small, refine_alpha(alpha_small)), in_place=True, rects=rects
            )
            geom = map_face(face, framing)
            window = face_window(geom, (p.width, p.height))
            x0, y0, x1, y1 = window
            skin = skin_patch_mask(geom, (y1 - y0, x1 - x0), alpha[y0:y1, x0:x1], origin=(x0, y0))
            if skin.any():
                # Every 3rd skin pixel: face statistics are means (see ``engine.tone.apply_tone``).
                face_px = fg[y0:y1, x0:x1].reshape(-1, 3)[np.flatnonzero(skin)[::3]]
                gains, pivot = measure_tone(face_px, small, alpha_small < 0.1)
                tone_rects(fg, gains, pivot, rects)
            if self.cfg.skin_smoothing if smoothing is None else smoothing:
                smooth_skin(fg, geom, alpha, in_place=True)
            small.fill(0)  # guest pixels: don't leave them for the allocator
            if fill is not None:
                fill.fill(0)
        notes: tuple[str, ...] = ("face_partly_out_of_frame",) if framing.coverage < 0.85 else ()
        if other_boxes or guest_only.removed > 0.05:
            notes += ("several_faces",)
        return Cutout(p, framing, face, geom, fg, alpha, plate, notes, tuple(rects))

    def compose(self, cut: Cutout, background: str | Background, timings: Timings | None = None) -> RgbImage:
        """The headshot pixels for one background (H×W×3 uint8, owned by the caller)."""
        bg = parse_background(background) if isinstance(background, str) else background
        t = timings or Timings()
        with t.stage("compose"):
            backdrop = background_image(bg, cut.preset.width, cut.preset.height, cut.plate)
            return composite(cut.foreground, backdrop, cut.alpha, cut.region)

    def encode(self, rgb: RgbImage, timings: Timings | None = None) -> bytes:
        t = timings or Timings()
        with t.stage("encode"):
            return encode_jpeg(rgb, quality_percent=self.cfg.jpeg_quality_percent)

    # -- whole renders ------------------------------------------------------------------------------------

    def render(self, data: bytes, *, preset: str = "square", background: str = "studio-grey") -> Headshot:
        """Encoded photo bytes -> ``Headshot``. Raises ``engine.errors.EngineError`` subclasses."""
        bg = parse_background(background)
        t = Timings()
        with t.stage("decode"):
            photo = self.decode(data)
        return self._render(photo.rgb, photo.warnings, preset, bg, t)

    def render_image(
        self, rgb: RgbImage, *, preset: str = "square", background: str = "studio-grey"
    ) -> Headshot:
        """Like ``render`` for a capture that is already pixels (the kiosk's camera path)."""
        return self._render(rgb, (), preset, parse_background(background), Timings())

    def _render(
        self, rgb: RgbImage, notes: tuple[str, ...], preset: str, bg: Background, t: Timings
    ) -> Headshot:
        p = PRESETS[preset]
        with t.stage("detect"):
            face, faces, face_notes = self._guest(rgb, t)
        cut = self._cutout(rgb, face, p, t, smoothing=None, others=faces, all_faces=True)
        try:
            pixels = self.compose(cut, bg, t)
        finally:
            cut.release()
        jpeg = self.encode(pixels, t)
        pixels.fill(0)
        timings = t.as_json()
        timings["inference"] = round(t.inference, 2)
        return Headshot(
            jpeg=jpeg,
            width=p.width,
            height=p.height,
            preset=p.name,
            background=bg.name,
            face=face,
            backend=self.backend_name,
            timings_ms=timings,
            warnings=tuple(dict.fromkeys(notes + face_notes + cut.warnings)),  # once each, in order
        )

    def close(self) -> None:
        """Release every backend. Idempotent."""
        while self._backends:
            self._backends.pop().close()

    def __enter__(self) -> HeadshotEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
