"""Event scenes (issue 13): only the guest in the headshot, a refusal code instead of garbage, no hard
edge where the photo ends. The scenes are composed in memory by ``tests/engine/scenes.py``."""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from engine.errors import EngineError, FaceCutOff, FaceTooSmall, NoFace
from engine.framing import PRESETS, Framing, frame_face
from engine.pipeline import HeadshotEngine
from engine.preview import pose_hints
from engine.scene import MIN_FACE_FRACTION, face_problem, scene_problem
from tests.engine import scenes
from tests.engine.test_cli import run_cli
from tests.support import box_face

Rgb = npt.NDArray[np.uint8]
Segment = tuple[tuple[float, float], tuple[float, float]]

HEADSHOT_SCENES = [
    "side_by_side",
    "side_by_side_mirrored",
    "overlapping",
    "shoulder_to_shoulder",
    "behind",
    "cut_left",
    "cut_right",
    "cut_bottom",
    "cut_top",
    "tilted_cut_left",
]
CUT_SCENES = ["cut_left", "cut_right", "cut_bottom", "cut_top", "tilted_cut_left"]
REFUSED_SCENES = ["tiny_face", "face_cut_off", "face_cut_top"]


def jpeg_rgb(data: bytes) -> Rgb:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def lab(rgb: Rgb) -> npt.NDArray[np.float32]:
    return np.asarray(cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab), dtype=np.float32)


def flat_rgb() -> tuple[int, int, int]:
    h = scenes.FLAT_BACKGROUND
    return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)


@pytest.fixture(scope="module")
def rendered(engine: HeadshotEngine) -> dict[str, Rgb]:
    return {
        name: jpeg_rgb(engine.render_image(scenes.SCENES[name]().rgb, background=scenes.FLAT_BACKGROUND).jpeg)
        for name in HEADSHOT_SCENES
    }


@pytest.mark.parametrize("name", HEADSHOT_SCENES)
def test_the_headshot_shows_exactly_one_face_the_guests(
    engine: HeadshotEngine, rendered: dict[str, Rgb], name: str
) -> None:
    out = rendered[name]
    faces = engine.detect_faces(out)
    assert len(faces) == 1, f"{len(faces)} faces in the headshot of {name}"
    (face,) = faces
    cx = (face.bbox[0] + face.bbox[2]) / 2 / out.shape[1]
    assert abs(cx - 0.5) < 0.05, "the face in the headshot is the guest's (centred by the framing)"


@pytest.mark.parametrize("name", HEADSHOT_SCENES)
def test_border_bands_are_background(rendered: dict[str, Rgb], name: str) -> None:
    """Beside and above the guest's head, the headshot is the flat background: no bystander's hair,
    face or arm, no piece of the photo's edge. The bands: the left and right 15 % of the width over
    the top 55 % of the height (the guest's shoulders fill the lower sides), and the top 10 %."""
    out = rendered[name]
    h, w = out.shape[:2]
    bw, bh = int(0.15 * w), int(0.55 * h)
    bands = np.concatenate(
        [
            out[:bh, :bw].reshape(-1, 3),
            out[:bh, w - bw :].reshape(-1, 3),
            out[: int(0.10 * h), bw : w - bw].reshape(-1, 3),
        ]
    )
    target = lab(np.array([[flat_rgb()]], dtype=np.uint8))[0, 0]
    delta_e = np.linalg.norm(lab(bands[None])[0] - target, axis=-1)
    share = float((delta_e <= 10).mean())
    assert share >= 0.90, f"{name}: only {share:.1%} of the border bands are background"


@pytest.mark.parametrize("name", REFUSED_SCENES)
def test_a_scene_that_cannot_make_a_headshot_is_refused_with_its_code(
    engine: HeadshotEngine, name: str
) -> None:
    scene = scenes.SCENES[name]()
    with pytest.raises(NoFace) as err:
        engine.render_image(scene.rgb)
    assert err.value.code == scene.refusal
    expected = FaceTooSmall if scene.refusal == "face_too_small" else FaceCutOff
    assert isinstance(err.value, expected)
    # The kiosk's per-frame check says the same, so a burst never keeps a frame the render refuses.
    size = (scene.rgb.shape[1], scene.rgb.shape[0])
    assert scene_problem(engine.detect_faces(scene.rgb), size) == scene.refusal


EDGES = ("top", "right", "bottom", "left")
HARD_EDGE_MAX = 8.0
"""Bound on ``straight_edge_strength`` (ΔL*) along every edge of the photo inside a headshot. Measured
with the fades: 1.1-5.6 (cut_bottom's blurred continuation the highest); with the fades disabled
(``EDGE_FADE`` and ``BOTTOM_FADE`` near 0: the matte cut straight at the photo's edge, the old
behaviour) 16-31 on every cut scene."""


