"""Face detection with MediaPipe BlazeFace (short range): letterbox, run, decode anchors, pick the guest."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from engine.backend import FloatArray, InferenceBackend
from engine.imageio import RgbImage

INPUT_SIZE = 128
# BlazeFace keypoint order (MediaPipe face_detection): the subject's right eye appears on the image's left.
KEYPOINT_NAMES = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_center",
    "right_ear_tragion",
    "left_ear_tragion",
)
MIN_SCORE = 0.5
NMS_IOU = 0.3


@dataclass(frozen=True)
class Face:
    """One detected face. Coordinates are pixels of the upright input photo (x right, y down)."""

    bbox: tuple[float, float, float, float]
    """x0, y0, x1, y1."""
    keypoints: dict[str, tuple[float, float]]
    score: float

    @property
    def width(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    def to_json(self) -> dict[str, object]:
        return {
            "bbox": [round(v, 1) for v in self.bbox],
            "keypoints": {k: [round(x, 1), round(y, 1)] for k, (x, y) in self.keypoints.items()},
            "score": round(self.score, 4),
        }


@lru_cache(maxsize=1)
def anchors() -> npt.NDArray[np.float32]:
    """896×2 anchor centres in [0, 1] for the short-range model.

    MediaPipe's SsdAnchorsCalculator options for face_detection_short_range: 4 layers, strides
    8, 16, 16, 16, one aspect ratio, fixed anchor size, offset 0.5, two anchors per cell
    (interpolated scale). Layers with the same stride share a grid, so the 16-px grid carries 6 per cell.
    """
    out: list[tuple[float, float]] = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = INPUT_SIZE // stride
        for y in range(cells):
            for x in range(cells):
                out.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell)
    return np.asarray(out, dtype=np.float32)


@dataclass(frozen=True)
class _Letterbox:
    scale: float  # input pixels per model pixel
    pad_x: float  # model pixels of padding on the left
    pad_y: float


def letterbox(rgb: RgbImage, size: int = INPUT_SIZE) -> tuple[FloatArray, _Letterbox]:
    """Fit the photo into size×size keeping aspect (zero padding), scaled to [-1, 1], NHWC 1×size×size×3."""
    h, w = rgb.shape[:2]
    s = size / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((size, size, 3), dtype=np.float32)
    px, py = (size - nw) // 2, (size - nh) // 2
    canvas[py : py + nh, px : px + nw] = small.astype(np.float32) * (2.0 / 255.0) - 1.0
    return canvas[None], _Letterbox(scale=1.0 / s, pad_x=px, pad_y=py)


def decode_detections(
    regressors: FloatArray, scores: FloatArray, box: _Letterbox, *, min_score: float = MIN_SCORE
) -> list[Face]:
    """Turn raw outputs (896×16 regressors, 896 logits) into faces in input-photo pixels, after
    weighted non-maximum suppression (MediaPipe's blending NMS: overlapping boxes are averaged by score)."""
    logits = np.clip(scores.reshape(-1).astype(np.float64), -100.0, 100.0)
    prob = 1.0 / (1.0 + np.exp(-logits))
    keep = np.nonzero(prob >= min_score)[0]
    if keep.size == 0:
        return []
    reg = regressors.reshape(-1, 16)[keep].astype(np.float64)
    anc = anchors()[keep].astype(np.float64)
    # Raw values are offsets in model pixels relative to the anchor centre (x_scale = 128).
    cx = reg[:, 0] / INPUT_SIZE + anc[:, 0]
    cy = reg[:, 1] / INPUT_SIZE + anc[:, 1]
    bw = reg[:, 2] / INPUT_SIZE
    bh = reg[:, 3] / INPUT_SIZE
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    kps = reg[:, 4:16].reshape(-1, 6, 2) / INPUT_SIZE + anc[:, None, :]
    p = prob[keep].astype(np.float64)

    faces: list[Face] = []
    order = np.argsort(-p)
    remaining = order
    while remaining.size:
        top = remaining[0]
        ious = _iou(boxes[top], boxes[remaining])
        group = remaining[ious >= NMS_IOU]
        remaining = remaining[ious < NMS_IOU]
        wts = p[group][:, None]
        b = (boxes[group] * wts).sum(0) / wts.sum()
        k = (kps[group] * wts[:, :, None]).sum(0) / wts.sum()
        faces.append(_to_input_pixels(b, k, float(p[top]), box))
    return faces


def _iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    x0 = np.maximum(a[0], b[:, 0])
    y0 = np.maximum(a[1], b[:, 1])
    x1 = np.minimum(a[2], b[:, 2])
    y1 = np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - inter
    return np.asarray(np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0), dtype=np.float64)


