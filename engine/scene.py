"""Scenes with more than a guest in them: refusal checks per frame, and keeping only the guest's matte.

Two jobs, both about the photo as a whole rather than one face:

* ``scene_problem`` / ``face_problem``: pure arithmetic on detector boxes that says whether a frame can
  make a real headshot (``face_too_small``, ``face_cut_off``) and whether someone else is in the guest's
  picture (``step_apart``). The CLI refuses what ``face_problem`` refuses; the kiosk calls
  ``scene_problem`` on each burst frame so it never keeps a frame the CLI would refuse.
* ``keep_guest``: bystanders never consented, so the matte keeps only the person whose face was chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from engine.detect import Face, primary_face
from engine.framing import PRESETS, Framing, Preset, frame_face
from engine.imageio import RgbImage
from engine.matting import AlphaMap

MIN_FACE_FRACTION = 0.08
"""Refuse (``face_too_small``) a guest whose face box is shorter than this fraction of the frame's shorter
side. Below it the photo is a scene, not a portrait (a street, a crowd): the "guest" may be anyone and the
headshot would be a soft upscale. The live preview asks to step closer already at 0.16 of the frame
height (``engine.preview.MIN_FACE_HEIGHT``), so a frame the guidance accepts is never refused."""
MIN_FACE_PIXELS = 32
"""And refuse a face box shorter than this many photo pixels whatever the frame size: the square preset
would have to enlarge it more than 8× (its face box is 276 px tall)."""
CUT_TOLERANCE = 0.05
"""Refuse (``face_cut_off``) when a side of the face box lies beyond the photo's edge by more than this
fraction of the face size (detector boxes of a whole face at the edge overshoot by a few pixels), or an
eye keypoint lies outside the photo."""
SAME_ROW = 0.65
"""Another face at least this tall relative to the guest's stands beside the guest, not behind: the
column under their chin is theirs (a smaller face is further back, and its chest is hidden by the guest)."""
STEP_APART_OVERLAP = 0.25
"""``step_apart`` when at least this fraction of another face's box falls inside the guest's headshot."""

REFUSAL_CODES = ("no_face", "face_too_small", "face_cut_off")
SCENE_CODES = (*REFUSAL_CODES, "step_apart")

_GUEST, _OTHER, _BACKGROUND = 1, 2, 3  # watershed labels


def face_problem(face: Face, frame_size: tuple[int, int]) -> str | None:
    """``face_too_small``, ``face_cut_off`` or None for the chosen face in a frame of ``frame_size``
    (width, height) pixels. Pure arithmetic, microseconds."""
    w, h = frame_size
    if face.height < MIN_FACE_FRACTION * min(w, h) or face.height < MIN_FACE_PIXELS:
        return "face_too_small"
    if face_cut_margin(face, frame_size) < -CUT_TOLERANCE:
        return "face_cut_off"
    for name in ("right_eye", "left_eye"):
        x, y = face.keypoints[name]
        if not (0 <= x <= w and 0 <= y <= h):
            return "face_cut_off"
    return None


def face_cut_margin(face: Face, frame_size: tuple[int, int]) -> float:
    """How far the face box stays inside the photo, in face sizes: the smallest distance from a box side
    to the photo's edge, negative when the box pokes out. The preview asks to move before this gets small."""
    w, h = frame_size
    x0, y0, x1, y1 = face.bbox
    size = max(face.width, face.height, 1.0)
    return min(x0, y0, w - x1, h - y1) / size


def scene_problem(
    faces: Sequence[Face], frame_size: tuple[int, int], preset: str | Preset = "square"
) -> str | None:
    """What stops this frame from making a headshot of only the guest, or None when it is fine.

    ``faces``: every face the detector found in the frame (``HeadshotEngine.detect_faces``), in any
    order; the guest is chosen as the render chooses it (``primary_face``). ``frame_size``: (width,
    height) of the frame in pixels, the coordinate system of the face boxes. ``preset``: the crop whose
    framing box is checked for other faces.

    Returns, most important first: ``no_face``, ``face_too_small``, ``face_cut_off`` (the CLI and
    ``HeadshotEngine.find_face`` refuse these), ``step_apart`` (another face overlaps the guest's framing
    box: the render removes that person, but a frame without them is better; keep looking). Pure
    arithmetic on the boxes: about 0.05 ms per call, no model run, no pixels."""
    guest = primary_face(list(faces), frame_size)
    if guest is None:
        return "no_face"
    problem = face_problem(guest, frame_size)
    if problem is not None:
        return problem
    p = PRESETS[preset] if isinstance(preset, str) else preset
    framing = frame_face(guest, frame_size, p)
    for other in faces:
        if other is not guest and _inside_fraction(other, framing) >= STEP_APART_OVERLAP:
            return "step_apart"
    return None


