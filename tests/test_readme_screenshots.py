"""README shows the main guest screens in both orientations (issue 14): every picture it names exists,
is the size ``tools/readme_screenshots.py`` makes, and every screen of the set is shown."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import readme_screenshots  # noqa: E402


def test_readme_shows_every_main_screen_in_both_orientations() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"docs/screenshots/([\w-]+\.png)", readme))
    assert shown == set(readme_screenshots.names())
    for name in shown:
        with Image.open(ROOT / "docs" / "screenshots" / name) as im:
            orientation = name.rsplit("-", 1)[1].removesuffix(".png")
            assert im.width == readme_screenshots.WIDTH[orientation], name
            # Portrait screenshots are taller than wide, landscape ones wider than tall.
            assert (im.height > im.width) == (orientation == "portrait"), name
