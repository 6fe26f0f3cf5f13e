"""The staff console on a phone, in a real headless Chromium: a 390 × 844 touch screen (device scale 3) that
reaches the console by the kiosk's name over TLS (the real staff listener behind its event-driven front),
signs in with a TOTP code and visits every console page in English and French. On each page nothing may be
wider than the screen (also at 320 px), every control must be a touch target of at least 44 × 44 CSS px, and
axe-core must find no WCAG 2.2 A/AA violation.

The phone trusts exactly the kiosk's certificate (``--ignore-certificate-errors-spki-list`` with its key's
hash) and resolves the kiosk's name to loopback (``--host-resolver-rules``), as the hotspot's DNS would.

With ``$UI_SCREENSHOT_DIR`` set, each page is also saved there as ``staff-phone-*.png``.

Needs Debian's ``chromium``, the ``playwright`` package (it drives the system browser, never downloads one)
and axe-core's ``axe.min.js``, taken from the ``axe-playwright-python`` wheel (PyPI) or ``$AXE_CORE_JS``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pyotp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from appliance.accounts import Role, StaffStore
from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from kiosk_ui.serve import Listener, ephemeral_certificate, staff_listener
from tests.kiosk_ui.staff_helpers import FAST, PASSWORD
from tests.support import CHROMIUM, TIMEOUT_MS, free_port

if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")


def _axe_source() -> str | None:
    path = os.environ.get("AXE_CORE_JS")
    if path:
        return Path(path).read_text(encoding="utf-8")
    try:
        return (resources.files("axe_playwright_python") / "axe.min.js").read_text(encoding="utf-8")
    except ModuleNotFoundError:
        return None


AXE = _axe_source()
if AXE is None:
    pytest.skip(
        "axe-core is not installed (pip install axe-playwright-python==0.1.8, "
        "or set AXE_CORE_JS to an axe.min.js)",
        allow_module_level=True,
    )

HOST = "kiosk-7f3k.events.example.test"
PHONE = {"width": 390, "height": 844}
SMALLEST = {"width": 320, "height": 640}  # WCAG 1.4.10 reflow: 320 CSS px without scrolling sideways
TAP = 44  # CSS px: Apple's and Google's minimum touch target (WCAG 2.5.5 AAA; 2.5.8 AA asks for 24)
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
SHOTS = os.environ.get("UI_SCREENSHOT_DIR")

# Every control's box (a checkbox's: its label's, which is what a finger hits), except a link inside a
# sentence (WCAG 2.5.8's "inline" exception); the page's widest point against the screen.
MEASURE = """() => {
  const small = [];
  for (const el of document.querySelectorAll(
      'a[href], button, input:not([type=hidden]), select, textarea, summary')) {
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden') continue;
    if (el.tagName === 'A' && style.display === 'inline'
        && el.parentElement.textContent.trim() !== el.textContent.trim()) continue;
    const target = el.matches('input[type=checkbox], input[type=radio]') ? (el.closest('label') || el) : el;
    const r = target.getBoundingClientRect();
    if (r.width < 44 || r.height < 44) {
      small.push(`${el.tagName.toLowerCase()} "${(el.textContent || el.name || '').trim().slice(0, 40)}" ` +
                 `${Math.round(r.width)}x${Math.round(r.height)}`);
    }
  }
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width && (r.right > window.innerWidth + 0.5 || r.left < -0.5) && !el.closest('.skip')
        && !el.classList.contains('visually-hidden')) {
      wide.push(`${el.tagName.toLowerCase()}.${el.className} ${Math.round(r.left)}..${Math.round(r.right)}`);
    }
  }
  return {small, wide, scroll: document.documentElement.scrollWidth, width: window.innerWidth};
}"""


def _spki_hash(cert_pem: bytes) -> str:
    """base64(sha256(SubjectPublicKeyInfo)): what Chromium's SPKI allow-list takes."""
    public = x509.load_pem_x509_certificate(cert_pem).public_key()
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Listener, str, bytes]]:
    """The real staff listener over TLS for ``HOST`` on a loopback port, an admin account; yields the
    listener, the admin's TOTP secret and the certificate."""
    base = tmp_path_factory.mktemp("staff-phone")
    cert_pem, key_pem = ephemeral_certificate([HOST])
    (base / "staff.pem").write_bytes(cert_pem)
    (base / "staff.key").write_bytes(key_pem)
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(base / "store"), "size_mib": 64},
            "audit": {"path": str(base / "audit")},
            "delivery": {"public_host": HOST},
            "staff": {
                "port": free_port(),
                "accounts_path": str(base / "staff.json"),
                "tls_cert_path": str(base / "staff.pem"),
                "tls_key_path": str(base / "staff.key"),
            },
        }
    )
    secret = StaffStore(cfg.staff.accounts_path, argon2=FAST).add("alice", Role.ADMIN, PASSWORD).secret
    kiosk = Kiosk(cfg)
    kiosk.start(wait_for_worker=False)
    listener = staff_listener(kiosk, cfg)
    listener.start()
    try:
        yield listener, secret, cert_pem
    finally:
        listener.stop()
        kiosk.close()


