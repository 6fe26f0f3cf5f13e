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


GUEST_COLLAR = (0.3, 0.5)
"""The guest's seed below the chin: a column this many face widths each side of the face's centre and
this many face heights deep (neck, collar, the top of the shirt or tie). Certain enough to seed the
flood and to sample the guest's colours; deeper down, a neighbour standing in front may cover the
guest's chest up to the tie (the side-by-side scene), and the guest's own clothes are left to the flood."""
OTHER_COLLAR = (0.3, 0.5)
"""The same column under the chin of a neighbour standing beside the guest (outside the guest's chest,
``CHEST``): certainly theirs, and a sample of their clothes."""
CHEST = 1.0
"""Half width, in guest face widths, of the column under the guest's chin where no neighbour's collar
seed is planted."""
DRESSED_ALIKE = 0.7
"""A neighbour is dressed like the guest when the colour histograms of their certain pixels (face,
collar, the far side of the dividing line) and of the guest's (face, neck and upper chest) overlap at
least this much (Bhattacharyya coefficient, 0..1). Measured on the scenes: a dark suit beside a dark
suit 0.77-0.96, an orange suit beside a dark suit 0.39-0.60. Then colours cannot tell the two apart and
the dividing line decides; otherwise colours claim the neighbour's clothes wherever they reach."""
BESIDE_POSTERIOR = 0.75
"""A pixel on a neighbour's side of the dividing line seeds "someone else" unless its colour is clearly
the guest's rather than that neighbour's (``_posterior`` of the guest's face and collar against the
neighbour's certain pixels at least this): the guest's navy shoulder in front of an orange suit is the
guest's; beside another navy suit it is anyone's, and the line decides."""
CLEARLY_THEIRS = 0.3
"""A neighbour dressed unlike the guest claims (seeds "someone else") every matte pixel whose colour
posterior against them is below this and that is connected, through such pixels, to what is certainly
theirs: their suit across the guest's shoulder, in front of the guest, up to the guest's tie."""
CLEARLY_GUESTS = 0.7
"""On the guest's side of the line, below the chin, a pixel whose posterior against a neighbour dressed
unlike the guest is above this and that is connected through such pixels to the guest's seed seeds the
guest (their own jacket and sleeve up to where the neighbour's colours begin)."""
CORE_POSTERIOR = 0.3
"""The guest's head (an ellipse 1.3 face boxes wide) keeps a pixel the flood gave someone else unless its
colour says so clearly (``_posterior`` below this): hair and ears are the guest's."""
BESIDE_DISTANCE = 1.2
"""Another face whose centre is at least this many guest face widths to the side stands beside the
guest whatever its size (a bulky suit makes a face small for its body), not behind."""
BESIDE_MARGIN = 0.2
"""``_beside`` leaves a strip this many guest face widths wide each side of the dividing line unmarked:
there the flood (the photo's edges and colours) decides where one person ends."""
_OPEN = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
_BINS = 8 * 16 * 16


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
    """Each pixel's bin in a CIELAB histogram of 8 lightness × 16 × 16 chroma bins: finer in hue than
    in lightness, so an orange suit and the skin of a face (close in RGB, apart in a*/b*) fall in
    different bins, and a shadow on one jacket moves less than a change of jacket."""
    lab = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2Lab), dtype=np.uint8)
    idx = (lab[..., 0] >> 5).astype(np.intp) * 256
    idx += (lab[..., 1] >> 4).astype(np.intp) * 16
    idx += (lab[..., 2] >> 4).astype(np.intp)
    return np.asarray(idx, dtype=np.intp)


