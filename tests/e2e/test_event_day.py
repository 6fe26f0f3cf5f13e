"""An event day in ONE kiosk page (issue 11): many guests in a row in a single Chromium page started with the
kiosk's own flags, as the kiosk's browser is opened once in the morning and never reloaded by anyone.

A seeded random script plays the guests: languages, declining, retakes, the privacy notice, Delete now at
random moments (always once during the 3-2-1 countdown and once while the headshot is being made), walking
away, Withdraw in "What we hold", and delivering to a phone — a separate browser that scans the QR code from
the kiosk's screen (OpenCV's QRCodeDetector on a screenshot) and saves the photo.

Per guest it checks what the NEXT guest could see: the QR is new and opens this guest's photo only; after
Delete now nothing of the guest can be collected; when the visit ends the page holds no image, URL, QR,
code or language of it. At the end it scans the kiosk browser's profile directory for anything of the day.
Figures (time from Delete now to the "deleted" screen, time to a fresh page) are printed and written to
``$UI_SCREENSHOT_DIR/event-day.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import statistics
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from appliance.lifecycle import WipeReason
from appliance.visit import Receipt
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

GUESTS = int(os.environ.get("HK_EVENT_DAY_GUESTS", "22"))
SEED = int(os.environ.get("HK_EVENT_DAY_SEED", "2026"))
SHOTS = Path(os.environ.get("UI_SCREENSHOT_DIR", "/tmp"))
IDLE_SECONDS = 8.0  # every guest phase; short so walking away costs the test seconds, not minutes

# What a guest does. Two kinds are always in the day (the moments the first wave never tested).
KINDS = [
    "deliver",
    "deliver_retake",
    "deliver_then_delete",
    "decline",
    "delete_in_preview",
    "delete_in_review",
    "withdraw_in_held",
    "walk_away_preview",
    "walk_away_notice",
]
ALWAYS = ["delete_in_countdown", "delete_in_processing", "deliver", "deliver_then_delete"]


@dataclass
class Day:
    kiosk: Kiosk
    ui_url: str
    receipts: list[Receipt]
    profile: Path
    delete_to_screen_ms: list[float] = field(default_factory=list)
    delete_to_confirmed_ms: list[float] = field(default_factory=list)
    fresh_page_ms: list[float] = field(default_factory=list)
    seen_qr: set[str] = field(default_factory=set)
    seen_links: list[str] = field(default_factory=list)
    left_on_done_screen: int = 0
    secrets: list[str] = field(default_factory=list)  # render ids, QR nonces, receipt codes, session ids


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day]:
    base = tmp_path_factory.mktemp("event-day")
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(base / "store")},
            "audit": {"path": str(base / "audit")},
            "ui": {"port": free_port()},
            "delivery": {"port": free_port(), "public_host": "localhost"},
            "event": {
                "name": "Career Fair 2026",
                "languages": ["en", "fr", "es", "de"],
                "consent_choices": ["skin_smoothing"],
            },
            "session": {
                "countdown_seconds": 2,
                "max_takes": 3,
                "idle_warning_seconds": 3,
                "consent_idle_timeout_seconds": IDLE_SECONDS,
                "preview_idle_timeout_seconds": IDLE_SECONDS,
                "review_idle_timeout_seconds": IDLE_SECONDS * 2,
                "delivery_idle_timeout_seconds": IDLE_SECONDS * 2,
            },
        }
    )
    receipts: list[Receipt] = []
    kiosk = Kiosk(cfg, on_receipt=receipts.append)
    with served_kiosk(kiosk) as ui_url:
        yield Day(kiosk, ui_url, receipts, base / "kiosk-browser-profile")


# -- what a page shows --------------------------------------------------------------------------------

_SNAPSHOT = """() => ({
  html: document.documentElement.outerHTML,
  images: [...document.images].map((i) => i.getAttribute("src") || ""),
  resources: performance.getEntriesByType("resource").map((e) => e.name),
  lang: document.documentElement.lang,
  history: history.length,
  scroll: window.scrollY,
})"""


EVENT_IMAGE = re.compile(r"/brand/(sample/\d+\.jpg|logo|backdrop\.jpg)")


def _snapshot(page: Any) -> dict[str, Any]:
    return dict(page.evaluate(_SNAPSHOT))


def _assert_holds_nothing_of(page: Any, day: Day, traces: list[str], *, where: str) -> None:
    snap = _snapshot(page)
    text = json.dumps(snap)
    leaked = [t for t in traces if t and t in text]
    assert not leaked, f"{where}: the page still holds {leaked}"
    # The only pictures a fresh page may show are the event's: its logo and the attract screen's sample
    # headshots, made from the bundled demo portraits (kiosk_ui/brand.py), never a guest's.
    visit_images = [src for src in snap["images"] if src and not EVENT_IMAGE.fullmatch(src)]
    assert not visit_images, f"{where}: images still set: {snap['images']}"


def _read_qr(image: Any) -> str:
    """Decode a QR code as a phone's camera app would: whatever it takes. OpenCV's classic detector misses
    about 1 in 50 codes of this size on its own (measured over random links), so both of its detectors
    try a binarised copy with a quiet zone at a few scales; 0 misses in 600 random links."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    _, bw = cv2.threshold(grey, 128, 255, cv2.THRESH_BINARY)
    bw = cv2.copyMakeBorder(bw, 32, 32, 32, 32, cv2.BORDER_CONSTANT, value=255)
    for detector in (cv2.QRCodeDetector(), cv2.QRCodeDetectorAruco()):
        for scale in (1.0, 0.5, 0.75, 1.5, 2.0):
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST
            scaled = (
                bw if scale == 1.0 else cv2.resize(bw, None, fx=scale, fy=scale, interpolation=interpolation)
            )
            text, _, _ = detector.detectAndDecode(scaled)
            if text:
                return str(text)
    return ""


