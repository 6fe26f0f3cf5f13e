"""The staff console's address for phones (provisioning.staffurl: doctor's line and the setup sheet) and the
printed setup sheet (``python -m provisioning setup-sheet``): the URL and its QR code, the hotspot's join
code, the checklist, and never a secret."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.accounts import Role, StaffStore
from appliance.config import KioskConfig
from appliance.tlscert import server_leaf
from provisioning.cli import main
from provisioning.setup_sheet import build_setup_sheet, render_setup_sheet, wifi_network_name
from provisioning.staffurl import doctor_check, staff_console_address
from provisioning.tls import self_signed
from tests.kiosk_ui.staff_helpers import FAST, PASSWORD

HOST = "kiosk-7f3k.events.example.com"
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
WIFI = "WIFI:T:WPA;S:Career Fair\\; Hall B;P:k7m3q9x2w5r8t4v6b2n9;;"
PASSPHRASE = "k7m3q9x2w5r8t4v6b2n9"


def _leaf(hosts: list[str], *, days: int = 90, start: dt.datetime = NOW) -> tuple[bytes, bytes]:
    """A certificate for ``hosts`` like a public CA's (not the local CA), valid ``days`` from ``start``."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = server_leaf(
        hosts=hosts,
        public_key=key.public_key(),
        issuer=None,
        sign_key=key,
        not_before=start - dt.timedelta(days=1),
        not_after=start + dt.timedelta(days=days),
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _device(root: Path, cert_pem: bytes, key_pem: bytes, **staff: object) -> KioskConfig:
    """A staged device under ``root``: its certificate, Wi-Fi join code, accounts and ``kiosk.toml``."""
    tls = root / "etc/headshot-kiosk/tls"
    tls.mkdir(parents=True)
    (tls / "kiosk.pem").write_bytes(cert_pem)
    (tls / "kiosk.key").write_bytes(key_pem)
    (root / "etc/headshot-kiosk/wifi.qr").write_text(WIFI + "\n")
    data = {
        "delivery": {
            "host": "0.0.0.0",
            "public_host": HOST,
            "tls_cert_path": "/etc/headshot-kiosk/tls/kiosk.pem",
            "tls_key_path": "/etc/headshot-kiosk/tls/kiosk.key",
            "wifi_qr_path": "/etc/headshot-kiosk/wifi.qr",
        },
        "staff": {
            "host": "0.0.0.0",
            "tls_cert_path": "/etc/headshot-kiosk/tls/kiosk.pem",
            "tls_key_path": "/etc/headshot-kiosk/tls/kiosk.key",
            "accounts_path": str(root / "var/lib/headshot-kiosk/staff/accounts.json"),
            **staff,
        },
        "event": {"name": "Career Fair 2026", "languages": ["fr", "en"]},
    }
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    (root / "etc/headshot-kiosk/kiosk.toml").write_text("\n".join(lines) + "\n")
    return KioskConfig.model_validate(data)


def _qr_texts(page: str) -> list[str]:
    """What every QR image of the sheet says, read back with OpenCV's detector."""
    texts = []
    for data in re.findall(r'<img class="qr" src="data:image/png;base64,([^"]+)"', page):
        image = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_GRAYSCALE)
        text, _points, _ = cv2.QRCodeDetector().detectAndDecode(image)
        texts.append(text)
    return texts