def _histogram(idx: npt.NDArray[np.intp], sample: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    counts = np.bincount(idx[sample], minlength=_BINS).astype(np.float64)
    return counts / max(float(counts.sum()), 1.0)


def _posterior(
    idx: npt.NDArray[np.intp], guest: npt.NDArray[np.bool_], other: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float32]:
    """How much more each pixel's colour looks like the ``guest`` sample's than the ``other`` sample's
    (h×w float32 in [0, 1], 0.5 = no telling): a per-pixel posterior from two colour histograms
    (``_colour_index``; one count added to every bin, equal priors), smoothed over a few pixels."""
    hg = np.bincount(idx[guest], minlength=_BINS).astype(np.float32) + 1.0
    ho = np.bincount(idx[other], minlength=_BINS).astype(np.float32) + 1.0
    pg, po = hg / hg.sum(), ho / ho.sum()
    post = (pg / (pg + po))[idx].astype(np.float32)
    return np.asarray(cv2.GaussianBlur(post, (0, 0), sigmaX=1.5), dtype=np.float32)


def _reached(candidates: npt.NDArray[np.bool_], seeds: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """The ``candidates`` connected (4-neighbours, after an opening by a 5-pixel disc that cuts
    one- and two-pixel bridges and specks) to ``seeds``: a region continuous with what is certainly
    someone's, not every pixel of a similar colour anywhere."""
    solid = cv2.morphologyEx(candidates.astype(np.uint8), cv2.MORPH_OPEN, _OPEN) | seeds.astype(np.uint8)
    count, comp = cv2.connectedComponents(solid, connectivity=4)
    touched = np.zeros(count, dtype=bool)
    touched[comp[seeds & (solid > 0)]] = True
    touched[0] = False
    return np.asarray(touched[comp] & candidates, dtype=bool)


def _relief(image: RgbImage, post: npt.NDArray[np.float32]) -> RgbImage:
    """The image the watershed floods (h×w×3 uint8): the photo's luminance plus, twice, the colour
    posterior (``_posterior``). ``cv2.watershed`` steps between neighbours by their largest channel
    difference, so a flood crosses a luminance edge *or* a change of owner reluctantly, and runs
    freely through a bystander's sleeve that only has faint edges towards the guest's jacket."""
    p8 = np.clip(post * 255 + 0.5, 0, 255).astype(np.uint8)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(np.dstack([grey, p8, p8]))


@dataclass
class _Neighbour:
    """Someone standing beside the guest (``_stands_beside``), in matte pixels: ``certain`` (their face,
    their collar column, the far side of the dividing line), ``side`` (their whole side of the line) and
    ``near`` (the guest's side of it, below the guest's chin)."""

    certain: npt.NDArray[np.bool_]
    side: npt.NDArray[np.bool_]
    near: npt.NDArray[np.bool_]


def keep_guest(alpha: AlphaMap, image: RgbImage, guest: Box, others: Sequence[Box]) -> GuestMatte:
    """Remove everyone but the guest from a portrait matte.

    ``alpha`` (h×w float32 in [0, 1]) is MODNet's matte of ``image`` (h×w×3 uint8 RGB) at the network
    size; ``guest`` and ``others`` are face boxes (x0, y0, x1, y1) in the same pixels, the guest upright
    (the framing has levelled the eyes). MODNet mattes *every* person; this decides which matte pixels
    belong to the guest. Certain seeds first, then colours where they can tell people apart, geometry
    where they cannot, and a flood for the rest (1-2 ms at the CPU matte size when nobody else is marked
    in step 1, which skips the rest; 18-32 ms with two or three neighbours, on a 2-core x86 machine at
    load 2, a few ms more than the colour-blind split it replaced):

    1. Certain seeds. The guest's: the centre of their face and the column under the chin
       (``GUEST_COLLAR``: neck and collar, not the chest, which a neighbour in front may cover).
       Someone else's: each other detected face; matte outside the guest's ``body_prior`` (a body can't
       be there, so a bystander's shoulder, arm or hair beside the guest is marked even when their face
       is out of the picture or hidden); for a face that stands *beside* the guest (``_stands_beside``),
       the column under their chin (``OTHER_COLLAR``). Clear background (α < 0.15) is a third seed.
    2. Each neighbour's side of a dividing line between the two faces (``_beside``) seeds them where its
       colour is not clearly the guest's (``BESIDE_POSTERIOR``): the guest's dark shoulder in front of
       an orange suit stays unmarked.
    3. Colours or geometry, per neighbour. Colour posteriors come from CIELAB histograms
       (``_colour_index``, ``_posterior``) of certain pixels only: the guest's face and collar against
       the neighbour's face, collar, far side and marked side. If the two are dressed alike (overlap of
       their histograms and the guest's face-to-upper-chest one ≥ ``DRESSED_ALIKE``: two dark suits),
       colour says nothing and the line decides:
       the guest's side below the chin seeds the guest. Otherwise colour decides, by occlusion-aware
       growth (``_reached``): every pixel clearly of the neighbour's colours (posterior <
       ``CLEARLY_THEIRS``) that is *continuous with their certain pixels* is theirs, also where it lies
       across the guest's shoulder band or in front of the guest's chest up to the tie; and, on the
       guest's side of the line, pixels clearly of the guest's colours continuous with the guest's seed
       are the guest's (``CLEARLY_GUESTS``). Continuity, not colour alone: the guest's own orange
       scarf, if not touching the neighbour's suit, is not claimed.
    4. Split where people touch or overlap: a marker-controlled watershed (``cv2.watershed``) floods
       the unmarked pixels from the seeds over a relief of the photo's luminance and the guest-versus-
       everyone-else posterior, so the flood lines meet where the owner's colours change. Pixels flooded
       by "other" leave the matte through a 1-pixel blur (no seam along the cut; the guest's own hair
       edges keep their soft alpha); the flood's one-pixel dividing lines go with "other" except where
       they touch the guest (they are the guest's outline). The guest's head (1.3 face boxes) keeps what
       the flood took unless its colour is clearly someone else's (``CORE_POSTERIOR``).
    5. Connectivity: what remains of the matte (α > 0.1) that is not connected to the guest's seed is
       dropped with its faint fringe (a bystander standing apart, a stray object).

    MediaPipe's selfie segmentation is not used here: like MODNet's matte it is one "person" class for
    everybody and cannot tell two touching people apart; the detected faces, the body prior and the
    colours are what separate them. Measured on the scenes of ``tests/engine/scenes.py`` (share of the
    headshot that is a bystander's / share of the guest lost) in ``tests/engine/test_scenes.py``.
    Known limits: a neighbour dressed like the guest who stands *in front of* the guest's shoulder keeps
    what lies on the guest's side of the line (nothing in the picture tells two identical jackets
    apart); a neighbour whose suit covers the guest's chest past the middle of the collar column puts
    their colours into the guest's own seed, and then colour cannot claim it either (about 10 % of the
    headshot stays theirs in such a stress scene, as before this rule).
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
    _column(guest_seed, guest, GUEST_COLLAR[0], depth=GUEST_COLLAR[1])
    head = np.zeros((h, w), dtype=np.int32)
    _ellipse(head, guest, 1.3, 1)
    chest = np.zeros((h, w), dtype=np.int32)  # the guest's chest is never another person's collar
    _column(chest, guest, CHEST)
    other_face = np.zeros((h, w), dtype=np.int32)
    beside: list[tuple[npt.NDArray[np.int32], ...]] = []
    for box in others:
        face = np.zeros((h, w), dtype=np.int32)
        _ellipse(face, box, 0.7, 1)
        other_face |= face
        if _stands_beside(guest, box):
            collar = np.zeros((h, w), dtype=np.int32)
            _column(collar, box, OTHER_COLLAR[0], depth=OTHER_COLLAR[1])
            collar[chest > 0] = 0
            side, near, far = (np.zeros((h, w), dtype=np.int32) for _ in range(3))
            _beside(side, near, far, guest, box)
            beside.append((face, collar, side, near, far))
    markers[(other_face > 0) & fg] = _OTHER
    guest_core = (guest_seed > 0) & fg & (other_face == 0)
    if not guest_core.any():
        return GuestMatte(alpha, 0.0)
    markers[guest_core] = _GUEST
    if not (markers == _OTHER).any() and not beside:
        # Nobody else is marked (no other face, no matte outside the guest's body): the flood could only
        # split guest from background, and the cut would be empty. Same result, without steps 2 to 4.
        return _connected_to_guest(alpha, alpha.copy(), guest_core)
    free_head = head == 0
    for marks in beside:
        markers[(marks[1] > 0) & fg & (markers == 0) & free_head] = _OTHER
    idx = _colour_index(image)
    neighbours: list[_Neighbour] = []
    for their_face, their_collar, their_side, their_near, their_far in beside:
        certain = ((their_face > 0) | (their_collar > 0) | ((their_far > 0) & (their_side > 0))) & fg
        if not certain.any():
            continue
        # Step 2: their side of the line, unless its colour is clearly the guest's.
        mine = _posterior(idx, guest_core, certain)
        side_px = (their_side > 0) & fg & free_head & (markers == 0)
        markers[side_px & (mine < BESIDE_POSTERIOR)] = _OTHER
        neighbours.append(_Neighbour(certain, (their_side > 0) & (markers == _OTHER), their_near > 0))
    # Step 3, against the guest's face, neck and upper chest (a larger sample than the seed: the overlap
    # only compares two histograms, nothing is seeded from it).
    upper = np.zeros((h, w), dtype=np.int32)
    _ellipse(upper, guest, 0.6, 1)
    _column(upper, guest, GUEST_COLLAR[0], depth=0.8)
    guest_colours = _histogram(idx, (upper > 0) & fg & (other_face == 0))
    for n in neighbours:
        near_px = n.near & (prior > 0) & fg
        if float(np.sqrt(guest_colours * _histogram(idx, n.certain)).sum()) >= DRESSED_ALIKE:
            markers[near_px & (markers == 0)] = _GUEST
            continue
        theirs = n.certain | n.side
        post_n = _posterior(idx, guest_core, theirs)
        # Never into the guest's head: dark hair resting on a neighbour's dark suit is continuous with it
        # and of its colours, and a claimed seed is one the flood cannot give back.
        claimed = _reached(
            fg & (markers == 0) & free_head & (post_n < CLEARLY_THEIRS), theirs & (markers == _OTHER)
        )
        markers[claimed] = _OTHER
        own = _reached(near_px & (markers == 0) & (post_n > CLEARLY_GUESTS), markers == _GUEST)
        markers[own] = _GUEST
    # Step 4.
    post = _posterior(idx, guest_core, markers == _OTHER)
    labels = cv2.watershed(_relief(image, post), markers)
    other_u8 = np.asarray(labels == _OTHER, dtype=np.uint8)
    other_u8[(head > 0) & (other_face == 0) & (post >= CORE_POSTERIOR)] = 0
    # Watershed leaves its dividing lines as -1: those between "other" and the background go with
    # "other" (else a one-pixel outline of the removed person would stay behind); those touching the
    # guest are the guest's outline.
    ring = np.ones((3, 3), np.uint8)
    lines = (labels == -1) & (cv2.dilate(other_u8, ring) > 0)
    lines &= cv2.dilate(np.asarray(labels == _GUEST, dtype=np.uint8), ring) == 0
    other_u8 |= lines
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