def _decode_qr(page: Any) -> str:
    """Read the QR code off the kiosk's screen, as a phone camera would."""
    wait_image_loaded(page, "#qr")
    png = page.locator("#qr").screenshot()
    text = _read_qr(cv2.imdecode(np.frombuffer(png, dtype=np.uint8), cv2.IMREAD_COLOR))
    assert text.startswith("https://localhost:"), f"no readable QR on the screen ({text!r})"
    return text


def _fresh_start(page: Any, day: Day, traces: list[str], *, press_again: bool) -> None:
    """The visit is over: the page replaces itself with a fresh start page in the default language."""
    t0 = time.perf_counter()
    if press_again:
        page.click("#again")
    page.wait_for_function(
        # ?. : the predicate is polled while the document is being replaced (no <html>/<body> for a moment)
        "() => document.body?.dataset.screen === 'attract' && document.documentElement?.lang === 'en'",
        timeout=TIMEOUT_MS,
    )
    wait_visible(page, "attract")
    if press_again:
        day.fresh_page_ms.append((time.perf_counter() - t0) * 1000)
    _assert_holds_nothing_of(page, day, traces, where="fresh page")
    snap = _snapshot(page)
    # Nothing was loaded by the new document but the page itself and its static files.
    assert all("/api/session/render/" not in r and "qr.png" not in r for r in snap["resources"]), snap
    assert snap["scroll"] == 0


def _press_delete(page: Any, day: Day, button: str = "#delete-btn") -> None:
    t0 = time.perf_counter()
    page.click(button)
    wait_visible(page, "done")  # the page holds nothing of the visit any more: "Deleting your photos..."
    day.delete_to_screen_ms.append((time.perf_counter() - t0) * 1000)
    page.wait_for_selector("#deleted", state="visible", timeout=TIMEOUT_MS)  # the server confirmed
    day.delete_to_confirmed_ms.append((time.perf_counter() - t0) * 1000)
    page.wait_for_selector("#receipt-line", state="visible", timeout=TIMEOUT_MS)