def photo_edges(framing_matrix: npt.NDArray[np.float64], photo: tuple[int, int]) -> dict[str, Segment]:
    """The photo's four edges as output-pixel segments (start, end), by name."""
    w, h = photo
    corners = [(0.0, 0.0), (w - 1.0, 0.0), (w - 1.0, h - 1.0), (0.0, h - 1.0)]
    m = framing_matrix
    pts = [(m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]) for x, y in corners]
    return {name: (pts[i], pts[(i + 1) % 4]) for i, name in enumerate(EDGES)}


def guest_on_edge(scene: scenes.Scene, framing: Framing, edge: str) -> float:
    """How long (output pixels) the photo's ``edge`` cuts through the guest inside the headshot: the
    guest's pixels of the scene's owner map along that edge that land in the output frame."""
    assert scene.owners is not None
    h, w = scene.owners.shape
    line = {
        "top": [(x, 0) for x in range(w)],
        "bottom": [(x, h - 1) for x in range(w)],
        "left": [(0, y) for y in range(h)],
        "right": [(w - 1, y) for y in range(h)],
    }[edge]
    p = framing.preset
    hits = 0
    for x, y in line:
        if scene.owners[y, x] == scenes.GUEST_LABEL:
            ox, oy = framing.map_point(x, y)
            hits += 0 <= ox < p.width and 0 <= oy < p.height
    return hits * framing.scale


def straight_edge_strength(out: Rgb, segment: Segment, *, offset: float = 3.0) -> float:
    """How hard a straight line is in ``out``: the 75th percentile of the lightness step (ΔL*) across it,
    over the part of the line inside the output where the image is not flat background on both sides.
    A body cut by the photo's edge shows as a step of tens of L* along the cut; a fade gives a few. The
    upper quartile, not the median, so a cut that is hard along only part of the line still counts."""
    (x0, y0), (x1, y1) = segment
    length = math.hypot(x1 - x0, y1 - y0)
    if length < 1:
        return 0.0
    nx, ny = -(y1 - y0) / length, (x1 - x0) / length
    light = lab(out)[..., 0]
    bg = lab(np.array([[flat_rgb()]], dtype=np.uint8))[0, 0, 0]
    h, w = light.shape
    steps = []
    for t in np.linspace(0, 1, int(length)):
        px, py = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
        ax, ay, bx, by = px + offset * nx, py + offset * ny, px - offset * nx, py - offset * ny
        if not (min(ax, bx) >= 0 and max(ax, bx) < w - 1 and min(ay, by) >= 0 and max(ay, by) < h - 1):
            continue
        la, lb = light[round(ay), round(ax)], light[round(by), round(bx)]
        if abs(la - bg) < 3 and abs(lb - bg) < 3:
            continue  # background on both sides: nothing to cut here
        steps.append(abs(la - lb))
    if len(steps) < 0.02 * max(h, w):
        return 0.0  # the line crosses the person for a few pixels at most
    return float(np.percentile(steps, 75))


@pytest.mark.parametrize("name", CUT_SCENES)
def test_no_straight_hard_edge_where_the_photo_ends(
    engine: HeadshotEngine, rendered: dict[str, Rgb], name: str
) -> None:
    """A person cut by the photo's top, bottom or side edge, also after roll correction has turned the
    edge: the headshot shows no straight step along any of the photo's edges. The scene is checked
    first: the named edges really cut through the guest inside the headshot (so the test cannot pass
    because the cut lies outside the frame)."""
    scene = scenes.SCENES[name]()
    face, _ = engine.find_face(scene.rgb)
    size = (scene.rgb.shape[1], scene.rgb.shape[0])
    framing = frame_face(face, size, PRESETS["square"])
    assert framing.coverage < 1.0, f"{name}: the photo's edge must land inside the headshot"
    assert scene.cut_by, f"{name}: a cut scene names the edges that cut the guest"
    for edge in scene.cut_by:
        crossing = guest_on_edge(scene, framing, edge)
        assert crossing >= 100, f"{name}: the {edge} edge cuts the guest for only {crossing:.0f} px"
    if name.startswith("tilted"):
        assert abs(framing.roll_deg) > 5, "the edge must be turned by roll correction"
    out = rendered[name]
    for edge, segment in photo_edges(framing.matrix, size).items():
        strength = straight_edge_strength(out, segment)
        assert strength < HARD_EDGE_MAX, f"{name}: a straight edge of ΔL* {strength:.1f} along the {edge}"


