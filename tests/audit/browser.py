"""Visits through a real browser: Debian's Chromium with the kiosk browser's own flags, driven by Playwright,
ONE kiosk page for every visit of the run (as on the device, where the page is never reloaded by anyone);
a second browser plays the phone and saves the photo over TLS. The kiosk browser's profile lives under the
run's directory, so the residue scan reads whatever the browser kept. Skipped with a note when either is
missing."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tests.audit.state import Audit
from tests.support import CHROMIUM, LAUNCH_ARGS, TIMEOUT_MS, wait_image_loaded, wait_visible


def run_browser_shares(audit: Audit, count: int) -> None:
    """``count`` whole visits in Chromium: consent, preview, capture, another background, deliver, the
    phone saves the photo, finish."""
    if not Path(CHROMIUM).exists():
        # Only root gets this far, and as root `make test` installs it: its absence is a broken setup.
        audit.fail(f"browser visits impossible: {CHROMIUM} is not installed (apt-get install chromium)")
        return
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        audit.fail("browser visits impossible: the playwright package is not installed")
        return
    api = audit.api()
    profile = audit.layout.base / "kiosk-browser-profile"  # inside what the residue scan reads
    with sync_playwright() as p:
        kiosk_ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=LAUNCH_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 800},
        )
        phones = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            page = kiosk_ctx.pages[0] if kiosk_ctx.pages else kiosk_ctx.new_page()
            csp_errors: list[str] = []
            page.on(
                "console",
                lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None,
            )
            page.goto(audit.layout.ui_url + "/")
            qr_urls: set[str] = set()
            for n in range(count):
                audit.visits["browser"] += 1
                try:
                    _one_visit(audit, page, phones, api, qr_urls)
                    if csp_errors:
                        raise AssertionError(f"CSP violations: {csp_errors[:3]}")
                except Exception as exc:  # a browser step failing is a finding, not a crash of the audit
                    audit.fail(f"browser visit {n}: {type(exc).__name__}: {str(exc)[:300]}")
                    state = api.get("/api/session").json()
                    if state.get("phase") != "idle":
                        api.post("/api/session/delete")
                    page.goto(audit.layout.ui_url + "/")  # the next visit starts from a working page
                audit.sessions_since_start += 1
        finally:
            phones.close()
            kiosk_ctx.close()


def _one_visit(audit: Audit, page: Any, phones: Any, api: Any, qr_urls: set[str]) -> None:
    """One guest on the day's page, from the attract screen back to a fresh one."""
    wait_visible(page, "attract")
    page.click("#start")
    wait_visible(page, "consent")
    page.check("#agree")
    page.click("#accept")
    wait_visible(page, "preview")
    wait_image_loaded(page, "#preview")
    for pid in audit.kiosk.workers():
        audit.session_workers.add(pid)
    page.click("#shoot")
    wait_visible(page, "review")
    wait_image_loaded(page, "#result")
    first = page.get_attribute("#result", "src")
    page.click("#bg-choices button:nth-child(2)")
    page.wait_for_function(
        "src => document.getElementById('result').getAttribute('src') !== src",
        arg=first,
        timeout=TIMEOUT_MS,
    )
    page.wait_for_selector("#review-busy", state="hidden", timeout=TIMEOUT_MS)
    wait_image_loaded(page, "#result")
    src = str(page.get_attribute("#result", "src"))
    for url in {str(first), src}:
        reply = api.get(url)  # the harness learns the bytes the browser showed
        if reply.status == 200:
            audit.learn_image(reply.body, "browser-render")
    render_sha = hashlib.sha256(api.get(src).body).hexdigest()
    with page.expect_response("**/api/session/deliver", timeout=TIMEOUT_MS) as info:
        page.click("#deliver")
    url = str(info.value.json()["url"])
    wait_visible(page, "delivery")
    wait_image_loaded(page, "#qr")
    qr_url = str(page.get_attribute("#qr", "src"))
    if qr_url in qr_urls:
        raise AssertionError("the kiosk page showed an earlier guest's QR image URL")
    qr_urls.add(qr_url)
    token = url.split("/d/", 1)[1]
    audit.learn_token(token, render_sha)
    phone_ctx = phones.new_context(
        ignore_https_errors=True,
        accept_downloads=True,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    try:
        phone = phone_ctx.new_page()
        phone.goto(url)
        with phone.expect_download(timeout=TIMEOUT_MS) as dl:
            phone.click("#save")
        download = dl.value
        saved = Path(download.path()).read_bytes()
        download.delete()  # the phone's copy is the guest's; the audit must not leave it in /tmp
        if hashlib.sha256(saved).hexdigest() != render_sha:
            raise AssertionError("the phone saved other bytes than the headshot shown")
        audit.deliveries[token].state = "collected"
        again = phone.goto(url)
        if again is None or again.status != 404:
            raise AssertionError("a spent link did not answer 404 in the phone's browser")
    finally:
        phone_ctx.close()
    page.click("#finish")
    wait_visible(page, "done")
    page.click("#again")  # a fresh page for the next guest
    # ?. : polled while the document is replaced, when there is no <body> for a moment
    page.wait_for_function("() => document.body?.dataset.screen === 'attract'", timeout=TIMEOUT_MS)
    left = page.evaluate("() => document.documentElement.outerHTML")
    if token in left or src in left or qr_url in left:
        raise AssertionError("the next guest's page still holds the previous visit's link, image or QR")
