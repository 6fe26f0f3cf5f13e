"""README's screenshots: the main guest screens in both orientations, from the browser test's captures.

``tests/e2e/test_accessibility_browser.py`` writes full-size screenshots of every screen to
``build/screenshots/`` (1920×1080 landscape, 1080×1920 portrait). This picks the main screens, scales
them down (README shows them at thumbnail size; full-size PNGs would add megabytes to every clone) and
writes ``docs/screenshots/<screen>-<orientation>.png``. ``make screenshots`` runs the browser test and
then this. The screenshots are of the demo camera's bundled portraits, never of a person at a kiosk.

Usage: ``python tools/readme_screenshots.py [--src build/screenshots] [--out docs/screenshots]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCREENS = ("attract", "consent", "preview", "review", "delivery")
ORIENTATIONS = ("landscape", "portrait")
# Width of the thumbnail in pixels: a landscape one spans a README column, a portrait one is as tall.
WIDTH = {"landscape": 640, "portrait": 270}


def names() -> list[str]:
    """The file names README shows, ``<screen>-<orientation>.png``, in README's order."""
    return [f"{screen}-{orientation}.png" for screen in SCREENS for orientation in ORIENTATIONS]


def thumbnail(src: Path, dst: Path, width: int) -> None:
    """Scale ``src`` to ``width`` pixels wide (aspect kept, Lanczos) and write an optimised PNG with a
    256-colour palette (a screen of flat UI colours loses nothing visible; a third of the size)."""
    with Image.open(src) as im:
        rgb = im.convert("RGB")
    height = round(rgb.height * width / rgb.width)
    small = rgb.resize((width, height), Image.Resampling.LANCZOS)
    small.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT / "build" / "screenshots")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    missing = [name for name in names() if not (args.src / name).is_file()]
    if missing:
        print(f"missing in {args.src}: {', '.join(missing)} (run the browser test first)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name in names():
        orientation = name.rsplit("-", 1)[1].removesuffix(".png")
        thumbnail(args.src / name, args.out / name, WIDTH[orientation])
    print(f"{len(names())} screenshots written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