def _to_input_pixels(
    b: npt.NDArray[np.float64], k: npt.NDArray[np.float64], score: float, box: _Letterbox
) -> Face:
    def px(x: float, y: float) -> tuple[float, float]:
        return ((x * INPUT_SIZE - box.pad_x) * box.scale, (y * INPUT_SIZE - box.pad_y) * box.scale)

    x0, y0 = px(b[0], b[1])
    x1, y1 = px(b[2], b[3])
    points = {name: px(float(k[i, 0]), float(k[i, 1])) for i, name in enumerate(KEYPOINT_NAMES)}
    return Face(bbox=(x0, y0, x1, y1), keypoints=points, score=score)


class FaceDetector:
    """BlazeFace on a backend. Does not own the backend (the engine closes it)."""

    def __init__(self, backend: InferenceBackend) -> None:
        self._backend = backend
        (self._input,) = backend.input_shapes

    def detect(self, rgb: RgbImage) -> list[Face]:
        """All faces above the score threshold, best first (coordinates in ``rgb`` pixels).

        The short-range model wants a face to fill a good part of its 128×128 input. A guest a metre or
        two from a landscape kiosk camera is small in the whole frame, so when the full view finds no
        face we look again in centred square windows (where a guest stands), each mapped back."""
        h, w = rgb.shape[:2]
        for side_frac, centre_y in ((None, 0.0), (1.0, 0.5), (0.6, 0.45), (0.4, 0.4)):
            if side_frac is None:
                region, ox, oy = rgb, 0, 0
            else:
                side = int(min(h, w) * side_frac)
                if side < 64 or (side_frac == 1.0 and h == w):
                    continue
                ox = (w - side) // 2
                oy = int(np.clip(h * centre_y - side / 2, 0, h - side))
                region = rgb[oy : oy + side, ox : ox + side]
            faces = self._detect_region(region)
            if faces:
                return [self._refine(rgb, _shift(f, ox, oy)) for f in faces]
        return []

    def _refine(self, rgb: RgbImage, face: Face) -> Face:
        """Look again at a small face through a window around it: box and keypoints from a 128-pixel view
        in which the face is a dozen pixels tall are too coarse to frame a headshot consistently."""
        h, w = rgb.shape[:2]
        if face.height >= 0.3 * max(h, w) or face.height <= 0:
            return face
        side = int(min(max(3.5 * face.height, 64), h, w))
        cx, cy = (face.bbox[0] + face.bbox[2]) / 2, (face.bbox[1] + face.bbox[3]) / 2
        ox = int(np.clip(cx - side / 2, 0, w - side))
        oy = int(np.clip(cy - side / 2, 0, h - side))
        closer = self._detect_region(rgb[oy : oy + side, ox : ox + side])
        if not closer:
            return face
        return _shift(closer[0], ox, oy)

    def detect_view(self, rgb: RgbImage) -> list[Face]:
        """One BlazeFace run on the whole of ``rgb`` (letterboxed to 128×128), best first: no search
        windows and no second look at small faces. For a crop that is already about a face's size (the
        matting input), where only the boxes matter."""
        return self._detect_region(rgb)

    def _detect_region(self, rgb: RgbImage) -> list[Face]:
        tensor, box = letterbox(rgb)
        out = self._backend.infer({self._input: tensor})
        reg, cls = _split_outputs(out)
        return sorted(decode_detections(reg, cls, box), key=lambda f: -f.score)


def _shift(face: Face, dx: float, dy: float) -> Face:
    if not dx and not dy:
        return face
    x0, y0, x1, y1 = face.bbox
    return Face(
        bbox=(x0 + dx, y0 + dy, x1 + dx, y1 + dy),
        keypoints={k: (x + dx, y + dy) for k, (x, y) in face.keypoints.items()},
        score=face.score,
    )


def _split_outputs(out: dict[str, FloatArray]) -> tuple[FloatArray, FloatArray]:
    reg = cls = None
    for arr in out.values():
        if arr.shape[-1] == 16:
            reg = arr
        elif arr.shape[-1] == 1 or arr.ndim == 2:
            cls = arr
    if reg is None or cls is None:
        raise ValueError(f"unexpected face detector outputs: {[a.shape for a in out.values()]}")
    return reg, cls


def primary_face(faces: list[Face], image_size: tuple[int, int]) -> Face | None:
    """The guest: the largest face, with a bonus for being near the centre (people queueing behind them
    are smaller and off-centre). ``image_size`` is (width, height)."""
    if not faces:
        return None
    w, h = image_size

    def merit(f: Face) -> float:
        cx = float((f.bbox[0] + f.bbox[2]) / 2 / w - 0.5)
        cy = float((f.bbox[1] + f.bbox[3]) / 2 / h - 0.5)
        return float(f.width * f.height * (1.0 - 0.5 * min(1.0, math.hypot(cx, cy))))

    return max(faces, key=merit)
