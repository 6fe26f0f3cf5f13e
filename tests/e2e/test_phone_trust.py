"""A phone that trusts nothing but its own trust store opens the link from the kiosk's QR code without a
warning and saves the photo (issue 15: no `--ignore-certificate-errors`, no `ignore_https_errors`).

The "phone" is Debian's Chromium with a fresh HOME whose NSS database (~/.pki/nssdb, where Chromium on Linux
reads locally added roots) trusts one CA: the kiosk's generated CA from `provisioning tls`, name-constrained
to the kiosk's host name, as an organisation would push it to managed phones; a publicly trusted ACME
certificate (tests/provisioning/test_acme_pebble.py) needs no step on the phone at all. The host name is
resolved to loopback by Chromium's resolver rules, as the kiosk's dnsmasq resolves it on the hotspot. A
second phone without that root gets the certificate error: the trust comes from the store, nothing else.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from appliance.config import KioskConfig
from appliance.delivery import pack_photos
from appliance.kiosk import Kiosk
from kiosk_ui import qr
from kiosk_ui.serve import Listener, delivery_listener
from provisioning.tls import self_signed
from tests.support import CHROMIUM, LAUNCH_ARGS, TIMEOUT_MS, free_port

if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
if shutil.which("certutil") is None:
    pytest.skip("certutil is not installed (apt-get install libnss3-tools)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
cv2 = pytest.importorskip("cv2")

HOST = "kiosk-07.events.example"


def _jpeg(size: tuple[int, int] = (96, 120)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (180, 140, 120)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _phone_home(base: Path, ca_pem: bytes | None) -> Path:
    """A HOME with an NSS database that trusts ``ca_pem`` for web sites (or nothing at all)."""
    home = base / ("trusting" if ca_pem else "bare")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True, timeout=30)
    if ca_pem is not None:
        ca = base / "ca.pem"
        ca.write_bytes(ca_pem)
        subprocess.run(
            ["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "Event kiosk CA", "-t", "C,,", "-i", str(ca)],
            check=True,
            timeout=30,
        )
    return home


@pytest.fixture(scope="module")
def kiosk_and_ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kiosk, Listener, bytes]]:
    base = tmp_path_factory.mktemp("phone-trust")
    bundle = self_signed(HOST)
    assert bundle.ca_pem is not None
    cert, key = base / "delivery.crt", base / "delivery.key"
    cert.write_bytes(bundle.chain_pem)
    key.write_bytes(bundle.key_pem)
    key.chmod(0o600)
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(base / "store")},
            "audit": {"path": str(base / "audit")},
            "delivery": {
                "port": free_port(),
                "public_host": HOST,
                "tls_cert_path": str(cert),
                "tls_key_path": str(key),
            },
        }
    )
    kiosk = Kiosk(cfg)
    kiosk.start(wait_for_worker=False)
    listener = delivery_listener(kiosk, cfg)
    listener.start()
    try:
        yield kiosk, listener, bundle.ca_pem
    finally:
        listener.stop()
        kiosk.close()


def _link_from_qr(url: str) -> str:
    """Decode the QR code the delivery screen shows, as the phone's camera app would."""
    image = cv2.imdecode(np.frombuffer(qr.png(url), np.uint8), cv2.IMREAD_GRAYSCALE)
    text, _points, _raw = cv2.QRCodeDetector().detectAndDecode(image)
    assert text, "the QR code did not decode"
    return str(text)


def test_a_phone_trusting_only_its_store_collects_without_a_warning(
    kiosk_and_ca: tuple[Kiosk, Listener, bytes], tmp_path: Path
) -> None:
    kiosk, listener, ca_pem = kiosk_and_ca
    assert kiosk.deliveries is not None
    photo = _jpeg()
    link = _link_from_qr(kiosk.deliveries.create(photo).url(HOST, listener.port))
    assert link.startswith(f"https://{HOST}:")
    resolve = f"--host-resolver-rules=MAP {HOST} 127.0.0.1"
    assert not any("ignore-certificate" in arg for arg in LAUNCH_ARGS)

    with playwright_api.sync_playwright() as p:
        # A phone without the kiosk's root: Chromium refuses the connection (the interstitial).
        bare = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[*LAUNCH_ARGS, resolve],
            headless=True,
            env={"HOME": str(_phone_home(tmp_path, None)), "PATH": "/usr/bin:/bin"},
        )
        try:
            page = bare.new_context().new_page()
            with pytest.raises(playwright_api.Error, match="ERR_CERT_AUTHORITY_INVALID"):
                page.goto(link, timeout=TIMEOUT_MS)
        finally:
            bare.close()

        phone = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[*LAUNCH_ARGS, resolve],
            headless=True,
            env={"HOME": str(_phone_home(tmp_path, ca_pem)), "PATH": "/usr/bin:/bin"},
        )
        try:
            context = phone.new_context(
                accept_downloads=True, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
            )
            page = context.new_page()
            response = page.goto(link, timeout=TIMEOUT_MS)
            assert response is not None and response.status == 200
            assert page.evaluate("() => window.isSecureContext") is True
            security = response.security_details()
            assert security is not None and security.get("subjectName") == HOST
            with page.expect_download(timeout=TIMEOUT_MS) as info:
                page.click("#save")
            assert Path(info.value.path()).read_bytes() == photo
            assert info.value.suggested_filename == "headshot.jpg"
            again = page.goto(link, timeout=TIMEOUT_MS)
            assert again is not None and again.status == 404  # spent, as before

            # Two crops through one link: both arrive with one tap, each with its own name.
            badge = _jpeg((60, 80))
            bundle = kiosk.deliveries.create(
                pack_photos([("headshot-square.jpg", photo), ("headshot-badge.jpg", badge)])
            )
            page.goto(bundle.url(HOST, listener.port), timeout=TIMEOUT_MS)
            assert "2 JPEG photos" in page.inner_text("#about")
            with page.expect_download(timeout=TIMEOUT_MS) as first:
                page.click("#save")
            assert Path(first.value.path()).read_bytes() == photo
            page.wait_for_function(
                "() => [...document.querySelectorAll('#result img')]"
                ".filter(i => i.complete && i.naturalWidth > 0).length === 2",
                timeout=TIMEOUT_MS,
            )
            names = page.eval_on_selector_all("#result a[download]", "as => as.map(a => a.download)")
            assert names == ["headshot-square.jpg", "headshot-badge.jpg"]
            assert kiosk.deliveries.pending() == 0  # the one link is spent for both
        finally:
            phone.close()
