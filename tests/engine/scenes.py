"""Event scenes built in memory from the test portraits: several people, people cut by the photo's edges,
tiny and cut faces (issue 13). No binary files: each scene is composed at test time.

A *sprite* is one test portrait cut out with the engine's own MODNet (on the whole portrait) and an
RGBA-like pair (pixels, alpha). Scenes paste sprites on a flat wall (``WALL``), bottom-aligned to the
photo's bottom edge as a camera sees people (the portraits' own bottom cut then coincides with the
photo's edge, as a real body does). ``Scene.guest_x`` says where the guest's face is, so a test can check
that the engine picked and kept that person; ``Scene.owners`` says whose each pixel is (the guest, someone
else, the wall), so a test can count a bystander's pixels left in a headshot; ``Scene.cut_by`` names the
photo edges that cut through the guest.

Run ``python -m tests.engine.scenes OUTDIR`` to write every scene (and the engine's headshot of it) as
PNG/JPEG for a look by eye.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from engine.config import EngineConfig
from engine.matting import Matter
from engine.models import MATTING, verified_path
from engine.runtime import open_backend
from tests.conftest import FACES, load_rgb

Rgb = npt.NDArray[np.uint8]
Alpha = npt.NDArray[np.float32]

WALL = (168, 182, 196)
"""The scenes' flat wall colour (a light blue-grey, unlike any test portrait's clothing or skin)."""
FLAT_BACKGROUND = "#2E5E4E"
"""The flat background the scene tests render on (a dark green no person in the portraits wears)."""


@dataclass(frozen=True)
class Sprite:
    rgb: Rgb
    alpha: Alpha


WALL_LABEL, GUEST_LABEL, OTHER_LABEL = 0, 1, 2
"""``Scene.owners`` values."""


@dataclass(frozen=True)
class Scene:
    """``rgb`` is the photo; ``guest_x`` the horizontal centre of the guest's head as a fraction of the
    width; ``refusal`` the error code the engine must answer with (None: a headshot is expected);
    ``others`` how many other people are in the photo; ``owners`` (H×W uint8) who is in front at each
    pixel: ``GUEST_LABEL``, ``OTHER_LABEL`` (where that person's sprite alpha is above 0.5) or
    ``WALL_LABEL``, so a test can tell which pixels of a headshot are a bystander's."""

    name: str
    rgb: Rgb
    guest_x: float
    refusal: str | None = None
    others: int = 0
    owners: npt.NDArray[np.uint8] | None = None
    cut_by: tuple[str, ...] = ()
    """The photo's edges (``top``, ``right``, ``bottom``, ``left``) that cut through the guest where the
    square headshot shows it: the hard-edge test checks that each really does."""


@lru_cache(maxsize=4)
def sprite(name: str) -> Sprite:
    """The portrait ``name`` from tests/assets/faces with its MODNet alpha (full portrait, padded to 32)."""
    rgb = load_rgb(FACES / name)
    h, w = rgb.shape[:2]
    mh, mw = (h + 31) // 32 * 32, (w + 31) // 32 * 32
    cfg = EngineConfig(backend="onnxruntime")
    with open_backend(MATTING.name, verified_path(MATTING, cfg.models_dir), cfg) as backend:
        small = np.asarray(cv2.resize(rgb, (mw, mh), interpolation=cv2.INTER_AREA), dtype=np.uint8)
        alpha = Matter(backend).matte(small)
    alpha = np.asarray(cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    # Snap the matte so the sprite carries no faint ghost of its studio backdrop into the scene.
    alpha = np.clip((alpha - 0.05) / 0.9, 0.0, 1.0)
    return Sprite(rgb, alpha)


def wall(width: int, height: int) -> Rgb:
    return np.full((height, width, 3), WALL, dtype=np.uint8)


def paste(
    canvas: Rgb,
    who: Sprite,
    *,
    height: int,
    centre_x: float,
    bottom: float = 1.0,
    mirror: bool = False,
    owners: npt.NDArray[np.uint8] | None = None,
    label: int = OTHER_LABEL,
) -> None:
    """Paste ``who`` scaled to ``height`` pixels, centred at ``centre_x`` (fraction of the width), its
    bottom at ``bottom`` (fraction of the height; > 1 puts the bottom below the photo). In place;
    parts outside the canvas are cut, as a camera cuts them. ``owners`` (the canvas's owner map) gets
    ``label`` where the sprite's alpha is above 0.5."""
    ch, cw = canvas.shape[:2]
    sh, sw = who.rgb.shape[:2]
    w = max(1, round(sw * height / sh))
    rgb, alpha = who.rgb, who.alpha
    if mirror:
        rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
    rgb = cv2.resize(rgb, (w, height), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, (w, height), interpolation=cv2.INTER_AREA)
    x0 = round(centre_x * cw - w / 2)
    y0 = round(bottom * ch - height)
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(cw, x0 + w), min(ch, y0 + height)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    a = alpha[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0, None]
    src = rgb[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0].astype(np.float32)
    dst = canvas[cy0:cy1, cx0:cx1].astype(np.float32)
    canvas[cy0:cy1, cx0:cx1] = np.clip(src * a + dst * (1 - a) + 0.5, 0, 255).astype(np.uint8)
    if owners is not None:
        owners[cy0:cy1, cx0:cx1][a[..., 0] > 0.5] = label


def rotate(rgb: Rgb, degrees: float) -> Rgb:
    """The whole photo rotated (a tilted camera), edges continued so no black corners appear."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return np.asarray(cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_REPLICATE), dtype=np.uint8)


def rotate_owners(owners: npt.NDArray[np.uint8], degrees: float) -> npt.NDArray[np.uint8]:
    """``rotate`` for an owner map (nearest neighbour: labels are not blended)."""
    h, w = owners.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return np.asarray(
        cv2.warpAffine(owners, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE),
        dtype=np.uint8,
    )


GUEST = "grace_hopper.jpg"
OTHER = "astronaut.png"
W, H = 1280, 960


class Photo:
    """A scene being composed: the wall, then people pasted in order (later ones in front)."""

    def __init__(self, width: int = W, height: int = H) -> None:
        self.rgb = wall(width, height)
        self.owners = np.zeros((height, width), dtype=np.uint8)

    def guest(
        self, centre_x: float = 0.5, height: int = 720, bottom: float = 1.0, mirror: bool = False
    ) -> None:
        paste(
            self.rgb,
            sprite(GUEST),
            height=height,
            centre_x=centre_x,
            bottom=bottom,
            mirror=mirror,
            owners=self.owners,
            label=GUEST_LABEL,
        )

    def other(
        self, name: str = OTHER, *, height: int, centre_x: float, bottom: float = 1.0, mirror: bool = False
    ) -> None:
        paste(
            self.rgb,
            sprite(name),
            height=height,
            centre_x=centre_x,
            bottom=bottom,
            mirror=mirror,
            owners=self.owners,
            label=OTHER_LABEL,
        )

    def scene(
        self,
        name: str,
        guest_x: float,
        *,
        refusal: str | None = None,
        others: int = 0,
        cut_by: tuple[str, ...] = (),
    ) -> Scene:
        return Scene(
            name, self.rgb, guest_x, refusal=refusal, others=others, owners=self.owners, cut_by=cut_by
        )


def side_by_side() -> Scene:
    """Two people in orange suits a step in front of the guest, larger, one each side: their suits
    cover the guest's shoulders up to the tie."""
    c = Photo()
    c.guest(0.5)
    c.other(height=900, centre_x=0.88)
    c.other(height=860, centre_x=0.11, mirror=True)
    return c.scene("side_by_side", 0.5, others=2)


def side_by_side_mirrored() -> Scene:
    """``side_by_side`` seen in a mirror (every person flipped, the left neighbour now on the right): the
    same occlusion from the other sides, so a rule that only works one way round fails."""
    c = Photo()
    c.guest(0.5, mirror=True)
    c.other(height=900, centre_x=0.12, mirror=True)
    c.other(height=860, centre_x=0.89)
    return c.scene("side_by_side_mirrored", 0.5, others=2)


def overlapping() -> Scene:
    """People beside the guest touching them; the one on the right a step in front (so a little larger),
    their shoulder over the guest's."""
    c = Photo()
    c.other(height=880, centre_x=0.17, mirror=True)
    c.guest(0.5)
    c.other(height=900, centre_x=0.93)
    return c.scene("overlapping", 0.5, others=2)


def shoulder_to_shoulder() -> Scene:
    """Three people of one height in a row, shoulders touching: on the left a person in an orange suit
    a half step in front, their sleeve over the guest's shoulder; on the right someone dressed like the
    guest (dark jacket against dark jacket: no colour to tell them apart), just behind the guest's
    shoulder."""
    c = Photo()
    c.other(GUEST, height=720, centre_x=0.83, mirror=True)
    c.guest(0.5)
    c.other(height=700, centre_x=0.2, mirror=True)
    return c.scene("shoulder_to_shoulder", 0.5, others=2)


def behind() -> Scene:
    """A smaller person behind the guest, their head next to the guest's head."""
    c = Photo()
    c.other(height=470, centre_x=0.68, bottom=0.85)
    c.guest(0.47)
    return c.scene("behind", 0.47, others=1)


def cut_left() -> Scene:
    c = Photo()
    c.guest(0.17)
    return c.scene("cut_left", 0.17, cut_by=("left", "bottom"))


def cut_right() -> Scene:
    c = Photo()
    c.guest(0.83)
    return c.scene("cut_right", 0.83, cut_by=("right", "bottom"))


def cut_bottom() -> Scene:
    """Close up: the guest's chest is cut by the photo's bottom edge just below the chin."""
    c = Photo()
    c.guest(0.5, height=1250, bottom=1.55)
    return c.scene("cut_bottom", 0.5, cut_by=("bottom",))


def cut_top() -> Scene:
    """The guest's hat is cut by the photo's top edge half way down to the face (the face itself is
    inside), so the edge crosses the headshot above the face."""
    c = Photo()
    c.guest(0.5, height=900, bottom=0.78)
    return c.scene("cut_top", 0.5, cut_by=("top",))


def tilted_cut_left() -> Scene:
    """A tilted camera and a guest cut by the left edge: roll correction turns the edge. The scene is
    made larger, rotated and cropped, so the photo's edge is a straight cut through the person."""
    big = Photo(W + 400, H + 400)
    big.guest(centre_x=0.2, bottom=(H + 200) / (H + 400))
    turned = rotate(big.rgb, 12.0)[200 : 200 + H, 200 : 200 + W]
    owners = rotate_owners(big.owners, 12.0)[200 : 200 + H, 200 : 200 + W]
    return Scene(
        "tilted_cut_left",
        np.ascontiguousarray(turned),
        0.2,
        owners=np.ascontiguousarray(owners),
        cut_by=("left", "bottom"),
    )


def tiny_face() -> Scene:
    """A wide street-like frame where the only person is far away."""
    c = Photo(1920, 1080)
    c.guest(0.5, height=190, bottom=0.62)
    return c.scene("tiny_face", 0.5, refusal="face_too_small")


def face_cut_off() -> Scene:
    """The guest's face half outside the photo's left edge."""
    c = Photo()
    c.guest(0.04)
    return c.scene("face_cut_off", 0.04, refusal="face_cut_off")


def face_cut_top() -> Scene:
    """The guest's forehead above the photo's top edge."""
    c = Photo()
    c.guest(0.5, height=900, bottom=0.55)
    return c.scene("face_cut_top", 0.5, refusal="face_cut_off")


SCENES: dict[str, Callable[[], Scene]] = {
    f.__name__: f
    for f in (
        side_by_side,
        side_by_side_mirrored,
        overlapping,
        shoulder_to_shoulder,
        behind,
        cut_left,
        cut_right,
        cut_bottom,
        cut_top,
        tilted_cut_left,
        tiny_face,
        face_cut_off,
        face_cut_top,
    )
}


def main(argv: list[str]) -> int:
    from engine.errors import EngineError
    from engine.pipeline import HeadshotEngine

    out = Path(argv[0] if argv else "build/scenes")
    out.mkdir(parents=True, exist_ok=True)
    with HeadshotEngine(EngineConfig(backend="onnxruntime")) as engine:
        for name, make in SCENES.items():
            scene = make()
            cv2.imwrite(str(out / f"{name}.scene.png"), cv2.cvtColor(scene.rgb, cv2.COLOR_RGB2BGR))
            try:
                shot = engine.render_image(scene.rgb, background=FLAT_BACKGROUND)
            except EngineError as exc:
                print(f"{name}: {exc.code}: {exc}")
                continue
            (out / f"{name}.headshot.jpg").write_bytes(shot.jpeg)
            print(f"{name}: ok {shot.warnings} {shot.timings_ms['total']:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
