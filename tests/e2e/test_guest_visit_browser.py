"""End to end in a real headless Chromium: a whole visit on the kiosk page, then a second browser context as
the phone opens the one-time link over TLS and saves the JPEG.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package; Playwright
drives the system browser through ``executable_path``, it never downloads one. Screenshots of every screen go
to ``$UI_SCREENSHOT_DIR`` (default /tmp) as ``ui-*.png``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

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

SHOTS = Path(os.environ.get("UI_SCREENSHOT_DIR", "/tmp"))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kiosk, str]]:
    """A started Kiosk behind both real listeners (the entry point), with the appliance's tick loop."""
    base = tmp_path_factory.mktemp("e2e")
    wifi = base / "wifi.qr"
    wifi.write_text("WIFI:T:WPA;S:Headshot Kiosk;P:a7Kp3mZq9Xw2Rt5Vb8Nc;;\n")
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(base / "store")},
            "audit": {"path": str(base / "audit")},
            "ui": {"port": free_port()},
            # The kiosk's own hotspot: the delivery screen shows how to join it first.
            "delivery": {"port": free_port(), "public_host": "localhost", "wifi_qr_path": str(wifi)},
            "event": {"name": "Career Fair 2025", "languages": ["en", "fr", "es", "de"]},
            "session": {"countdown_seconds": 2},
        }
    )
    kiosk = Kiosk(cfg)
    with served_kiosk(kiosk) as ui_url:
        yield kiosk, ui_url


def test_full_visit_and_phone_download(served: tuple[Kiosk, str]) -> None:
    kiosk, ui_url = served
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            # Playwright gives each context its own temporary profile (it refuses --user-data-dir here).
            args=LAUNCH_ARGS,
            headless=True,
        )
        try:
            kiosk_ctx = browser.new_context(viewport={"width": 1280, "height": 800})
            page = kiosk_ctx.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(ui_url + "/")
            wait_visible(page, "attract")
            page.screenshot(path=str(SHOTS / "ui-attract.png"))

            page.click("#start")
            wait_visible(page, "consent")
            assert page.is_disabled("#accept")  # the agreement is required
            page.screenshot(path=str(SHOTS / "ui-consent.png"), full_page=True)
            page.check("#agree")
            page.click("#accept")
            wait_visible(page, "preview")
            wait_image_loaded(page, "#preview")  # MJPEG frames arrive
            page.wait_for_function(
                "() => document.getElementById('guidance').textContent.length > 0", timeout=TIMEOUT_MS
            )
            page.screenshot(path=str(SHOTS / "ui-preview.png"))
            page.click("#held-btn")
            page.wait_for_selector("#held-dialog[open]")
            page.screenshot(path=str(SHOTS / "ui-held.png"))
            page.click("#held-close")

            page.click("#shoot")
            page.wait_for_selector("#countdown", state="visible")
            page.screenshot(path=str(SHOTS / "ui-countdown.png"))
            wait_visible(page, "review")
            wait_image_loaded(page, "#result")
            first = page.get_attribute("#result", "src")
            page.click("#bg-choices button:nth-child(2)")  # another background
            page.wait_for_function(
                "src => document.getElementById('result').getAttribute('src') !== src",
                arg=first,
                timeout=TIMEOUT_MS,
            )
            page.wait_for_selector("#review-busy", state="hidden", timeout=TIMEOUT_MS)
            page.click("#preset-choices button:nth-child(2)")  # another crop
            page.wait_for_selector("#review-busy", state="hidden", timeout=TIMEOUT_MS)
            wait_image_loaded(page, "#result")
            page.screenshot(path=str(SHOTS / "ui-review.png"))
            # Another crop too, through the same link (issue 15.4).
            page.click("#also-choices button:first-child")
            assert page.get_attribute("#also-choices button:first-child", "aria-pressed") == "true"

            page.click("#deliver")
            wait_visible(page, "delivery")
            # Join, then collect: the Wi-Fi's code, name and password first, the link's code after.
            page.wait_for_selector("#wifi-step", state="visible")
            assert page.is_hidden("#link-step")
            wait_image_loaded(page, "#wifi-qr")
            assert page.inner_text("#wifi-ssid") == "Headshot Kiosk"
            assert page.inner_text("#wifi-password") == "a7Kp3mZq9Xw2Rt5Vb8Nc"
            page.click("#wifi-next")
            page.wait_for_selector("#link-step", state="visible")
            wait_image_loaded(page, "#qr")
            assert "once" in page.inner_text("#expires")
            page.screenshot(path=str(SHOTS / "ui-delivery.png"))
            link = kiosk.delivery_url()
            assert link is not None and link.startswith("https://localhost:")

            # The phone: its own context, which alone accepts the kiosk's self-signed certificate.
            phone_ctx = browser.new_context(
                ignore_https_errors=True,
                accept_downloads=True,
                viewport={"width": 390, "height": 844},
                is_mobile=True,
                has_touch=True,
            )
            phone = phone_ctx.new_page()
            phone.goto(link)
            assert "Save photo" in phone.inner_text("#save")
            assert "2 JPEG photos" in phone.inner_text("#about")
            phone.screenshot(path=str(SHOTS / "ui-phone.png"))
            with phone.expect_download(timeout=TIMEOUT_MS) as info:
                phone.click("#save")
            saved = Path(info.value.path()).read_bytes()
            assert saved[:3] == b"\xff\xd8\xff" and saved[-2:] == b"\xff\xd9"
            assert info.value.suggested_filename.startswith("headshot-")
            # Both crops arrived with the one tap, each shown and each with its own download.
            phone.wait_for_function(
                "() => [...document.querySelectorAll('#result img')]"
                ".filter(i => i.complete && i.naturalWidth > 0).length === 2",
                timeout=TIMEOUT_MS,
            )
            again = phone.goto(link)
            assert again is not None and again.status == 404  # spent
            phone_ctx.close()

            page.click("#finish")
            wait_visible(page, "done")
            # The code shows once the server has confirmed the wipe.
            page.wait_for_selector("#receipt-line", state="visible", timeout=TIMEOUT_MS)
            receipt = page.inner_text("#receipt")
            assert len(receipt) == 8
            assert "deleted" in page.inner_text("#screen-done")
            page.screenshot(path=str(SHOTS / "ui-done.png"))
            assert kiosk.state().phase == "idle"
            page.click("#again")
            wait_visible(page, "attract")

            # Languages switch on the attract screen and render translated text.
            page.click("a.lang[lang=fr]")
            wait_visible(page, "attract")
            assert page.get_attribute("html", "lang") == "fr"
            page.screenshot(path=str(SHOTS / "ui-attract-fr.png"))
            assert not [e for e in errors if "Content Security Policy" in e], errors
            kiosk_ctx.close()
        finally:
            browser.close()