def test_the_sheet_carries_the_console_url_and_the_wifi_code_and_no_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    cert_pem, key_pem = _leaf([HOST], start=dt.datetime.now(dt.timezone.utc))  # the command reads the clock
    cfg = _device(root, cert_pem, key_pem)
    accounts = StaffStore(cfg.staff.accounts_path, argon2=FAST)
    enrolment = accounts.add("alice", Role.ADMIN, PASSWORD)

    out = tmp_path / "sheet.html"
    assert main(["setup-sheet", "--root", str(root), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"staff console: https://{HOST}:8090/staff/" in printed and "warning" not in printed
    page = out.read_text()
    assert out.stat().st_mode & 0o777 == 0o644
    assert f"https://{HOST}:8090/staff/" in page
    assert _qr_texts(page) == [f"https://{HOST}:8090/staff/", WIFI]
    assert "Career Fair; Hall B" in page  # the network's name, its escape undone
    assert "Checklist" in page and "provisioning doctor" in page and "For staff only" in page
    assert "Career Fair 2026" in page and "fr, en" in page
    # Never a secret: no password, authenticator secret, recovery code, key or Wi-Fi passphrase as text.
    for secret in (PASSWORD, enrolment.secret, *enrolment.recovery_codes, PASSPHRASE):
        assert secret not in page
    key_body = b"".join(key_pem.splitlines()[1:-1]).decode()
    assert key_body[:40] not in page
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org", "")


def test_a_console_on_this_machine_only_is_flagged_when_guests_use_the_network(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cert_pem, key_pem = _leaf([HOST])
    cfg = _device(root, cert_pem, key_pem, host="127.0.0.1")
    address = staff_console_address(cfg, root=root, now=NOW)
    assert address.url == "https://127.0.0.1:8090/staff/" and not address.on_network
    assert address.status == "WARN" and 'host = "0.0.0.0"' in address.fix
    page = render_setup_sheet(build_setup_sheet(cfg, root=root, now=NOW))
    assert _qr_texts(page) == [WIFI]  # no code to scan for an address no phone can open
    assert "cannot open it from their phones" in page and "kiosk itself only" in page

    laptop = KioskConfig()  # a laptop demo: nothing on the network, nothing to fix
    assert staff_console_address(laptop, now=NOW).status == "OK"
    assert doctor_check(laptop, now=NOW) == ("OK", "http://127.0.0.1:8090/staff/ (on this machine only)", "")


def test_doctor_names_the_url_and_what_stands_in_a_phones_way(tmp_path: Path) -> None:
    root = tmp_path / "ok"
    cfg = _device(root, *_leaf([HOST, "10.42.0.1"]))
    status, detail, fix = doctor_check(cfg, root=root, now=NOW)
    assert (status, fix) == ("OK", "")
    assert detail == f"https://{HOST}:8090/staff/ (for phones on the kiosk's network)"
    assert staff_console_address(cfg, root=root, now=NOW).phone_ready

    other = tmp_path / "other"
    cfg = _device(other, *_leaf(["kiosk.venue.example.org"]))
    address = staff_console_address(cfg, root=other, now=NOW)
    assert address.status == "WARN" and address.url == "https://kiosk.venue.example.org:8090/staff/"
    assert f"does not name {HOST}" in address.problems[0]

    ending = tmp_path / "ending"
    cfg = _device(ending, *_leaf([HOST], days=5))
    status, detail, fix = doctor_check(cfg, root=ending, now=NOW)
    assert status == "WARN" and "ends in 5 days" in detail and "cert renew" in fix

    expired = tmp_path / "expired"
    cfg = _device(expired, *_leaf([HOST], days=30, start=NOW - dt.timedelta(days=60)))
    assert doctor_check(cfg, root=expired, now=NOW)[0] == "FAIL"

    local = tmp_path / "local"
    bundle = self_signed(HOST, now=NOW)
    cfg = _device(local, bundle.chain_pem, bundle.key_pem)
    address = staff_console_address(cfg, root=local, now=NOW)
    assert address.status == "WARN" and address.local_ca and "local CA" in address.problems[0]

    missing = tmp_path / "missing"
    cfg = _device(missing, *_leaf([HOST]))
    (missing / "etc/headshot-kiosk/tls/kiosk.pem").unlink()
    assert doctor_check(cfg, root=missing, now=NOW)[0] == "FAIL"


def test_the_standard_https_port_is_left_out_of_the_url(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cfg = _device(root, *_leaf([HOST]), port=443)
    assert staff_console_address(cfg, root=root, now=NOW).url == f"https://{HOST}/staff/"


def test_without_a_hotspot_the_sheet_says_which_network(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cfg = _device(root, *_leaf([HOST]))
    (root / "etc/headshot-kiosk/wifi.qr").unlink()
    page = render_setup_sheet(build_setup_sheet(cfg, root=root, now=NOW))
    assert _qr_texts(page) == [f"https://{HOST}:8090/staff/"]
    assert "no Wi-Fi of its own" in page and "venue" in page


def test_wifi_network_names_are_unescaped() -> None:
    assert wifi_network_name(WIFI) == "Career Fair; Hall B"
    assert wifi_network_name('WIFI:T:WPA;S:a\\:b\\"c\\\\;P:x;;') == 'a:b"c\\'
    assert wifi_network_name("WIFI:T:WPA;P:x;;") is None