def _code(secret: str) -> str:
    """A TOTP code of a time step not used before (codes are single-use per step)."""
    totp = pyotp.TOTP(secret)
    step = int(time.time() // 30)
    if getattr(_code, "last", None) == step:
        time.sleep(30 - time.time() % 30 + 0.5)
        step += 1
    _code.last = step  # type: ignore[attr-defined]
    return totp.now()


def _check_page(page: Any, what: str) -> list[str]:
    """Problems on the page as it is now: sideways overflow, small targets, axe violations."""
    problems = []
    measured = page.evaluate(MEASURE)
    if measured["scroll"] > measured["width"]:
        problems.append(f"{what}: {measured['scroll']} px wide on a {measured['width']} px screen")
    problems += [f"{what}: wider than the screen: {item}" for item in measured["wide"][:5]]
    problems += [f"{what}: touch target under {TAP} px: {item}" for item in measured["small"]]
    if page.evaluate("() => typeof window.axe") == "undefined":
        # Through the DevTools protocol, not a <script>: the console's CSP allows no inline script.
        page.evaluate(AXE)
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        WCAG_TAGS,
    )
    for violation in result["violations"]:
        nodes = "; ".join(node["target"][0] if node["target"] else "?" for node in violation["nodes"][:3])
        problems.append(f"{what}: axe {violation['id']} ({violation['impact']}): {nodes}")
    return problems


def test_the_console_on_a_phone_over_tls(console: tuple[Listener, str, bytes]) -> None:
    listener, secret, cert_pem = console
    origin = f"https://{HOST}:{listener.port}"
    problems: list[str] = []
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",  # the tests run as root
                f"--host-resolver-rules=MAP {HOST} 127.0.0.1",
                f"--ignore-certificate-errors-spki-list={_spki_hash(cert_pem)}",
            ],
        )
        try:
            context = browser.new_context(
                viewport=PHONE, device_scale_factor=3, is_mobile=True, has_touch=True, locale="en-US"
            )
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            # The camera check's stream would start a worker; the page around it is what is checked here.
            page.route("**/staff/camera.mjpg", lambda route: route.abort())
            posted: list[dict[str, str]] = []
            page.on("request", lambda r: posted.append(r.headers) if r.method == "POST" else None)

            response = page.goto(f"{origin}/staff/login")
            assert response is not None and response.status == 200
            assert response.security_details() is not None  # TLS, to the kiosk's name
            problems += _check_page(page, "login")
            page.fill("input[name=username]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.fill("input[name=totp]", _code(secret))
            page.tap("button[type=submit]")
            page.wait_for_url(f"{origin}/staff/")
            assert page.locator("#phase").inner_text().startswith("running")
            # The sign-in form posted with its real Origin (the page's same-origin referrer policy), which the
            # console's origin check accepts even from browsers without Fetch metadata.
            assert posted and posted[0].get("origin") == origin

            for lang in ("en", "fr"):
                for path in (
                    "/staff/",
                    "/staff/camera",
                    "/staff/admin/event",
                    "/staff/admin/accounts",
                    "/staff/admin/audit",
                    "/staff/admin/compliance",
                    f"/staff/admin/compliance/record-of-processing.{lang}.md",
                    "/staff/nowhere",
                ):
                    page.goto(f"{origin}{path}?lang={lang}")
                    assert page.evaluate("() => document.documentElement.lang") == lang
                    problems += _check_page(page, f"{path} ({lang})")
                    if SHOTS:
                        name = path.strip("/").replace("/", "-") or "root"
                        page.screenshot(
                            path=str(Path(SHOTS) / f"staff-phone-{name}-{lang}.png"), full_page=True
                        )
            page.set_viewport_size(SMALLEST)
            for path in ("/staff/", "/staff/admin/accounts", "/staff/admin/compliance"):
                page.goto(f"{origin}{path}")
                measured = page.evaluate(MEASURE)
                if measured["scroll"] > measured["width"] or measured["wide"]:
                    problems.append(f"{path} at 320 px: {measured['scroll']} px wide; {measured['wide'][:3]}")
            page.set_viewport_size(PHONE)

            # An operator action from the phone: the form posts over TLS with its CSRF token and Origin.
            page.goto(f"{origin}/staff/?lang=en")
            page.tap("form[action='/staff/kiosk/pause'] button")
            page.wait_for_url(f"{origin}/staff/?done=paused")
            assert "paused" in page.locator("#phase").inner_text()
            page.tap("form[action='/staff/kiosk/resume'] button")
            page.wait_for_url(f"{origin}/staff/?done=resumed")
            page.tap("form[action='/staff/logout'] button")
            page.wait_for_url(f"{origin}/staff/login*")

            # The checks themselves see what they look for: a planted image without a text alternative, a
            # tiny button and a too-wide box are each reported.
            page.evaluate(
                """() => {
                  const main = document.querySelector('main');
                  const img = document.createElement('img');  // no alt: axe must say so
                  Object.assign(img, {src: '/staff/static/none.png', width: 10, height: 10});
                  const tiny = document.createElement('button');  // styled through the CSSOM: the CSP
                  tiny.textContent = 'x';                          // forbids style attributes
                  Object.assign(tiny.style, {minHeight: '0', minWidth: '0', padding: '0'});
                  const wide = document.createElement('div');
                  wide.style.width = '600px';
                  main.append(img, tiny, wide);
                }"""
            )
            planted = "\n".join(_check_page(page, "planted"))
            assert (
                "axe image-alt" in planted and 'button "x"' in planted and "wider than the screen" in planted
            )
            context.close()
        finally:
            browser.close()
    assert problems == [], "\n".join(problems)
