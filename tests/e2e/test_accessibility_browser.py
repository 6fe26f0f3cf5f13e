"""The guest screens for everyone (issue 14), in Debian's Chromium: every screen in every accessibility mode
and in both orientations has no WCAG 2.2 A/AA violation (axe-core) and no touch target under 44 CSS px, with
the kiosk's own look and with an event's brand (a light theme, a logo, named colours, a backdrop and the
attract screen's sample headshots); a whole visit by keyboard alone; a whole visit with a physical shutter
button (key events); speech follows the screens; the idle warning can be extended.

Screenshots of every screen in portrait (1080x1920) and landscape (1920x1080, 1280x800) go to
``build/screenshots/`` (``$UI_SCREENSHOT_DIR`` overrides). One browser and one served kiosk for the module.
Needs ``chromium``; speech audio needs ``espeak-ng`` (without it the route must answer 503).
"""

from __future__ import annotations

import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from tests.support import (
    CHROMIUM,
    LAUNCH_ARGS,
    TIMEOUT_MS,
    free_port,
    served_kiosk,
    wait_image_loaded,
    wait_visible,
)

if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
try:
    AXE = (resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")
except ModuleNotFoundError:
    pytest.skip("axe-core is not installed (pip install axe-playwright-python)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("UI_SCREENSHOT_DIR") or ROOT / "build" / "screenshots")
ESPEAK = shutil.which("espeak-ng")
EVENT = "Open Doors 2026"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
VIEWPORTS = {
    "portrait": {"width": 1080, "height": 1920},
    "landscape": {"width": 1920, "height": 1080},
}
SMALL_LANDSCAPE = {"width": 1280, "height": 800}
# Every mode alone, and all of them together (speech adds its own controls to the bar).
MODE_SETS: list[tuple[str, ...]] = [
    (),
    ("contrast",),
    ("large",),
    ("seated",),
    ("contrast", "large", "seated", "speech"),
]
IDLE_WARNING = 20.0
CONSENT_IDLE = 60.0

# Every visible control's box (a checkbox's: its label's), except a link inside a sentence.
SMALL_TARGETS = """() => {
  const small = [];
  for (const el of document.querySelectorAll('a[href], button, input:not([type=hidden]), select, summary')) {
    if (!el.getClientRects().length) continue;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden') continue;
    if (el.tagName === 'A' && style.display === 'inline'
        && el.parentElement.textContent.trim() !== el.textContent.trim()) continue;
    const target = el.matches('input[type=checkbox]') ? (el.closest('label') || el) : el;
    const r = target.getBoundingClientRect();
    if (r.width < 44 || r.height < 44) {
      small.push(`${el.id || el.tagName} ${Math.round(r.width)}x${Math.round(r.height)}`);
    }
  }
  if (document.documentElement.scrollWidth > window.innerWidth) small.push('page scrolls sideways');
  return small;
}"""

SET_MODES = """want => {
  for (const b of document.querySelectorAll('#a11y-bar [data-mode]')) {
    if ((b.getAttribute('aria-pressed') === 'true') !== want.includes(b.dataset.mode)) b.click();
  }
}"""


class SkewClock:
    """``time.monotonic`` plus an offset a test moves forward (to reach an idle warning without waiting)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kiosk, str, SkewClock]]:
    base = tmp_path_factory.mktemp("a11y")
    wifi = base / "wifi.qr"
    wifi.write_text("WIFI:T:WPA;S:Headshot Kiosk;P:a7Kp3mZq9Xw2Rt5Vb8Nc;;\n")
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(base / "store")},
            "audit": {"path": str(base / "audit")},
            "ui": {"port": free_port()},
            "delivery": {"port": free_port(), "public_host": "localhost", "wifi_qr_path": str(wifi)},
            "event": {"name": EVENT, "languages": ["en", "fr"]},
            # A burst of 30 frames keeps the visit in CAPTURE for a second or more, so the page's poll
            # answers from within it (the shutter-button test checks no idle warning comes from there).
            "session": {
                "countdown_seconds": 2,
                "consent_idle_timeout_seconds": CONSENT_IDLE,
                "capture_burst_frames": 30,
            },
        }
    )
    assert cfg.session.idle_warning_seconds >= IDLE_WARNING  # the default gives 20 s at least
    clock = SkewClock()
    kiosk = Kiosk(cfg, clock=clock)
    with served_kiosk(kiosk) as ui_url:
        yield kiosk, ui_url, clock


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, served: tuple[Kiosk, str, SkewClock]) -> Iterator[Any]:
    kiosk, ui_url, _ = served
    if kiosk.state().phase != "idle":
        kiosk.delete_now()
    context = browser.new_context(viewport=VIEWPORTS["landscape"])
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on(
        "console",
        lambda m: errors.append(m.text) if m.type == "error" and "speech.wav" not in m.text else None,
    )
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(ui_url + "/?lang=en")
    wait_visible(pg, "attract")
    yield pg
    context.close()
    if kiosk.state().phase != "idle":
        kiosk.delete_now()
    assert not [e for e in errors if "Content Security Policy" in e or "Error" in e], errors


def _problems(page: Any, what: str) -> list[str]:
    problems = [f"{what}: small target or overflow: {item}" for item in page.evaluate(SMALL_TARGETS)]
    if page.evaluate("() => typeof window.axe") == "undefined":
        page.evaluate(AXE)  # through the DevTools protocol: the page's CSP allows no inline script
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        WCAG_TAGS,
    )
    for violation in result["violations"]:
        nodes = "; ".join(n["target"][0] if n["target"] else "?" for n in violation["nodes"][:3])
        problems.append(f"{what}: axe {violation['id']} ({violation['impact']}): {nodes}")
    return problems


def _every_mode_and_orientation(page: Any, screen: str, problems: list[str]) -> None:
    """axe and touch targets in every mode and orientation; screenshots in both orientations."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for orientation, viewport in VIEWPORTS.items():
        page.set_viewport_size(viewport)
        for modes in MODE_SETS:
            # A guest looking at the screen this long taps it now and then: without that the sweep outlasts
            # the consent screen's 60 s idle timeout on a loaded machine and the visit is wiped under it.
            page.evaluate("() => window.Guest.touch()")
            page.evaluate(SET_MODES, list(modes))
            problems += _problems(page, f"{screen}/{orientation}/{'+'.join(modes) or 'default'}")
            if not modes:
                page.screenshot(path=str(SHOTS / f"{screen}-{orientation}.png"))
            elif len(modes) > 1 and orientation == "portrait":
                page.screenshot(path=str(SHOTS / f"{screen}-{orientation}-all-modes.png"))
        page.evaluate(SET_MODES, [])
    page.set_viewport_size(SMALL_LANDSCAPE)
    page.screenshot(path=str(SHOTS / f"{screen}-landscape-1280x800.png"))
    page.set_viewport_size(VIEWPORTS["landscape"])


def test_every_screen_every_mode_both_orientations(page: Any) -> None:
    problems: list[str] = []
    # The attract screen as guests see it once the kiosk has made its sample headshots (a few seconds
    # after start; until then it is text only).
    page.wait_for_selector("#samples", state="visible", timeout=180_000)
    _every_mode_and_orientation(page, "attract", problems)
    page.click("#start")
    wait_visible(page, "consent")
    _every_mode_and_orientation(page, "consent", problems)
    page.click("#notice-link")  # the full notice, a page of its own during the visit
    page.wait_for_selector("#notice-back")
    _every_mode_and_orientation(page, "notice", problems)
    page.click("#notice-back")
    wait_visible(page, "consent")
    # Portrait: the consent screen fits, or its answer stays in sight at the bottom (sticky).
    page.set_viewport_size(VIEWPORTS["portrait"])
    accept = page.locator("#accept").bounding_box()
    assert accept is not None and accept["y"] + accept["height"] <= VIEWPORTS["portrait"]["height"]
    page.evaluate("() => window.scrollTo(0, 0)")
    page.wait_for_timeout(100)
    overflows = page.evaluate("() => document.documentElement.scrollHeight > window.innerHeight")
    assert page.is_visible("#consent-more") == overflows  # "Scroll down for more" when there is more
    page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_function("() => document.getElementById('consent-more').hidden")
    page.set_viewport_size(VIEWPORTS["landscape"])
    page.check("#agree")
    page.click("#accept")
    wait_visible(page, "preview")
    wait_image_loaded(page, "#preview")
    page.wait_for_function("() => document.getElementById('guidance').textContent.length > 0")
    _every_mode_and_orientation(page, "preview", problems)
    # Portrait: the preview is a tall frame (the portrait crop); seated lowers the face outline.
    page.set_viewport_size(VIEWPORTS["portrait"])
    stage = page.locator("#stage").bounding_box()
    assert stage is not None and stage["height"] > stage["width"] and stage["height"] > 900
    top = "id => document.getElementById(id).getBoundingClientRect().top"
    outline_top = page.evaluate(top, "outline")
    assert page.evaluate(top, "delete-btn") < 200  # standing: Delete now at the top
    page.evaluate(SET_MODES, ["seated"])
    # ...and the guidance's framing target with it: the stream is asked again for a seated guest.
    page.wait_for_function("() => document.getElementById('preview').src.includes('seated=1')")
    wait_image_loaded(page, "#preview")
    page.screenshot(path=str(SHOTS / "preview-portrait-seated.png"))
    assert page.evaluate(top, "outline") > outline_top
    # Seated: every control in the lower part of the screen (380-1220 mm on a typically mounted portrait
    # panel), the screen's own and the top bar's.
    for control in ("shoot", "bg-toggle", "held-btn", "delete-btn", "mode-seated"):
        assert page.evaluate(top, control) > VIEWPORTS["portrait"]["height"] * 0.55, control
    page.evaluate(SET_MODES, [])
    page.wait_for_function("() => !document.getElementById('preview').src.includes('seated')")
    page.set_viewport_size(VIEWPORTS["landscape"])

    page.click("#held-btn")
    page.wait_for_selector("#held-dialog[open]")
    problems += _problems(page, "held dialog")
    page.screenshot(path=str(SHOTS / "held-landscape.png"))
    page.click("#held-close")

    page.click("#shoot")
    page.wait_for_selector("#countdown", state="visible")
    page.screenshot(path=str(SHOTS / "countdown-landscape.png"))
    # Nothing flashes: the countdown changes its number once a second (WCAG 2.3.1: at most 3 a second).
    changes = page.evaluate(
        """() => new Promise(resolve => {
          const el = document.getElementById('countdown'); let n = 0;
          const obs = new MutationObserver(() => { n += 1; });
          obs.observe(el, {childList: true, characterData: true, subtree: true, attributes: true});
          setTimeout(() => { obs.disconnect(); resolve(n); }, 1000);
        })"""
    )
    assert changes <= 3
    wait_visible(page, "review")
    wait_image_loaded(page, "#result")
    page.wait_for_selector("#review-busy", state="hidden")
    _every_mode_and_orientation(page, "review", problems)

    page.click("#deliver")
    wait_visible(page, "delivery")
    page.wait_for_selector("#wifi-step", state="visible")
    wait_image_loaded(page, "#wifi-qr")
    _every_mode_and_orientation(page, "delivery-wifi", problems)
    page.click("#wifi-next")
    wait_image_loaded(page, "#qr")
    _every_mode_and_orientation(page, "delivery", problems)

    page.click("#finish")
    wait_visible(page, "done")
    page.wait_for_selector("#receipt-line", state="visible")
    _every_mode_and_orientation(page, "done", problems)

    # Two screens a healthy visit passes too fast to measure (processing) or never shows (error): their
    # sections as they are laid out, shown by hand on the finished page.
    for screen in ("processing", "error"):
        page.evaluate(
            "name => { for (const s of document.querySelectorAll('.screen')) "
            "s.hidden = s.id !== 'screen-' + name; }",
            screen,
        )
        _every_mode_and_orientation(page, screen, problems)

    assert not problems, "\n".join(problems)


def _tab_to(page: Any, selector: str, key: str = "Tab") -> None:
    """Press Tab until ``selector`` has the focus, and check the focus is visible there."""
    for _ in range(60):
        if page.evaluate("sel => document.activeElement && document.activeElement.matches(sel)", selector):
            break
        page.keyboard.press(key)
    else:
        raise AssertionError(f"Tab never reached {selector}")
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), f"no visible focus on {selector}"


def test_a_visit_by_keyboard_alone(page: Any, served: tuple[Kiosk, str, SkewClock]) -> None:
    kiosk = served[0]
    # The accessibility bar by keyboard: Space presses a mode button.
    _tab_to(page, "#mode-large")
    page.keyboard.press("Space")
    assert page.get_attribute("#mode-large", "aria-pressed") == "true"
    _tab_to(page, "#start")
    page.keyboard.press("Enter")
    wait_visible(page, "consent")
    _tab_to(page, "#agree")
    page.keyboard.press("Space")
    assert page.is_checked("#agree")
    _tab_to(page, "#accept")
    page.keyboard.press("Enter")
    wait_visible(page, "preview")
    # "What we hold" opens a modal dialog; Escape leaves it: no keyboard trap.
    _tab_to(page, "#held-btn", "Shift+Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("#held-dialog[open]")
    assert page.evaluate("() => document.getElementById('held-dialog').contains(document.activeElement)")
    page.keyboard.press("Escape")
    page.wait_for_selector("#held-dialog", state="hidden")
    _tab_to(page, "#shoot")
    page.keyboard.press("Space")
    wait_visible(page, "review")
    page.wait_for_selector("#review-busy", state="hidden")
    _tab_to(page, "#bg-choices button:nth-child(2)")
    page.keyboard.press("Enter")
    page.wait_for_selector("#bg-choices button:nth-child(2)[aria-pressed=true]")
    page.wait_for_selector("#review-busy", state="hidden")
    _tab_to(page, "#deliver")
    page.keyboard.press("Enter")
    wait_visible(page, "delivery")
    _tab_to(page, "#wifi-next")
    page.keyboard.press("Enter")
    page.wait_for_selector("#link-step", state="visible")
    _tab_to(page, "#finish")
    page.keyboard.press("Enter")
    wait_visible(page, "done")
    page.wait_for_selector("#receipt-line", state="visible")
    assert kiosk.state().phase == "idle"
    assert page.get_attribute("#mode-large", "aria-pressed") == "true"  # kept for the visit...
    _tab_to(page, "#again")
    page.keyboard.press("Enter")
    page.wait_for_function("() => !document.getElementById('receipt').textContent")  # a fresh page
    wait_visible(page, "attract")
    assert page.get_attribute("#mode-large", "aria-pressed") == "false"  # ...and off for the next guest


def _press_f13(page: Any) -> None:
    """A key press of F13 as a USB shutter button sends it (Playwright's keyboard knows no F13: the
    DevTools protocol's input events, which Chromium handles like a real keyboard's)."""
    cdp = page.context.new_cdp_session(page)
    try:
        for kind in ("rawKeyDown", "keyUp"):
            cdp.send(
                "Input.dispatchKeyEvent",
                {"type": kind, "key": "F13", "code": "F13", "windowsVirtualKeyCode": 124},
            )
    finally:
        cdp.detach()


# Notes whether the idle warning is shown at any moment from now on (a poll can show it for under a second).
WATCH_IDLE_WARNING = """() => {
  window.idleWarningShown = false;
  const warning = document.getElementById('idle-warning');
  new MutationObserver(() => { if (!warning.hidden) window.idleWarningShown = true; })
    .observe(warning, {attributes: true, attributeFilter: ['hidden']});
}"""


def test_a_visit_with_a_physical_shutter_button(page: Any, served: tuple[Kiosk, str, SkewClock]) -> None:
    """A USB button typing F13 (or Enter/Space with no control focused) does each screen's main step."""
    kiosk = served[0]
    _press_f13(page)
    wait_visible(page, "consent")
    _press_f13(page)  # consent is never given by the button: it brings the guest to the box
    assert page.evaluate("() => document.activeElement.id") == "agree"
    assert not page.is_checked("#agree")
    page.keyboard.press("Space")
    _press_f13(page)
    wait_visible(page, "preview")
    wait_image_loaded(page, "#preview")
    page.evaluate(WATCH_IDLE_WARNING)
    _press_f13(page)
    page.wait_for_selector("#countdown", state="visible")
    wait_visible(page, "review")
    page.wait_for_selector("#review-busy", state="hidden")
    wait_image_loaded(page, "#result")  # the guest sees the headshot before pressing on
    # Taking the photo is not being idle: no "Are you still there?" (it took the next press for "I need
    # more time"; the capture's 20 s failsafe counted as an idle timeout, see tests/appliance/test_lifecycle).
    assert page.evaluate("() => window.idleWarningShown") is False
    assert page.evaluate("() => document.activeElement.id") == "review-title"
    page.keyboard.press("Enter")  # the heading has the focus, not a control: the button's Enter moves on
    wait_visible(page, "delivery")
    _press_f13(page)
    page.wait_for_selector("#link-step", state="visible")
    _press_f13(page)
    wait_visible(page, "done")
    page.wait_for_selector("#receipt-line", state="visible")
    assert kiosk.state().phase == "idle"
    _press_f13(page)
    page.wait_for_function("() => !document.getElementById('receipt').textContent")
    wait_visible(page, "attract")


def _spoken(page: Any) -> str:
    src = page.get_attribute("#speech", "src") or ""
    return parse_qs(urlsplit(src).query).get("text", [""])[0]


def _wait_spoken(page: Any, text: str) -> None:
    page.wait_for_function(
        "text => new URL(document.getElementById('speech').src || 'http://x/', location.href)"
        ".searchParams.get('text') === text",
        arg=text,
    )


def test_speech_follows_the_screens(page: Any, served: tuple[Kiosk, str, SkewClock]) -> None:
    ui_url = served[1]
    assert not page.get_attribute("#speech", "src")  # off by default: nothing is asked for
    page.click("#mode-speech")
    assert page.get_attribute("#mode-speech", "aria-pressed") == "true"
    _wait_spoken(page, EVENT)  # the attract screen's heading...
    audio = page.request.get(page.evaluate("() => document.getElementById('speech').src"))
    if ESPEAK:
        assert audio.status == 200 and audio.headers["content-type"] == "audio/wav"
        assert audio.body()[:4] == b"RIFF"
    else:
        assert audio.status == 503
    page.evaluate("() => document.getElementById('speech').dispatchEvent(new Event('ended'))")
    _wait_spoken(page, "A professional headshot in under a minute, straight to your phone.")  # ...its lead

    page.click("#start")
    wait_visible(page, "consent")
    title = page.inner_text("#consent-title")
    _wait_spoken(page, title)
    answer = page.request.get(page.evaluate("() => document.getElementById('speech').src"))
    assert answer.status == (200 if ESPEAK else 503)
    page.evaluate("() => document.getElementById('speech').dispatchEvent(new Event('ended'))")
    intro = f"{EVENT} makes your headshot right here, on this kiosk."  # with the event's name filled in
    _wait_spoken(page, intro)
    answer = page.request.get(page.evaluate("() => document.getElementById('speech').src"))
    assert answer.status == (200 if ESPEAK else 503)
    page.click("#speech-repeat")
    _wait_spoken(page, title)
    page.fill("#speech-volume", "40")
    assert page.evaluate("() => document.getElementById('speech').volume") == pytest.approx(0.4)
    # A text no screen shows is never said.
    refused = page.request.get(ui_url + "/api/speech.wav?lang=en&text=jane.doe%40example.com")
    assert refused.status == 404

    page.check("#agree")
    page.click("#accept")
    wait_visible(page, "preview")
    _wait_spoken(page, "Live preview")
    page.click("#shoot")
    _wait_spoken(page, "2")  # the countdown's numbers
    _wait_spoken(page, "1")
    wait_visible(page, "review")
    _wait_spoken(page, "Choose your headshot")

    # The modes stay for the visit across a language change, and the voice follows the language.
    page.click("#delete-btn")
    wait_visible(page, "done")
    page.wait_for_selector("#deleted", state="visible")
    page.click("#again")
    page.wait_for_function("() => !document.getElementById('receipt').textContent")
    wait_visible(page, "attract")
    assert page.get_attribute("#mode-speech", "aria-pressed") == "false"  # the next guest: off again
    page.click("#mode-speech")
    page.click("a.lang[lang=fr]")
    page.wait_for_function("() => document.documentElement.lang === 'fr'")
    wait_visible(page, "attract")
    assert page.get_attribute("#mode-speech", "aria-pressed") == "true"
    _wait_spoken(page, EVENT)
    assert "lang=fr" in (page.get_attribute("#speech", "src") or "")


def test_the_idle_warning_gives_time_and_can_be_extended(
    page: Any, served: tuple[Kiosk, str, SkewClock]
) -> None:
    kiosk, _, clock = served
    warning = kiosk.cfg.session.idle_warning_seconds
    assert warning >= 20
    page.click("#start")
    wait_visible(page, "consent")
    # Jump to 2 s into the warning instead of waiting 40 s.
    clock.offset += CONSENT_IDLE - warning + 2
    page.wait_for_selector("#idle-warning", state="visible")
    assert page.evaluate("() => document.activeElement.id") == "still-here"  # reachable at once
    left = kiosk.state().idle_seconds_left
    assert left is not None and 0 < left <= warning
    page.screenshot(path=str(SHOTS / "idle-warning-landscape.png"))
    problems = _problems(page, "idle warning")
    assert not problems, "\n".join(problems)
    page.click("#still-here")
    page.wait_for_selector("#idle-warning", state="hidden")
    page.wait_for_function("() => true")
    deadline = time.monotonic() + 10
    while (kiosk.state().idle_seconds_left or 0) <= warning and time.monotonic() < deadline:
        time.sleep(0.1)
    state = kiosk.state()
    assert state.phase == "consent" and (state.idle_seconds_left or 0) > CONSENT_IDLE - 5  # a full timeout
    time.sleep(1.5)  # polls after the extension do not bring the warning back
    assert page.is_hidden("#idle-warning")


# -- the event's brand (issue 14.3) -----------------------------------------------------------------------

BRAND_THEME = {"background": "#FFFFFF", "text": "#1A1A1A", "accent": "#0B5CAD", "on_accent": "#FFFFFF"}
BRAND_BACKGROUNDS = ["studio-grey", "#1F4E79", "#00AA88", "backdrop"]
BRAND_NAMES = ["Studio grey", "Open Doors blue", "Colour", "Event backdrop"]
LOGO_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 60" onload="alert(1)">
  <script>document.title = 'pwned'</script>
  <rect width="200" height="60" rx="10" fill="#0b5cad"/>
  <text x="100" y="40" font-size="28" text-anchor="middle" fill="#ffffff">Open Doors</text>
</svg>"""


def _solid_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain PNG written by hand (Pillow is the kiosk's, not needed to make a test picture)."""
    row = b"\x00" + bytes(rgb) * width
    data = zlib.compress(row * height)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def branded_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kiosk, str]]:
    base = tmp_path_factory.mktemp("a11y-brand")
    (base / "logo.svg").write_bytes(LOGO_SVG)
    (base / "backdrop.png").write_bytes(_solid_png(800, 600, (214, 226, 240)))
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(base / "store")},
            "audit": {"path": str(base / "audit")},
            "ui": {"port": free_port()},
            "delivery": {"port": free_port(), "public_host": "localhost"},
            # Its own ports: the module's other kiosk is still being served.
            "staff": {"port": free_port()},
            "event": {"name": EVENT, "languages": ["en", "fr"], "backgrounds": BRAND_BACKGROUNDS},
            "branding": {
                **BRAND_THEME,
                "logo": str(base / "logo.svg"),
                "backdrop": str(base / "backdrop.png"),
                "colour_names": {"#1F4E79": "Open Doors blue"},
            },
            "session": {"countdown_seconds": 1},
        }
    )
    kiosk = Kiosk(cfg)
    with served_kiosk(kiosk) as ui_url:
        yield kiosk, ui_url