def test_edge_check_sees_a_hard_cut() -> None:
    """The edge measure itself: a body cut by a straight line on a flat background is found, upright or
    tilted, and also when the cut is hard along only part of it."""
    out = np.full((400, 400, 3), flat_rgb(), dtype=np.uint8)
    out[150:, 100:300] = (30, 30, 40)  # a dark jacket ending at x = 100 and continuing off the bottom
    assert straight_edge_strength(out, ((100.0, 0.0), (100.0, 399.0))) > 20
    tilted = np.full((400, 400, 3), flat_rgb(), dtype=np.uint8)
    ys, xs = np.mgrid[0:400, 0:400]
    tilted[(ys > 150) & (xs > 100 + 0.25 * (ys - 150)) & (xs < 300)] = (30, 30, 40)
    assert straight_edge_strength(tilted, ((100.0, 150.0), (162.5, 400.0))) > 20
    half = out.copy()
    # The lower part of the cut fades over 40 px instead: still found by its hard upper part.
    ramp = np.linspace(0.0, 1.0, 40, dtype=np.float32)[None, :, None]
    jacket = np.array((30, 30, 40), dtype=np.float32)
    half[300:, 100:140] = np.clip(flat_rgb() + ramp * (jacket - flat_rgb()), 0, 255).astype(np.uint8)
    assert straight_edge_strength(half, ((100.0, 0.0), (100.0, 399.0))) > 20


# Share of the headshot that is still a bystander's (their sprite in front there, α > 0.5 in the matte),
# and share of the guest's own visible pixels that the matte dropped. Measured (this change / before):
# side_by_side, where both neighbours stand in front of the guest and their orange suits cover the
# guest's shoulders up to the tie, 2.0 % / 11.8 % kept and 2.8 % / 1.4 % lost; the same mirrored
# 1.6 % / 3.1 % and 1.9 % / 1.4 %; shoulder_to_shoulder 0.2 % / 1.5 % and 4.3 % / 4.4 %; overlapping
# 0.6 % / 1.8 % and 4.8 % / 2.9 %; behind (the small face behind is not detected) 1.8 % / 1.6 % and
# 0.3 % / 0.3 %.
BYSTANDER_MAX = 0.025
BYSTANDER_SCENES = ["side_by_side", "side_by_side_mirrored", "shoulder_to_shoulder", "overlapping", "behind"]
GUEST_LOST_MAX = 0.06


def owners_in_headshot(scene: scenes.Scene, framing_matrix: npt.NDArray[np.float64], size: int) -> Rgb:
    """The scene's owner map seen through the headshot's framing (nearest neighbour, output pixels)."""
    assert scene.owners is not None
    return np.asarray(
        cv2.warpAffine(
            scene.owners,
            framing_matrix,
            (size, size),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_REPLICATE,
        ),
        dtype=np.uint8,
    )


@pytest.mark.parametrize("name", BYSTANDER_SCENES)
def test_no_bystander_survives_beside_the_guest(engine: HeadshotEngine, name: str) -> None:
    """People shoulder to shoulder with the guest, in front of them or behind them: what stays of them
    in the headshot's matte is bounded (their sleeves, shoulders and hair), and the guest keeps their
    own shoulders (removing everyone near the guest would pass the first bound alone)."""
    scene = scenes.SCENES[name]()
    faces = engine.detect_faces(scene.rgb)
    face, _ = engine.find_face(scene.rgb)
    cut = engine.cutout(scene.rgb, face, "square", others=faces)
    owners = owners_in_headshot(scene, cut.framing.matrix, cut.preset.width)
    theirs = owners == scenes.OTHER_LABEL
    guests = owners == scenes.GUEST_LABEL
    kept = float((theirs & (cut.alpha > 0.5)).mean())
    lost = float((guests & (cut.alpha < 0.5)).sum() / max(1, guests.sum()))
    assert theirs.mean() > 0.05, f"{name}: a bystander must be in the headshot's frame for this to test"
    assert kept <= BYSTANDER_MAX, f"{name}: {kept:.1%} of the headshot is a bystander's"
    assert lost <= GUEST_LOST_MAX, f"{name}: {lost:.1%} of the guest was removed"


