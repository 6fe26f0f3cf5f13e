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


def body_prior(box: Box, shape: tuple[int, int], grow: int = 0) -> npt.NDArray[np.uint8]:
    """Where a person whose (upright) face box is ``box`` can plausibly be, as an h×w 0/1 mask of
    ``shape``: the head with room for hair and a hat, the neck, and shoulders widening to about four
    face-box widths (measured on the test portraits: shoulders span 1.6–2.6 box widths). Generous on
    purpose: it only says where a matte pixel is certainly *not* this person.

    ``grow``: the shape grown by a disc of this radius (pixels), drawn as its outline in a line
    ``2·grow + 1`` wide with round joins: the same pixels as thresholding the distance to the shape to
    within the line drawing's rounding (under one percent more), at a tenth of the cost."""
    x0, y0, x1, y1 = box
    fw, fh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    cx = (x0 + x1) / 2
    h = shape[0]
    mask = np.zeros(shape, dtype=np.uint8)
    head = ((round(cx), round(y0 + 0.3 * fh)), (round(0.9 * fw), round(1.15 * fh)))
    cv2.ellipse(mask, head[0], head[1], 0, 0, 360, 1, thickness=-1)
    if grow > 0:
        cv2.ellipse(mask, head[0], head[1], 0, 0, 360, 1, thickness=2 * grow + 1)
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
    outline = np.round(torso).astype(np.int32)
    cv2.fillPoly(mask, [outline], 1)
    if grow > 0:
        cv2.polylines(mask, [outline], True, 1, thickness=2 * grow + 1)
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


GUEST_TORSO = 0.45
"""Half width, in guest face widths, of the column below the chin that seeds the guest down to the
frame's edge (inside the core that a flood never takes anyway): the flood starts from the guest's
jacket, not only from the neck."""
BESIDE_POSTERIOR = 0.75
"""A pixel on a neighbour's side of the dividing line seeds "someone else" unless its colour is clearly
the guest's rather than that neighbour's (``_posterior`` of the guest's colours against the neighbour's
face and far side at least this): the guest's navy shoulder in front of an orange suit is the guest's;
beside another navy suit it is anyone's, and the line decides."""
CORE_POSTERIOR = 0.3
"""The guest's core (head and chest column) keeps a pixel the flood gave someone else unless its colour
says so clearly (``_posterior`` below this): a neighbour's orange sleeve across the guest's navy jacket
goes, a shadow on the guest's own jacket stays."""
BESIDE_DISTANCE = 1.2
"""Another face whose centre is at least this many guest face widths to the side stands beside the
guest whatever its size (a bulky suit makes a face small for its body), not behind."""
BESIDE_MARGIN = 0.2
"""``_beside`` leaves a strip this many guest face widths wide each side of the dividing line unmarked:
there the flood (the photo's edges and colours) decides where one person ends."""


def _stands_beside(guest: Box, other: Box) -> bool:
    """Whether ``other`` (a face box) belongs to someone beside the guest rather than behind them: as
    tall as ``SAME_ROW`` of the guest's face, or ``BESIDE_DISTANCE`` face widths to the side."""
    gw = max(guest[2] - guest[0], 1.0)
    dx = abs((other[0] + other[2]) / 2 - (guest[0] + guest[2]) / 2)
    return other[3] - other[1] >= SAME_ROW * (guest[3] - guest[1]) or dx >= BESIDE_DISTANCE * gw


def _beside(
    mask: npt.NDArray[np.int32],
    near: npt.NDArray[np.int32],
    far: npt.NDArray[np.int32],
    guest: Box,
    other: Box,
) -> None:
    """Mark (in place) in ``mask`` the part of the frame that belongs to ``other``, a person standing
    beside the guest: everything on their side of a vertical dividing line, from the top of their head
    down; in ``far`` the part of that at least three margins from the line (their
    body, not the guest's shoulder even when the guest stands in front); and in ``near`` the guest's
    side below the guest's chin. The line divides the gap between the two faces' centres in proportion
    to the face widths (shoulders scale with the face); the marks stop ``BESIDE_MARGIN`` guest face
    widths short of it. Shoulder to shoulder, neither body prior nor colour says where one jacket ends
    and the other begins (two dark suits); the positions of the faces do."""
    gw, ow = max(guest[2] - guest[0], 1.0), max(other[2] - other[0], 1.0)
    gcx, ocx = (guest[0] + guest[2]) / 2, (other[0] + other[2]) / 2
    line = gcx + (ocx - gcx) * gw / (gw + ow)
    margin = BESIDE_MARGIN * gw
    h, w = mask.shape
    top = int(np.clip(round(other[1] - 0.5 * (other[3] - other[1])), 0, h))
    chin = int(np.clip(round(guest[3] + 0.1 * (guest[3] - guest[1])), 0, h))

    def x(at: float) -> int:
        return int(np.clip(round(at), 0, w))

    if ocx > gcx:
        mask[top:, x(line + margin) :] = 1
        far[top:, x(line + 3 * margin) :] = 1
        near[chin:, x(gcx) : x(line - margin)] = 1
    else:
        mask[top:, : x(line - margin)] = 1
        far[top:, : x(line - 3 * margin)] = 1
        near[chin:, x(line + margin) : x(gcx)] = 1


