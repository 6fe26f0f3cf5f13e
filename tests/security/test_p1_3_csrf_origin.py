"""P1-3: state-changing requests from another origin are refused (Origin and Fetch-Metadata checks), JSON
POSTs must say application/json (which forces a CORS preflight we never answer), and a refused request changes
nothing — on the guest API and on the delivery listener."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from kiosk_ui import create_app
from kiosk_ui.delivery import create_delivery_app

POSTS = [
    "/api/session",
    "/api/session/consent",
    "/api/session/touch",
    "/api/session/capture",
    "/api/session/render",
    "/api/session/deliver",
    "/api/session/delete",
    "/api/session/revoke",
    "/api/session/end",
]
FOREIGN = [
    {"Origin": "https://evil.example"},
    {"Origin": "http://127.0.0.1:9999"},
    {"Origin": "null"},
    {"Origin": "https://localhost"},  # same host, other scheme: another origin
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
]


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    base: Path = tmp_path_factory.mktemp("p13")
    cfg = KioskConfig.model_validate(
        {"store": {"path": str(base / "store")}, "audit": {"path": str(base / "audit")}}
    )
    k = Kiosk(cfg)
    k.start()
    yield k
    k.close()


@pytest.fixture
def client(kiosk: Kiosk) -> Iterator[FlaskClient]:
    yield create_app(kiosk, testing=True).test_client()
    if kiosk.state().phase != "idle":
        kiosk.delete_now()


@pytest.mark.parametrize("headers", FOREIGN)
def test_foreign_origin_is_refused_everywhere(
    client: FlaskClient, kiosk: Kiosk, headers: dict[str, str]
) -> None:
    kiosk.start_session()  # a visit in progress that a forged request would like to end
    for path in POSTS:
        r = client.post(path, json={"accept": True}, headers=headers)
        assert r.status_code == 403, (path, headers)
        assert r.json["error"] == "foreign_origin"
    assert kiosk.state().phase == "consent"


def test_same_origin_is_accepted(client: FlaskClient, kiosk: Kiosk) -> None:
    r = client.post(
        "/api/session", json={}, headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    )
    assert r.status_code == 201
    r = client.post("/api/session/consent", json={"accept": False}, headers={"Origin": "http://localhost"})
    assert r.status_code == 200 and r.json["phase"] == "idle"


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_simple_request_content_types_are_refused(client: FlaskClient, kiosk: Kiosk, ctype: str) -> None:
    # These are the content types a cross-site <form> or no-preflight fetch can send.
    r = client.post("/api/session", data="accept=true", content_type=ctype)
    assert r.status_code == 415
    assert kiosk.state().phase == "idle"


def test_delivery_post_from_a_foreign_origin_does_not_spend(kiosk: Kiosk) -> None:
    assert kiosk.deliveries is not None
    ticket = kiosk.deliveries.create(b"\xff\xd8 test \xff\xd9")
    c = create_delivery_app(kiosk).test_client()
    base = "https://localhost:8443"
    r = c.post(f"/d/{ticket.token}", base_url=base, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = c.post(f"/d/{ticket.token}", base_url=base, headers={"Origin": base})
    assert r.status_code == 200 and r.data == b"\xff\xd8 test \xff\xd9"


def test_same_origin_form_post_with_null_origin_spends(kiosk: Kiosk) -> None:
    # Under Referrer-Policy: no-referrer a browser's same-origin <form> POST carries Origin: null;
    # Sec-Fetch-Site (set only by browsers) says it came from the page itself.
    assert kiosk.deliveries is not None
    ticket = kiosk.deliveries.create(b"\xff\xd8 form \xff\xd9")
    c = create_delivery_app(kiosk).test_client()
    r = c.post(
        f"/d/{ticket.token}",
        base_url="https://localhost:8443",
        headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    )
    assert r.status_code == 200