def _inside_fraction(face: Face, framing: Framing) -> float:
    """Fraction of ``face``'s box (mapped to output pixels, axis-aligned hull) inside the output frame."""
    x0, y0, x1, y1 = face.bbox
    pts = [framing.map_point(x, y) for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))]
    xs, ys = [q[0] for q in pts], [q[1] for q in pts]
    area = (max(xs) - min(xs)) * (max(ys) - min(ys))
    if area <= 0:
        return 0.0
    p = framing.preset
    iw = max(0.0, min(max(xs), p.width) - max(min(xs), 0.0))
    ih = max(0.0, min(max(ys), p.height) - max(min(ys), 0.0))
    return iw * ih / area


# -- keeping only the guest ---------------------------------------------------------------------------

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class GuestMatte:
    """``alpha`` is the matte with everyone but the guest removed (same shape as the input matte);
    ``removed`` is the matte area taken away, as a fraction of the guest's kept area (0 = nobody else)."""

    alpha: AlphaMap
    removed: float


def body_prior(box: Box, shape: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """Where a person whose (upright) face box is ``box`` can plausibly be, as an h×w 0/1 mask of
    ``shape``: the head with room for hair and a hat, the neck, and shoulders widening to about four
    face-box widths (measured on the test portraits: shoulders span 1.6–2.6 box widths). Generous on
    purpose: it only says where a matte pixel is certainly *not* this person."""
    x0, y0, x1, y1 = box
    fw, fh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    cx = (x0 + x1) / 2
    h = shape[0]
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.ellipse(
        mask,
        (round(cx), round(y0 + 0.3 * fh)),
        (round(0.9 * fw), round(1.15 * fh)),
        0,
        0,
        360,
        1,
        thickness=-1,
    )
    chin = y1
    bottom = max(h, chin + 0.6 * fh)
    torso = np.array(
        [
            (cx - 0.6 * fw, chin - 0.2 * fh),
            (cx + 0.6 * fw, chin - 0.2 * fh),
            (cx + 1.6 * fw, chin + 0.6 * fh),
            (cx + 2.0 * fw, bottom),
            (cx - 2.0 * fw, bottom),
            (cx - 1.6 * fw, chin + 0.6 * fh),
        ],
        dtype=np.float64,
    )
    cv2.fillPoly(mask, [np.round(torso).astype(np.int32)], 1)
    return mask


def _ellipse(mask: npt.NDArray[np.int32], box: Box, frac: float, value: int) -> None:
    x0, y0, x1, y1 = box
    axes = (max(1, round((x1 - x0) * frac / 2)), max(1, round((y1 - y0) * frac / 2)))
    cv2.ellipse(mask, (round((x0 + x1) / 2), round((y0 + y1) / 2)), axes, 0, 0, 360, value, thickness=-1)


def _column(mask: npt.NDArray[np.int32], box: Box, half_width: float, depth: float | None = None) -> None:
    """Mark a column under the chin of ``box`` (neck and chest), ``half_width`` face widths each side,
    ``depth`` face heights deep (None: to the bottom)."""
    x0, y0, x1, y1 = box
    fw, fh, cx = max(x1 - x0, 1.0), max(y1 - y0, 1.0), (x0 + x1) / 2
    h, w = mask.shape
    c0, c1 = int(np.clip(round(cx - half_width * fw), 0, w)), int(np.clip(round(cx + half_width * fw), 0, w))
    r0 = int(np.clip(round(y1 + 0.1 * fh), 0, h))
    r1 = h if depth is None else int(np.clip(round(y1 + depth * fh), r0, h))
    mask[r0:r1, c0:c1] = 1


def _colour_index(image: RgbImage) -> npt.NDArray[np.intp]:
    """Each pixel's bin in a coarse 8×8×8 RGB histogram."""
    q = (image >> 5).astype(np.intp)
    return np.asarray(q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2], dtype=np.intp)


