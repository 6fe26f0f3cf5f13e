"""Live preview analysis: fast person segmentation plus face detection and pose guidance, per camera frame."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from types import TracebackType

import cv2
import numpy as np
import numpy.typing as npt

from engine.backend import InferenceBackend
from engine.config import EngineConfig
from engine.detect import Face, FaceDetector, primary_face
from engine.imageio import RgbImage
from engine.models import FACE_DETECTION, SELFIE_SEGMENTATION, verified_path
from engine.runtime import open_backend
from engine.scene import face_cut_margin, face_problem, scene_problem

SEGMENTATION_SIZE = 256
# Guidance thresholds, as fractions of the frame. Chosen so the final headshot crop (face box 27 % of a
# square output) needs no more than ~2× upscaling from a 720p frame.
MIN_FACE_HEIGHT = 0.16
MAX_FACE_HEIGHT = 0.50
MAX_CENTRE_OFFSET = 0.14
MAX_YAW = 0.22  # nose offset from the eye midpoint, in eye distances
MIN_FACE_LUMA = 0.28  # mean coded luma of the face box (0–1)
MIN_EDGE_MARGIN = 0.10
"""Ask to move (``centre_yourself``) when the face box comes closer than this many face sizes to the
frame's edge: the render refuses a face cut by the edge (``engine.scene.face_problem``), and this margin
keeps a ready frame from being refused a moment later in the burst. Likewise ``MIN_FACE_HEIGHT`` (0.16)
is twice the refusal's ``engine.scene.MIN_FACE_FRACTION``."""
# Where the face should be vertically: the centre of the page's face outline, as a fraction of the frame
# height (kiosk_ui/static/kiosk.css ``.outline``: a 3:4 oval 26 % of a 16:9 stage wide, so 61.6 % of its
# height, at top 10 %, or at top 30 % in seated mode; the stage shows the frame's whole height). Portrait
# layouts put it at 42 % and 56 % (width 52 % of a 4:5 stage, top 14 % / 28 %); the targets are the
# landscape ones and the tolerance covers both.
FACE_CENTRE_Y_STANDING = 0.41
FACE_CENTRE_Y_SEATED = 0.61
MAX_VERTICAL_OFFSET = 0.25
"""Ask to move (``centre_yourself``) when the face box's centre is further than this (a fraction of the
frame height) above or below the target. Wide on purpose: standing, it accepts 0.16-0.66 of the height,
which keeps the bundled demo portraits ready through their whole drift (face centres at 0.22-0.41 of a
1280×720 frame, 0.57-0.62 of a 720×1280 one) and the test portraits standing at 80-100 % of the frame's
height (0.25-0.54); seated, 0.36-0.86, so a face in the upper third (a standing guest, a camera set for
standing) is asked down toward the lowered outline. The edge margin above still applies."""

GUIDANCE_CODES = ("no_face", "step_closer", "step_back", "centre_yourself", "look_at_camera", "more_light")


@dataclass(frozen=True)
class PreviewAnalysis:
    """What the live preview needs for one frame. ``mask`` is h×w float32 in [0, 1] at the
    segmentation size (256×256, stretched over the frame), or None when not requested; ``hints`` are
    ``GUIDANCE_CODES`` in priority order (empty = ready for the countdown); ``problem`` is
    ``engine.scene.scene_problem`` for the frame (e.g. ``step_apart`` when someone else is in the
    guest's picture), None when the render would take it as it is."""

    face: Face | None
    hints: tuple[str, ...]
    mask: npt.NDArray[np.float32] | None
    timings_ms: dict[str, float]
    problem: str | None = None

    @property
    def ready(self) -> bool:
        return not self.hints


def face_centre_target(seated: bool = False) -> float:
    """Where the face box's centre should be, as a fraction of the frame height from the top."""
    return FACE_CENTRE_Y_SEATED if seated else FACE_CENTRE_Y_STANDING


def pose_hints(face: Face | None, frame: RgbImage, *, seated: bool = False) -> tuple[str, ...]:
    """Guidance codes for the guest, most important first. ``seated``: the page shows the seated mode's
    lowered face outline, and the vertical target follows it (``face_centre_target``)."""
    if face is None:
        return ("no_face",)
    h, w = frame.shape[:2]
    hints: list[str] = []
    rel = face.height / h
    if rel < MIN_FACE_HEIGHT or face_problem(face, (w, h)) == "face_too_small":
        hints.append("step_closer")
    elif rel > MAX_FACE_HEIGHT:
        hints.append("step_back")
    cx = (face.bbox[0] + face.bbox[2]) / 2 / w
    cy = (face.bbox[1] + face.bbox[3]) / 2 / h
    if (
        abs(cx - 0.5) > MAX_CENTRE_OFFSET
        or abs(cy - face_centre_target(seated)) > MAX_VERTICAL_OFFSET
        or face_cut_margin(face, (w, h)) < MIN_EDGE_MARGIN
    ):
        hints.append("centre_yourself")
    (rx, ry), (lx, ly) = face.keypoints["right_eye"], face.keypoints["left_eye"]
    eye_d = max(math.dist((rx, ry), (lx, ly)), 1.0)
    nose_x = face.keypoints["nose_tip"][0]
    if abs(nose_x - (rx + lx) / 2) / eye_d > MAX_YAW:
        hints.append("look_at_camera")
    x0, y0, x1, y1 = (int(max(0, v)) for v in face.bbox)
    box = frame[y0 : min(h, y1), x0 : min(w, x1)]
    if box.size and float(cv2.cvtColor(box, cv2.COLOR_RGB2GRAY).mean()) / 255.0 < MIN_FACE_LUMA:
        hints.append("more_light")
    return tuple(hints)