def _colour_index(image: RgbImage) -> npt.NDArray[np.intp]:
    """Each pixel's bin in a coarse 8×8×8 RGB histogram."""
    q = (image >> 5).astype(np.intp)
    return np.asarray(q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2], dtype=np.intp)


def _posterior(
    image: RgbImage, guest: npt.NDArray[np.bool_], other: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float32]:
    """How much more each pixel's colour looks like the ``guest`` sample's than the ``other`` sample's
    (h×w float32 in [0, 1], 0.5 = no telling): a per-pixel posterior from two 8×8×8 colour histograms
    (one count added to every bin, equal priors), smoothed over a few pixels."""
    idx = _colour_index(image)
    bins = 512
    hg = np.bincount(idx[guest], minlength=bins).astype(np.float32) + 1.0
    ho = np.bincount(idx[other], minlength=bins).astype(np.float32) + 1.0
    pg, po = hg / hg.sum(), ho / ho.sum()
    post = (pg / (pg + po))[idx].astype(np.float32)
    return np.asarray(cv2.GaussianBlur(post, (0, 0), sigmaX=1.5), dtype=np.float32)


def _relief(image: RgbImage, post: npt.NDArray[np.float32]) -> RgbImage:
    """The image the watershed floods (h×w×3 uint8): the photo's luminance plus, twice, the colour
    posterior (``_posterior``). ``cv2.watershed`` steps between neighbours by their largest channel
    difference, so a flood crosses a luminance edge *or* a change of owner reluctantly, and runs
    freely through a bystander's sleeve that only has faint edges towards the guest's jacket."""
    p8 = np.clip(post * 255 + 0.5, 0, 255).astype(np.uint8)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(np.dstack([grey, p8, p8]))