def test_the_owner_map_tells_bystanders_apart() -> None:
    """The measure itself: the scene's owner map marks each sprite where it is in front."""
    scene = scenes.SCENES["shoulder_to_shoulder"]()
    assert scene.owners is not None and scene.owners.shape == scene.rgb.shape[:2]
    labels = set(np.unique(scene.owners).tolist())
    assert labels == {scenes.WALL_LABEL, scenes.GUEST_LABEL, scenes.OTHER_LABEL}
    h, w = scene.owners.shape
    assert scene.owners[h // 2, w // 2] == scenes.GUEST_LABEL  # the guest's face, in the middle
    assert scene.owners[5, 5] == scenes.WALL_LABEL


def test_several_faces_stays_a_warning_when_others_are_removed(engine: HeadshotEngine) -> None:
    shot = engine.render_image(scenes.SCENES["side_by_side"]().rgb)
    assert "several_faces" in shot.warnings
    assert len(shot.warnings) == len(set(shot.warnings))


# -- the per-frame check, pure --------------------------------------------------------------------------


FRAME = (1280, 720)


def test_scene_problem_codes() -> None:
    guest = box_face(560, 200, 720, 380)
    assert scene_problem([], FRAME) == "no_face"
    assert scene_problem([guest], FRAME) is None
    assert scene_problem([box_face(630, 300, 670, 340)], FRAME) == "face_too_small"
    assert scene_problem([box_face(600, -40, 760, 140)], FRAME) == "face_cut_off"
    assert scene_problem([box_face(-30, 200, 130, 360), box_face(1100, 300, 1130, 330)], FRAME) == (
        "face_cut_off"
    )
    # Someone right beside the guest's head is in the guest's picture: step apart.
    assert scene_problem([guest, box_face(760, 220, 900, 360)], FRAME) == "step_apart"
    # Someone far off to the side is outside the crop: fine (the render removes them anyway).
    assert scene_problem([guest, box_face(1150, 250, 1260, 360)], FRAME) is None


def test_scene_problem_costs_well_under_a_millisecond() -> None:
    faces = [box_face(560, 200, 720, 380), box_face(760, 220, 900, 360), box_face(100, 250, 200, 350)]
    t0 = time.perf_counter()
    for _ in range(200):
        scene_problem(faces, FRAME)
    per_call_ms = (time.perf_counter() - t0) * 1000 / 200
    assert per_call_ms < 2.0, per_call_ms  # pure arithmetic; measured ~0.05 ms (noisy shared machine)


def test_a_frame_the_guidance_accepts_is_never_refused() -> None:
    """Over a grid of face sizes and positions in 720p and 1080p frames: whenever the preview has no
    size or position hint, the render's refusal check passes."""
    for fw, fh in ((1280, 720), (1920, 1080), (720, 1280)):
        frame = np.full((fh, fw, 3), 200, dtype=np.uint8)  # bright: no "more_light"
        for rel in np.linspace(0.04, 0.6, 15):
            size = rel * fh
            for cx in np.linspace(-0.1, 1.1, 25):
                for cy in np.linspace(-0.1, 1.1, 25):
                    x0, y0 = cx * fw - size / 2, cy * fh - size / 2
                    face = box_face(x0, y0, x0 + size, y0 + size)
                    hints = pose_hints(face, frame)
                    if not {"step_closer", "centre_yourself"} & set(hints):
                        assert face_problem(face, (fw, fh)) is None, (fw, fh, rel, cx, cy, hints)


def test_refusal_threshold_is_documented_below_the_guidance() -> None:
    from engine.preview import MIN_FACE_HEIGHT

    assert MIN_FACE_FRACTION <= MIN_FACE_HEIGHT / 2


# -- through the CLI ------------------------------------------------------------------------------------


def test_cli_reports_the_refusal_codes_and_writes_nothing_for_them(tmp_path: Path) -> None:
    names = ["tiny_face", "face_cut_off", "side_by_side"]
    paths = []
    for name in names:
        p = tmp_path / f"{name}.png"
        Image.fromarray(scenes.SCENES[name]().rgb).save(p)
        paths.append(str(p))
    out = tmp_path / "out"
    res = run_cli("render", *paths, "-o", str(out), "--json", "--backend", "onnxruntime", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    results = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r.get("error") for r in results] == ["face_too_small", "face_cut_off", None]
    for r in results[:2]:
        assert set(r) == {"input", "ok", "error", "message"} and r["ok"] is False
    assert "several_faces" in results[2]["warnings"]
    assert sorted(p.name for p in out.iterdir()) == ["side_by_side.jpg"]


def test_refusals_are_engine_errors_with_stable_codes() -> None:
    assert issubclass(FaceTooSmall, NoFace) and issubclass(FaceCutOff, NoFace)
    assert issubclass(NoFace, EngineError)
    assert (FaceTooSmall.code, FaceCutOff.code, NoFace.code) == ("face_too_small", "face_cut_off", "no_face")