BODY_BACKGROUND = "() => getComputedStyle(document.body).backgroundColor"


def test_the_brand_theme_logo_samples_and_swatches_are_accessible(
    browser: Any, branded_served: tuple[Kiosk, str]
) -> None:
    kiosk, ui_url = branded_served
    context = browser.new_context(viewport=VIEWPORTS["landscape"])
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    problems: list[str] = []
    try:
        pg.goto(ui_url + "/?lang=en")
        wait_visible(pg, "attract")
        # The event's colours, and the guest's high-contrast mode over them.
        assert pg.evaluate(BODY_BACKGROUND) == "rgb(255, 255, 255)"
        pg.evaluate(SET_MODES, ["contrast"])
        assert pg.evaluate(BODY_BACKGROUND) == "rgb(0, 0, 0)"
        pg.evaluate(SET_MODES, [])
        # The logo (its script never ran: an <img> runs none, and the served SVG has none).
        wait_image_loaded(pg, "#attract-logo")
        assert pg.title() == EVENT
        # The sample headshots, once the kiosk has rendered them (text until then).
        pg.wait_for_selector("#samples", state="visible", timeout=180_000)
        wait_image_loaded(pg, "#reel img.current")
        assert pg.evaluate("() => document.querySelectorAll('#reel img').length") == 4
        assert pg.get_attribute("#reel img.current", "alt") == "Example headshot"
        pg.click("#samples-pause")
        assert pg.get_attribute("#samples-pause", "aria-pressed") == "true"
        _every_mode_and_orientation(pg, "brand-attract", problems)
        assert pg.is_visible("#start")

        pg.click("#start")
        wait_visible(pg, "consent")
        _every_mode_and_orientation(pg, "brand-consent", problems)
        pg.check("#agree")
        pg.click("#accept")
        wait_visible(pg, "preview")
        wait_image_loaded(pg, "#preview")
        pg.click("#shoot")
        wait_visible(pg, "review")
        pg.wait_for_selector("#review-busy", state="hidden")
        # Swatches with names: a sample of each background and its name, never a colour code.
        chips = pg.evaluate(
            """() => [...document.querySelectorAll('#bg-choices button')].map(b => ({
                 text: b.textContent.trim(), name: b.innerText.trim(),
                 swatch: !!b.querySelector('.swatch[aria-hidden=true]'),
                 fill: getComputedStyle(b.querySelector('.swatch')).backgroundImage + ' ' +
                       getComputedStyle(b.querySelector('.swatch')).backgroundColor }))"""
        )
        assert [c["text"] for c in chips] == BRAND_NAMES
        assert all(c["swatch"] and "#" not in c["text"] for c in chips), chips
        assert "rgb(31, 78, 121)" in chips[1]["fill"] and "brand/backdrop.jpg" in chips[3]["fill"]
        pg.click("#bg-choices button:nth-child(4)")
        pg.wait_for_selector("#bg-choices button:nth-child(4)[aria-pressed=true]")
        pg.wait_for_selector("#review-busy", state="hidden")
        wait_image_loaded(pg, "#result")
        _every_mode_and_orientation(pg, "brand-review", problems)
        pg.click("#delete-btn")
        wait_visible(pg, "done")
        pg.wait_for_selector("#deleted", state="visible")
    finally:
        context.close()
        if kiosk.state().phase != "idle":
            kiosk.delete_now()
    assert not problems, "\n".join(problems)
    assert not [e for e in errors if "Content Security Policy" in e or "Error" in e], errors