def _relief(image: RgbImage, guest: npt.NDArray[np.bool_], other: npt.NDArray[np.bool_]) -> RgbImage:
    """The image the watershed floods (h×w×3 uint8): the photo's luminance plus, twice, how much more
    each pixel's colour looks like the guest's seeds than the others' (a per-pixel posterior from two
    8×8×8 colour histograms, smoothed). ``cv2.watershed`` steps between neighbours by their largest
    channel difference, so a flood crosses a luminance edge *or* a change of owner reluctantly, and runs
    freely through a bystander's sleeve that only has faint edges towards the guest's jacket."""
    idx = _colour_index(image)
    bins = 512
    hg = np.bincount(idx[guest], minlength=bins).astype(np.float32) + 1.0
    ho = np.bincount(idx[other], minlength=bins).astype(np.float32) + 1.0
    pg, po = hg / hg.sum(), ho / ho.sum()
    post = (pg / (pg + po))[idx].astype(np.float32)
    post = np.asarray(cv2.GaussianBlur(post, (0, 0), sigmaX=1.5), dtype=np.float32)
    p8 = np.clip(post * 255 + 0.5, 0, 255).astype(np.uint8)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(np.dstack([grey, p8, p8]))


def keep_guest(alpha: AlphaMap, image: RgbImage, guest: Box, others: Sequence[Box]) -> GuestMatte:
    """Remove everyone but the guest from a portrait matte.

    ``alpha`` (h×w float32 in [0, 1]) is MODNet's matte of ``image`` (h×w×3 uint8 RGB) at the network
    size; ``guest`` and ``others`` are face boxes (x0, y0, x1, y1) in the same pixels, the guest upright
    (the framing has levelled the eyes). MODNet mattes *every* person; this decides which matte pixels
    belong to the guest, in four steps (8–9 ms at the CPU matte size on a busy 2-core x86 machine; when
    nobody else is marked in step 1, steps 2 and 3 are skipped: a few ms):

    1. Seeds. The guest's seed is the centre of their face and a short column under the chin (neck and
       upper chest, 0.6 face widths wide). Each other detected face gives an "other" seed, plus the
       column under their chin when their face is at least ``SAME_ROW`` of the guest's (beside the
       guest, not behind). Matte pixels outside the guest's ``body_prior`` (head, shoulders, chest) are
       "other" too: a body can't be there, so a bystander's shoulder, arm or hair beside the guest is
       marked even when their face is out of the picture or hidden. Clear background (α < 0.15) is a
       third seed.
    2. Split where people touch or overlap: a marker-controlled watershed (``cv2.watershed``) floods
       the unmarked pixels from the seeds over a relief made of the photo's luminance and a colour
       posterior (guest seeds vs other seeds, see ``_relief``), so the flood lines meet where the
       owner's colours change (a dark jacket against an orange sleeve), not just at any edge.
    3. Cut softly: pixels flooded by "other" leave the matte through a 1-pixel blur (no seam along the
       cut; the guest's own hair edges keep their soft alpha). The guest's core (head and a chest
       column 1.2 face widths wide) is only ever taken by another face's own seed: losing part of the
       guest is worse than keeping a sleeve that crosses their chest.
    4. Connectivity: what remains of the matte (α > 0.1) that is not connected to the guest's seed is
       dropped with its faint fringe (a bystander standing apart, a stray object).

    MediaPipe's selfie segmentation is not used here: like MODNet's matte it is one "person" class for
    everybody and cannot tell two touching people apart; the detected faces, the body prior and the
    colours are what separate them.
    """
    h, w = alpha.shape
    fg = alpha > 0.5
    markers = np.zeros((h, w), dtype=np.int32)
    markers[alpha < 0.15] = _BACKGROUND
    prior = body_prior(guest, (h, w))
    fw = max(guest[2] - guest[0], 1.0)
    pad = max(3, round(0.15 * fw))
    # Grown by a disc of radius ``pad``: the exact Euclidean distance to the prior, thresholded (a few
    # times cheaper than cv2.dilate with an elliptic kernel this large, and the same to within a few pixels).
    dist = cv2.distanceTransform(1 - prior, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    prior = np.asarray(dist <= pad + 0.5, dtype=np.uint8)
    markers[fg & (prior == 0)] = _OTHER
    guest_seed = np.zeros((h, w), dtype=np.int32)
    _ellipse(guest_seed, guest, 0.6, 1)
    # Neck and upper chest only: lower down, a bystander's arm in front of the guest's chest is common,
    # and a seed on it would hand the whole arm to the guest. The flood reaches the lower chest anyway.
    _column(guest_seed, guest, 0.3, depth=0.8)
    # The guest's own chest (the middle of their body prior) is never another person's seed.
    chest = np.zeros((h, w), dtype=np.int32)
    _column(chest, guest, 1.0)
    other_seed = np.zeros((h, w), dtype=np.int32)
    for box in others:
        _ellipse(other_seed, box, 0.7, 1)
        if box[3] - box[1] >= SAME_ROW * (guest[3] - guest[1]):
            # About as large as the guest: beside them rather than behind, so their chest is theirs.
            column = np.zeros((h, w), dtype=np.int32)
            _column(column, box, 0.4)
            other_seed[(column > 0) & (chest == 0) & (guest_seed == 0)] = 1
    markers[(other_seed > 0) & fg] = _OTHER
    guest_core = (guest_seed > 0) & fg & (other_seed == 0)
    if not guest_core.any():
        return GuestMatte(alpha, 0.0)
    markers[guest_core] = _GUEST
    other_core = markers == _OTHER
    if not other_core.any():
        # Nobody else is marked (no other face, no matte outside the guest's body): the flood could only
        # split guest from background, and the cut would be empty. Same result, without steps 2 and 3.
        return _connected_to_guest(alpha, alpha.copy(), guest_core)
    relief = _relief(image, guest_core, other_core)
    labels = cv2.watershed(relief, markers)
    other_u8 = np.asarray(labels == _OTHER, dtype=np.uint8)
    # The guest's core (head and a chest column 1.2 face widths wide) is never taken by a flood, only by
    # another face's own seed: losing part of the guest is worse than keeping a sleeve that crosses them.
    core = np.zeros((h, w), dtype=np.int32)
    _ellipse(core, guest, 1.3, 1)
    _column(core, guest, 0.6)
    other_u8[(core > 0) & (other_seed == 0)] = 0
    # Watershed leaves its dividing lines as -1: those touching "other" go with it (else a one-pixel
    # outline of the removed person would stay behind).
    other_u8 |= (labels == -1) & (cv2.dilate(other_u8, np.ones((3, 3), np.uint8)) > 0)
    other = other_u8.astype(np.float32)
    cut = np.asarray(cv2.GaussianBlur(other, (0, 0), sigmaX=1.0), dtype=np.float32)
    kept = np.asarray(alpha * (1.0 - np.maximum(cut, other)), dtype=np.float32)
    return _connected_to_guest(alpha, kept, guest_core)


def _connected_to_guest(alpha: AlphaMap, kept: AlphaMap, guest_core: npt.NDArray[np.bool_]) -> GuestMatte:
    """Step 4 of ``keep_guest``: keep the matte connected to the guest's seed, drop the rest with its
    fringe. ``kept`` (the matte after the cut) is modified in place."""
    solid = np.asarray(kept > 0.1, dtype=np.uint8)
    count, comp = cv2.connectedComponents(solid, connectivity=8)
    keep = np.zeros(count, dtype=np.uint8)
    keep[comp[guest_core & (solid > 0)]] = 1
    keep[0] = 0  # label 0 is everything below the threshold
    body = keep[comp]  # a lookup per pixel: np.isin sorts
    kept *= np.asarray(
        cv2.dilate(body, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))), dtype=np.float32
    )
    before, after = float(alpha.sum()), float(kept.sum())
    return GuestMatte(np.asarray(kept, dtype=np.float32), max(0.0, before - after) / max(after, 1.0))


def boxes_in_crop(faces: Sequence[Face], framing: Framing, size: tuple[int, int]) -> list[Box]:
    """Face boxes mapped through ``framing`` into a crop of ``size`` (w, h) scaled from the output
    frame: the axis-aligned hull of the four mapped corners."""
    fx, fy = size[0] / framing.preset.width, size[1] / framing.preset.height
    out: list[Box] = []
    for f in faces:
        x0, y0, x1, y1 = f.bbox
        pts = [framing.map_point(x, y) for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))]
        xs, ys = [q[0] * fx for q in pts], [q[1] * fy for q in pts]
        out.append((min(xs), min(ys), max(xs), max(ys)))
    return out


def box_iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
