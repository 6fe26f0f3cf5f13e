"""Join, then collect (issue 15): with the kiosk's own hotspot the delivery screen first shows the Wi-Fi's
``WIFI:`` QR code and its name and password, read from the file ``provisioning hotspot`` writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from appliance.kiosk import Kiosk
from appliance.wifi import parse_wifi_qr, read_wifi_join
from kiosk_ui import create_app
from provisioning.hotspot import wifi_qr_payload
from tests.kiosk_ui.conftest import kiosk_config


@pytest.mark.parametrize(
    ("ssid", "password"),
    [
        ("Headshot Kiosk", "a7Kp3mZq9Xw2Rt5Vb8Nc"),
        ('odd;name:with\\"quotes",', "p;a:s\\s,w\"ord"),
        ("Café Stand 3", "plain-pass-123"),
    ],
)
def test_the_screen_reads_back_what_provisioning_wrote(ssid: str, password: str) -> None:
    join = parse_wifi_qr(wifi_qr_payload(ssid, password) + "\n")
    assert join is not None and (join.ssid, join.password) == (ssid, password)


def test_no_file_or_not_a_wifi_text_means_no_wifi_step(tmp_path: Path) -> None:
    assert read_wifi_join(None) is None
    assert read_wifi_join(tmp_path / "missing.qr") is None
    bad = tmp_path / "wifi.qr"
    bad.write_text("https://example.com\n")
    assert read_wifi_join(bad) is None


def _page(client: object) -> dict[str, object]:
    html = client.get("/").get_data(as_text=True)  # type: ignore[attr-defined]
    match = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', html, re.S)
    assert match is not None
    return dict(json.loads(match.group(1).replace("<\\/", "</")))


def test_the_page_offers_the_hotspot_first_and_its_qr_joins_it(tmp_path: Path) -> None:
    payload = wifi_qr_payload("Headshot Kiosk", "a7Kp3mZq9Xw2Rt5Vb8Nc")
    qr_file = tmp_path / "wifi.qr"
    qr_file.write_text(payload + "\n")
    kiosk = Kiosk(kiosk_config(tmp_path, delivery={"wifi_qr_path": str(qr_file)}))
    client = create_app(kiosk, testing=True).test_client()
    page = _page(client)
    wanted = {"ssid": "Headshot Kiosk", "password": "a7Kp3mZq9Xw2Rt5Vb8Nc", "qr": "/api/wifi.png"}
    assert page["wifi"] == wanted
    png = client.get("/api/wifi.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    image = cv2.imdecode(np.frombuffer(png.data, np.uint8), cv2.IMREAD_GRAYSCALE)
    decoded, _, _ = cv2.QRCodeDetector().detectAndDecode(image)
    assert decoded == payload  # what a phone camera reads: join this network


def test_without_a_hotspot_there_is_no_wifi_step(tmp_path: Path) -> None:
    kiosk = Kiosk(kiosk_config(tmp_path, delivery={"wifi_qr_path": None}))
    client = create_app(kiosk, testing=True).test_client()
    assert _page(client)["wifi"] is None
    assert client.get("/api/wifi.png").status_code == 404