def _wait_idle(day: Day, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while day.kiosk.state().phase != "idle":
        assert time.monotonic() < deadline, "the kiosk did not wipe the visit"
        time.sleep(0.05)


# -- the guests --------------------------------------------------------------------------------


def _begin(page: Any, rng: random.Random, day: Day) -> str:
    lang = rng.choice(["en", "en", "fr", "es", "de"])
    if lang != "en":
        page.click(f"a.lang[lang={lang}]")
        page.wait_for_function(f"() => document.documentElement?.lang === '{lang}'", timeout=TIMEOUT_MS)
        wait_visible(page, "attract")
    page.click("#start")
    wait_visible(page, "consent")
    state = day.kiosk.state()
    day.secrets += [str(state.visit), str(state.receipt)]
    return lang


def _consent(page: Any, rng: random.Random) -> bool:
    smoothing = rng.random() < 0.5
    if smoothing:
        page.check("#choice-skin_smoothing")
    page.check("#agree")
    page.click("#accept")
    wait_visible(page, "preview")
    wait_image_loaded(page, "#preview")
    return smoothing


def _shoot(page: Any) -> None:
    page.click("#shoot")
    wait_visible(page, "review")
    wait_image_loaded(page, "#result")


def _render_traces(page: Any, day: Day) -> list[str]:
    state = day.kiosk.state()
    ids = [h.id for h in state.headshots] + [t.id for t in state.takes]
    day.secrets += ids
    return ids


def _deliver_and_collect(page: Any, phone: Any, day: Day) -> tuple[str, str]:
    """Deliver the headshot on screen; the phone scans the QR and saves the photo. Returns (link, sha256)."""
    src = page.get_attribute("#result", "src") or ""
    render_id = src.rsplit("/", 1)[1].removesuffix(".jpg")
    expected = hashlib.sha256(day.kiosk.image(render_id)).hexdigest()
    page.click("#deliver")
    wait_visible(page, "delivery")
    link = _decode_qr(page)
    assert link not in day.seen_qr, "this guest was shown an earlier guest's QR code"
    day.seen_qr.add(link)
    day.seen_links.append(link)
    nonce = (page.get_attribute("#qr", "src") or "").rsplit("v=", 1)[-1]
    day.secrets += [nonce, link.rsplit("/d/", 1)[1]]
    return link, expected


def _collect(phone: Any, link: str) -> bytes | None:
    tab = phone.new_page()
    try:
        response = tab.goto(link)
        if response is None or response.status != 200:
            return None
        with tab.expect_download(timeout=TIMEOUT_MS) as info:
            tab.click("#save")
        return Path(info.value.path()).read_bytes()
    finally:
        tab.close()


def _guest(page: Any, phone: Any, day: Day, rng: random.Random, kind: str, n: int) -> None:
    before = len(day.receipts)
    lang = _begin(page, rng, day)
    traces: list[str] = [str(day.kiosk.state().receipt), str(day.kiosk.state().visit)]
    if kind == "decline":
        page.click("#decline")
        _fresh_start(page, day, traces, press_again=False)
        assert day.receipts[-1].outcome is WipeReason.CONSENT_DECLINED
        return
    if kind == "walk_away_notice":
        page.click("#notice-link")
        page.wait_for_selector("main.notice", timeout=TIMEOUT_MS)
        assert page.get_attribute("html", "lang") == lang
        # Nobody touches the notice: the visit is wiped and the screen goes back to the start by itself.
        _fresh_start(page, day, traces, press_again=False)
        assert day.receipts[-1].outcome is WipeReason.IDLE_TIMEOUT
        return
    if rng.random() < 0.25:  # read the notice and come back
        page.click("#notice-link")
        page.wait_for_selector("main.notice", timeout=TIMEOUT_MS)
        page.click("#notice-back")
        wait_visible(page, "consent")
    smoothing = _consent(page, rng)
    if kind == "delete_in_preview":
        _press_delete(page, day)
        traces += _render_traces(page, day)
    elif kind == "walk_away_preview":
        _fresh_start(page, day, traces, press_again=False)  # the idle wipe, then a fresh page by itself
        assert day.receipts[-1].outcome is WipeReason.IDLE_TIMEOUT
        return
    elif kind == "delete_in_countdown":
        page.click("#shoot")
        page.wait_for_selector("#countdown", state="visible", timeout=TIMEOUT_MS)
        _press_delete(page, day)
        time.sleep(page_countdown_seconds(day) + 0.5)  # the countdown would have ended by now
        assert day.kiosk.counters.wipes >= 1 and day.kiosk.state().phase == "idle"
        assert day.kiosk.session_dirs() == [], "a photo was taken after Delete now"
    elif kind == "delete_in_processing":
        page.click("#shoot")
        wait_visible(page, "processing")
        _wait_server_busy(day)
        _press_delete(page, day)
        assert day.kiosk.state().phase == "idle" and day.kiosk.session_dirs() == []
    else:
        _shoot(page)
        if kind == "deliver_retake":
            page.click("#retake")
            wait_visible(page, "preview")
            wait_image_loaded(page, "#preview")
            _shoot(page)
        if rng.random() < 0.5:
            page.click("#bg-choices button:nth-child(2)")
            page.wait_for_selector("#review-busy", state="hidden", timeout=TIMEOUT_MS)
            wait_image_loaded(page, "#result")
        traces += _render_traces(page, day)
        if kind == "delete_in_review":
            _press_delete(page, day)
        elif kind == "withdraw_in_held":
            page.click("#held-btn")
            page.wait_for_selector("#held-dialog[open]", timeout=TIMEOUT_MS)
            assert page.locator("#held-list li").count() >= 2
            _press_delete(page, day, "#held-revoke")
            assert day.receipts[-1].outcome is WipeReason.CONSENT_REVOKED
        else:
            link, expected = _deliver_and_collect(page, phone, day)
            traces += day.secrets[-2:]
            if kind == "deliver_then_delete":
                _press_delete(page, day)
                assert _collect(phone, link) is None, "a deleted guest's photo could still be collected"
            else:
                saved = _collect(phone, link)
                assert saved is not None and hashlib.sha256(saved).hexdigest() == expected
                page.click("#finish")
                wait_visible(page, "done")
                assert _collect(phone, link) is None  # once only
    if kind != "walk_away_preview":
        page.wait_for_selector("#receipt-line", state="visible", timeout=TIMEOUT_MS)
        receipt = page.inner_text("#receipt")
        assert receipt == day.receipts[-1].code
        if day.kiosk.cfg.event.consent_choices:
            assert day.receipts[-1].choices == {"skin_smoothing": smoothing}
        # On the "deleted" screen already: nothing of the visit but the receipt code is left in the page.
        _assert_holds_nothing_of(page, day, [t for t in traces if t != receipt], where=f"guest {n} done")
        # Once in the day the guest walks away from the "deleted" screen: it returns to the start by itself
        # (30 s); everybody else presses Back to start.
        walk_off = day.left_on_done_screen == 0 and n >= 2
        day.left_on_done_screen += walk_off
        _fresh_start(page, day, traces, press_again=not walk_off)
    _wait_idle(day)
    assert len(day.receipts) == before + 1


def page_countdown_seconds(day: Day) -> int:
    return int(day.kiosk.cfg.session.countdown_seconds)


def _wait_server_busy(day: Day) -> None:
    """Until the worker is capturing or rendering (the processing screen shows before the request lands)."""
    deadline = time.monotonic() + 30
    while day.kiosk.state().phase not in ("capture", "processing"):
        assert time.monotonic() < deadline, "the capture never started"
        time.sleep(0.01)


def test_an_event_day_in_one_kiosk_page(day: Day) -> None:
    rng = random.Random(SEED)
    kinds = ALWAYS + [rng.choice(KINDS) for _ in range(max(0, GUESTS - len(ALWAYS)))]
    rng.shuffle(kinds)
    day.profile.mkdir()
    with playwright_api.sync_playwright() as p:
        # The kiosk: one page for the whole day, the kiosk browser's own flags, a profile we can inspect.
        kiosk_ctx = p.chromium.launch_persistent_context(
            str(day.profile),
            executable_path=CHROMIUM,
            args=LAUNCH_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 800},
        )
        # The phone: another browser altogether (a guest's own device).
        phone_browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        phone = phone_browser.new_context(
            ignore_https_errors=True,
            accept_downloads=True,
            viewport={"width": 390, "height": 844},
            is_mobile=True,
        )
        try:
            page = kiosk_ctx.pages[0] if kiosk_ctx.pages else kiosk_ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            # The page's last requests and answers, printed if a guest fails (the test's own kiosk and
            # guests): what the page asked and was told is the first clue to a tap that did nothing.
            requests: deque[str] = deque(maxlen=80)
            page.on("request", lambda r: requests.append(f"{time.monotonic():.3f} > {r.method} {r.url}"))
            page.on("response", lambda r: requests.append(f"{time.monotonic():.3f} < {r.status} {r.url}"))
            page.goto(day.ui_url + "/")
            wait_visible(page, "attract")
            for n, kind in enumerate(kinds):
                try:
                    _guest(page, phone, day, rng, kind, n)
                except Exception:
                    page.screenshot(path=str(SHOTS / f"event-day-fail-{n}-{kind}.png"))
                    print(f"guest {n} ({kind}) failed; the page's last requests:", *requests, sep="\n")
                    raise
            assert errors == [], errors
            assert len(day.seen_qr) == len(day.seen_links)  # every QR of the day was new
            # Nothing of the day in the page at the end, nor anything it still keeps in its history.
            _assert_holds_nothing_of(page, day, day.secrets, where="end of the day")
        finally:
            phone_browser.close()
            kiosk_ctx.close()
    _scan_profile(day)
    figures = {
        "guests": len(kinds),
        "kinds": {k: kinds.count(k) for k in sorted(set(kinds))},
        "delete_to_screen_emptied_ms": _summary(day.delete_to_screen_ms),
        "delete_to_deleted_confirmed_ms": _summary(day.delete_to_confirmed_ms),
        "fresh_page_ms": _summary(day.fresh_page_ms),
    }
    print("event day:", json.dumps(figures))
    (SHOTS / "event-day.json").write_text(json.dumps(figures, indent=2))
    # Delete now is never swallowed: the page empties at once and "deleted" (confirmed by the server, which
    # cancels a capture or render under way) shows within a second of the press.
    assert max(day.delete_to_screen_ms) < 1000, day.delete_to_screen_ms
    assert max(day.delete_to_confirmed_ms) < 1000, day.delete_to_confirmed_ms
    assert day.kiosk.session_dirs() == []


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"n": len(values), "median": round(statistics.median(values), 1), "max": round(max(values), 1)}


def _scan_profile(day: Day) -> None:
    """The kiosk browser's profile after the day holds no picture and no id, link or code of any guest."""
    needles = [s.encode() for s in day.secrets if s] + [b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\x89PNG\r\n\x1a\n"]
    hits = []
    for path in day.profile.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        hits += [f"{path.relative_to(day.profile)}: {needle[:12]!r}" for needle in needles if needle in data]
    assert not hits, hits