class PreviewAnalyzer:
    """Selfie segmentation + BlazeFace for live frames. Owns its two backends."""

    def __init__(self, cfg: EngineConfig) -> None:
        self._det_backend: InferenceBackend | None = None
        self._seg: InferenceBackend | None = None
        self._det_backend = open_backend(
            FACE_DETECTION.name, verified_path(FACE_DETECTION, cfg.models_dir), cfg
        )
        try:
            self._seg = open_backend(
                SELFIE_SEGMENTATION.name, verified_path(SELFIE_SEGMENTATION, cfg.models_dir), cfg
            )
        except BaseException:
            self.close()
            raise
        self._detector = FaceDetector(self._det_backend)
        (self._seg_input,) = self._seg.input_shapes
        self._seg_output = self._seg.output_names[0]

    def segment(self, frame: RgbImage) -> npt.NDArray[np.float32]:
        """Person probability, 256×256 float32 in [0, 1] (the whole frame squeezed to a square, as
        MediaPipe's selfie model expects)."""
        if self._seg is None:
            raise RuntimeError("PreviewAnalyzer is closed")
        small = cv2.resize(frame, (SEGMENTATION_SIZE, SEGMENTATION_SIZE), interpolation=cv2.INTER_AREA)
        x = small.astype(np.float32)[None] * (1.0 / 255.0)
        out = self._seg.infer({self._seg_input: x})[self._seg_output]
        mask = out.reshape(SEGMENTATION_SIZE, SEGMENTATION_SIZE, -1)[..., -1]
        return np.ascontiguousarray(np.clip(mask, 0.0, 1.0), dtype=np.float32)

    def analyze(self, frame: RgbImage, *, with_mask: bool = True, seated: bool = False) -> PreviewAnalysis:
        """Detect the faces of ``frame`` and give the guest's pose hints (``pose_hints``, standing or
        ``seated``), with the person mask when ``with_mask``. Safe to call from one thread while another
        calls ``segment``: the two models are separate sessions."""
        t0 = time.perf_counter()
        faces = self._detector.detect(frame)
        face = primary_face(faces, (frame.shape[1], frame.shape[0]))
        t1 = time.perf_counter()
        mask = self.segment(frame) if with_mask else None
        t2 = time.perf_counter()
        hints = pose_hints(face, frame, seated=seated)
        return PreviewAnalysis(
            face,
            hints,
            mask,
            {
                "detect": (t1 - t0) * 1000,
                "segment": (t2 - t1) * 1000,
                "total": (time.perf_counter() - t0) * 1000,
            },
            scene_problem(faces, (frame.shape[1], frame.shape[0])),
        )

    def close(self) -> None:
        for b in (self._seg, self._det_backend):
            if b is not None:
                b.close()
        self._seg = self._det_backend = None

    def __enter__(self) -> PreviewAnalyzer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def replace_background(
    frame: RgbImage,
    mask: npt.NDArray[np.float32],
    backdrop: RgbImage,
    *,
    scratch: BlendScratch | None = None,
) -> RgbImage:
    """Live "what will it look like" preview: the frame over ``backdrop`` (same size) using the
    256×256 mask upscaled. Fast and approximate; the final render uses MODNet. With ``scratch`` the
    full-size buffers (the upscaled mask, its complement and the result) are the scratch's, reused from
    frame to frame: the result is then valid until the scratch's next use."""
    h, w = frame.shape[:2]
    if scratch is None:
        alpha = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
        inv = np.subtract(1.0, alpha, dtype=np.float32)
        return np.asarray(cv2.blendLinear(frame, backdrop, alpha, inv), dtype=np.uint8)
    alpha, inv, out = scratch.buffers(w, h)
    cv2.resize(mask, (w, h), dst=alpha, interpolation=cv2.INTER_LINEAR)
    np.subtract(1.0, alpha, out=inv)
    cv2.blendLinear(frame, backdrop, alpha, inv, dst=out)
    return out


class BlendScratch:
    """The full-size buffers of ``replace_background``, kept between live-preview frames: in the session
    worker every buffer of 128 KiB or more is a mapping of its own (``MALLOC_MMAP_THRESHOLD_``, so freed
    pixels go back to the kernel), and a fresh 1280×720 one costs ~1.3 ms of page faults, three per frame.
    The owner zeroes them with ``clear()`` when the preview stops."""

    def __init__(self) -> None:
        self._alpha: npt.NDArray[np.float32] | None = None
        self._inv: npt.NDArray[np.float32] | None = None
        self._out: RgbImage | None = None

    def buffers(self, w: int, h: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], RgbImage]:
        if self._alpha is None or self._inv is None or self._out is None or self._alpha.shape != (h, w):
            self.clear()
            self._alpha = np.empty((h, w), dtype=np.float32)
            self._inv = np.empty((h, w), dtype=np.float32)
            self._out = np.empty((h, w, 3), dtype=np.uint8)
        return self._alpha, self._inv, self._out

    def clear(self) -> None:
        """Zero every buffer (the result holds a guest's pixels, the mask their outline) and drop them."""
        for buf in (self._alpha, self._inv, self._out):
            if buf is not None:
                buf.fill(0)
        self._alpha = self._inv = self._out = None