def keep_guest(alpha: AlphaMap, image: RgbImage, guest: Box, others: Sequence[Box]) -> GuestMatte:
    """Remove everyone but the guest from a portrait matte.

    ``alpha`` (h×w float32 in [0, 1]) is MODNet's matte of ``image`` (h×w×3 uint8 RGB) at the network
    size; ``guest`` and ``others`` are face boxes (x0, y0, x1, y1) in the same pixels, the guest upright
    (the framing has levelled the eyes). MODNet mattes *every* person; this decides which matte pixels
    belong to the guest, in four steps (1-2 ms at the CPU matte size when nobody else is marked in step
    1, which skips steps 2 and 3; about 10 ms with two neighbours, on a 2-core x86 machine):

    1. Seeds. The guest's: the centre of their face and a column under the chin (neck and chest).
       Someone else's: each other detected face; matte outside the guest's ``body_prior`` (a body can't
       be there, so a bystander's shoulder, arm or hair beside the guest is marked even when their face
       is out of the picture or hidden); and, for a face that stands *beside* the guest
       (``_stands_beside``), the column under their chin and everything on their side of a dividing
       line between the two faces (``_beside``). Clear background (α < 0.15) is a third seed.
    2. Colours decide what geometry cannot. A colour posterior (``_posterior``: 8×8×8 histograms of
       the guest's face and neck against the others' seeds) keeps the guest's torso column only where
       its colour is the guest's (not a neighbour's sleeve across the jacket); a neighbour's side of the
       line seeds them only where its colour is not clearly the guest's rather than that neighbour's
       own (the guest's navy shoulder in front of an orange suit stays the guest's; next to another navy
       suit the line decides, ``BESIDE_POSTERIOR``); the guest's side of the line, below the chin,
       seeds the guest where its colour is the guest's.
    3. Split where people touch or overlap: a marker-controlled watershed (``cv2.watershed``) floods
       the unmarked pixels from the seeds over a relief of the photo's luminance and the posterior, so
       the flood lines meet where the owner's colours change (a dark jacket against an orange sleeve).
       Pixels flooded by "other" leave the matte through a 1-pixel blur (no seam along the cut; the
       guest's own hair edges keep their soft alpha). The guest's core (head and a chest column 1.2
       face widths wide) keeps what the flood took unless its colour is clearly someone else's
       (``CORE_POSTERIOR``): losing part of the guest is worse than keeping a bit of a sleeve.
    4. Connectivity: what remains of the matte (α > 0.1) that is not connected to the guest's seed is
       dropped with its faint fringe (a bystander standing apart, a stray object).

    MediaPipe's selfie segmentation is not used here: like MODNet's matte it is one "person" class for
    everybody and cannot tell two touching people apart; the detected faces, the body prior and the
    colours are what separate them. Measured on the scenes of ``tests/engine/scenes.py`` (share of the
    headshot that is a bystander's / share of the guest lost) in ``tests/engine/test_scenes.py``.
    """
    h, w = alpha.shape
    fg = alpha > 0.5
    markers = np.zeros((h, w), dtype=np.int32)
    markers[alpha < 0.15] = _BACKGROUND
    fw = max(guest[2] - guest[0], 1.0)
    # Grown by a margin of 0.15 face widths: the prior is a drawing, people are not.
    prior = body_prior(guest, (h, w), grow=max(3, round(0.15 * fw)))
    markers[fg & (prior == 0)] = _OTHER
    guest_seed = np.zeros((h, w), dtype=np.int32)
    _ellipse(guest_seed, guest, 0.6, 1)
    _column(guest_seed, guest, 0.3, depth=0.8)  # neck and upper chest
    torso = np.zeros((h, w), dtype=np.int32)
    _column(torso, guest, GUEST_TORSO)
    # The guest's core (head and a chest column 1.2 face widths wide) is never taken by a flood unless
    # its colour is someone else's: losing part of the guest is worse than keeping a bit of sleeve.
    core = np.zeros((h, w), dtype=np.int32)
    _ellipse(core, guest, 1.3, 1)
    _column(core, guest, 0.6)
    chest = np.zeros((h, w), dtype=np.int32)  # the guest's chest is never another person's column
    _column(chest, guest, 1.0)
    other_seed = np.zeros((h, w), dtype=np.int32)
    near = np.zeros((h, w), dtype=np.int32)
    sides: list[tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]] = []
    for box in others:
        _ellipse(other_seed, box, 0.7, 1)
        if _stands_beside(guest, box):
            # Their chest is probably theirs, and so is what lies on their side of the line between the
            # two (``_beside``); both only where the colours agree (below).
            side = np.zeros((h, w), dtype=np.int32)
            far = np.zeros((h, w), dtype=np.int32)
            _column(side, box, 0.4)
            side[chest > 0] = 0
            _beside(side, near, far, guest, box)
            sides.append((side, far))
    beside = np.zeros((h, w), dtype=np.int32)
    for mark, _ in sides:
        beside |= mark
    markers[(other_seed > 0) & fg] = _OTHER
    guest_core = (guest_seed > 0) & fg & (other_seed == 0)
    if not guest_core.any():
        return GuestMatte(alpha, 0.0)
    markers[guest_core] = _GUEST
    beside_px = (beside > 0) & fg & (core == 0) & (markers == 0)
    if not (markers == _OTHER).any() and not beside_px.any():
        # Nobody else is marked (no other face, no matte outside the guest's body): the flood could only
        # split guest from background, and the cut would be empty. Same result, without steps 2 and 3.
        return _connected_to_guest(alpha, alpha.copy(), guest_core)
    # Colours, in two rounds. First the guest's face and neck against everything marked as someone
    # else's, a neighbour's side included (mostly their clothes): the torso column below the neck seeds
    # the guest where its colour is the guest's (not where a neighbour's sleeve covers it).
    post = _posterior(image, guest_core, (markers == _OTHER) | beside_px)
    torso_px = (
        ((torso > 0) | ((near > 0) & (prior > 0))) & fg & (markers == 0) & (beside == 0) & (post >= 0.5)
    )
    markers[torso_px] = _GUEST
    guest_core |= torso_px
    # Then, with the guest's jacket in their sample, each neighbour's side seeds "someone else" except
    # where its colour is clearly the guest's rather than that neighbour's: where the guest stands in
    # front and their shoulder reaches past the line, it continues the guest's jacket (unlike the
    # neighbour's orange suit) and the flood gives it to the guest; two dark suits side by side are
    # told apart by the line alone.
    for mark, far_mark in sides:
        side_px = (mark > 0) & beside_px
        # Their colours: their face and the part of their side far from the line.
        sample = (((far_mark > 0) & beside_px) | (other_seed > 0)) & fg & (mark > 0)
        if side_px.any() and sample.any():
            own = _posterior(image, guest_core, sample)
            markers[side_px & (markers == 0) & (own < BESIDE_POSTERIOR)] = _OTHER
    post = _posterior(image, guest_core, markers == _OTHER)
    labels = cv2.watershed(_relief(image, post), markers)
    other_u8 = np.asarray(labels == _OTHER, dtype=np.uint8)
    other_u8[(core > 0) & (other_seed == 0) & (post >= CORE_POSTERIOR)] = 0
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
