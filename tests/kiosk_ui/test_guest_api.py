"""The guest JSON API end to end through the Flask test client, over a real started Kiosk (demo camera)."""

from __future__ import annotations

import struct

import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.kiosk import Kiosk
from kiosk_ui import create_app
from kiosk_ui.openapi import spec

JSON = {"Content-Type": "application/json"}


def _start(client: FlaskClient) -> dict[str, object]:
    r = client.post("/api/session", json={})
    assert r.status_code == 201, r.json
    return r.json


def _to_preview(client: FlaskClient) -> None:
    _start(client)
    r = client.post("/api/session/consent", json={"accept": True, "choices": {}})
    assert r.status_code == 200, r.json
    assert r.json["phase"] == "preview"


def _to_review(client: FlaskClient) -> dict[str, object]:
    _to_preview(client)
    r = client.post("/api/session/capture", json={})
    assert r.status_code == 200, r.json
    return r.json


def _error(r: object, status: int, code: str | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.data[:200])
    body = r.json
    assert set(body) == {"error", "message"}
    assert body["message"] and isinstance(body["message"], str)
    if code is not None:
        assert body["error"] == code


def _png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, i = [], 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        chunks.append(data[i + 4 : i + 8])
        i += 12 + n
    assert i == len(data), "bytes after IEND"
    return chunks


def test_full_visit_through_every_endpoint(client: FlaskClient, kiosk: Kiosk) -> None:
    assert client.get("/api/session").json["phase"] == "idle"
    started = _start(client)
    assert started["phase"] == "consent" and started["session"]
    _error(client.post("/api/session", json={}), 409, "session_active")

    r = client.post("/api/session/consent", json={"accept": True, "choices": {}})
    assert r.json["phase"] == "preview"

    stream = client.get("/api/session/preview.mjpg?background=white", buffered=False)
    assert stream.status_code == 200
    assert stream.mimetype == "multipart/x-mixed-replace"
    first = next(iter(stream.response))
    assert first.startswith(b"--frame\r\nContent-Type: image/jpeg\r\n")
    assert b"\xff\xd8" in first
    stream.close()
    guidance = client.get("/api/session/guidance").json
    assert guidance["fresh"] is True and isinstance(guidance["hints"], list)

    assert client.post("/api/session/touch", json={}).json == {"ok": True}
    captured = client.post("/api/session/capture", json={}).json
    assert captured["phase"] == "review"
    assert captured["image"] == f"/api/session/render/{captured['render']}.jpg"
    assert captured["takes_left"] == kiosk.cfg.session.max_takes - 1

    rendered = client.post(
        "/api/session/render", json={"take": captured["take"], "background": "white", "preset": "portrait"}
    ).json
    assert set(rendered) >= {"render", "image"}
    img = client.get(rendered["image"])
    assert img.status_code == 200 and img.mimetype == "image/jpeg" and img.data[:2] == b"\xff\xd8"
    assert img.headers["Cache-Control"] == "no-store"

    state = client.get("/api/session").json
    kinds = sorted(h["kind"] for h in state["held"])
    assert kinds == ["capture", "headshot", "headshot"]
    assert all({"kind", "bytes", "created", "expires"} <= set(h) for h in state["held"])

    delivered = client.post("/api/session/deliver", json={"render": rendered["render"]}).json
    host, port = kiosk.cfg.delivery.public_host, kiosk.cfg.delivery.port
    assert delivered["url"].startswith(f"https://{host}:{port}/d/")
    # A new QR URL for every delivery (a page's image cache answers a repeated src without asking), and
    # the bare or an old URL never shows it.
    assert delivered["qr"].startswith("/api/session/qr.png?v=")
    _error(client.get("/api/session/qr.png"), 404, "no_delivery")
    _error(client.get("/api/session/qr.png?v=0123456789abcdef"), 404, "no_delivery")
    assert 0 < delivered["expires_in"] <= kiosk.cfg.delivery.window_minutes * 60
    qr = client.get(delivered["qr"])
    assert qr.status_code == 200 and qr.mimetype == "image/png"
    assert _png_chunks(qr.data) == [b"IHDR", b"IDAT", b"IEND"]  # P0-7: no metadata chunks
    assert qr.headers["Cache-Control"] == "no-store"

    ended = client.post("/api/session/end", json={})
    assert ended.status_code == 200
    assert ended.json["phase"] == "idle" and ended.json["receipt"]
    assert "Clear-Site-Data" in ended.headers
    assert client.get("/api/session").json["last_receipt"]["outcome"] == "finished"


def test_decline_captures_nothing(client: FlaskClient, kiosk: Kiosk) -> None:
    _start(client)
    r = client.post("/api/session/consent", json={"accept": False})
    assert r.status_code == 200 and r.json["phase"] == "idle"
    assert r.json["held"] == []
    assert kiosk.session_dirs() == []
    assert client.get("/api/session").json["last_receipt"]["outcome"] == "consent_declined"


def test_preview_is_forbidden_before_consent(client: FlaskClient) -> None:
    _error(client.get("/api/session/preview.mjpg"), 403, "consent_required")
    _start(client)
    _error(client.get("/api/session/preview.mjpg"), 403, "consent_required")


def test_wrong_phase_answers_409(client: FlaskClient) -> None:
    _start(client)
    _error(client.post("/api/session/capture", json={}), 409, "not_allowed")
    _error(client.post("/api/session/end", json={}), 409, "not_allowed")
    _error(
        client.post("/api/session/render", json={"take": "x", "background": "white", "preset": "square"}),
        409,
    )
    _error(client.post("/api/session/deliver", json={"render": "x"}), 409)
    client.post("/api/session/consent", json={"accept": True})
    _error(client.post("/api/session/consent", json={"accept": True}), 409)
    _error(client.post("/api/session/deliver", json={"render": "x"}), 409)
    _error(client.get("/api/session/render/abc.jpg"), 409)


def test_without_a_session(client: FlaskClient) -> None:
    for path in ("/api/session/delete", "/api/session/revoke"):
        _error(client.post(path, json={}), 404, "no_session")
    _error(client.post("/api/session/consent", json={"accept": True}), 404, "no_session")
    _error(client.get("/api/session/qr.png"), 404, "no_delivery")


def test_review_errors(client: FlaskClient) -> None:
    review = _to_review(client)
    take = review["take"]
    bad = [
        ({"take": "nope", "background": "white", "preset": "square"}, 404, "unknown_take"),
        ({"take": take, "background": "purple", "preset": "square"}, 400, "bad_background"),
        ({"take": take, "background": "white", "preset": "wide"}, 400, "bad_preset"),
        ({"take": take, "background": "white"}, 400, "bad_request"),
        ({"take": 5, "background": "white", "preset": "square"}, 400, "bad_request"),
        ({"take": "x" * 500, "background": "white", "preset": "square"}, 400, "bad_request"),
    ]
    for body, status, code in bad:
        _error(client.post("/api/session/render", json=body), status, code)
    _error(client.get("/api/session/render/unknown.jpg"), 404, "unknown_render")
    _error(client.post("/api/session/deliver", json={"render": "unknown"}), 404, "unknown_render")


def test_retake_limit(client: FlaskClient, kiosk: Kiosk) -> None:
    _to_review(client)
    for _ in range(kiosk.cfg.session.max_takes - 1):
        r = client.post("/api/session/capture", json={})
        assert r.status_code == 200, r.json
    assert r.json["takes_left"] == 0
    _error(client.post("/api/session/capture", json={}), 409, "retake_limit")


@pytest.mark.parametrize(
    "body",
    [b"{", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"accept": tru}'],
)
def test_malformed_json_is_400(client: FlaskClient, body: bytes) -> None:
    _start(client)
    _error(client.post("/api/session/consent", data=body, headers=JSON), 400, "bad_json")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"accept": "yes"},
        {"accept": 1},
        {"accept": True, "choices": []},
        {"accept": True, "choices": {"a": 1}},
    ],
)
def test_invalid_consent_fields_are_400(client: FlaskClient, body: dict[str, object]) -> None:
    _start(client)
    _error(client.post("/api/session/consent", json=body), 400, "bad_request")


def test_post_must_be_json(client: FlaskClient) -> None:
    r = client.post("/api/session", data="accept=true", content_type="application/x-www-form-urlencoded")
    _error(r, 415, "unsupported_media_type")
    r = client.post("/api/session", data="{}", content_type="text/plain")
    _error(r, 415, "unsupported_media_type")
    assert client.get("/api/session").json["phase"] == "idle"


def test_too_large_body_is_413(client: FlaskClient) -> None:
    r = client.post("/api/session/consent", data=b"{" + b" " * 20000 + b"}", headers=JSON)
    _error(r, 413)


def test_unknown_api_path_and_method(client: FlaskClient) -> None:
    _error(client.get("/api/nothing"), 404, "not_found")
    _error(client.put("/api/session", json={}), 405, "method_not_allowed")


@pytest.mark.parametrize("phase", ["consent", "preview", "review", "delivery"])
@pytest.mark.parametrize("action", ["delete", "revoke"])
def test_delete_and_revoke_from_every_phase(
    client: FlaskClient, kiosk: Kiosk, phase: str, action: str
) -> None:
    assert kiosk.deliveries is not None
    pending_before = kiosk.deliveries.pending()  # links of earlier finished visits live out their window
    if phase == "consent":
        _start(client)
    elif phase == "preview":
        _to_preview(client)
    else:
        review = _to_review(client)
        if phase == "delivery":
            assert client.post("/api/session/deliver", json={"render": review["render"]}).status_code == 200
    assert client.get("/api/session").json["phase"] == phase
    r = client.post(f"/api/session/{action}", json={})
    assert r.status_code == 200
    assert r.json["phase"] == "idle" and r.json["held"] == [] and r.json["receipt"]
    assert kiosk.session_dirs() == []
    assert kiosk.deliveries.pending() == pending_before  # delete/revoke take the link too
    outcome = {"delete": "deleted_by_guest", "revoke": "consent_revoked"}[action]
    assert client.get("/api/session").json["last_receipt"]["outcome"] == outcome


def test_mjpeg_stream_ends_when_phase_leaves_preview(client: FlaskClient) -> None:
    _to_preview(client)
    stream = client.get("/api/session/preview.mjpg", buffered=False)
    frames = iter(stream.response)
    assert next(frames).startswith(b"--frame")
    assert client.post("/api/session/delete", json={}).status_code == 200
    remaining = list(frames)  # the generator returns once the kiosk refuses the next frame
    assert len(remaining) <= 1
    stream.close()


def test_openapi_describes_every_api_route(app: Flask, client: FlaskClient) -> None:
    doc = client.get("/api/openapi.json").json
    assert doc["openapi"].startswith("3.0")
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = rule.rule.replace("<render_id>", "{render_id}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in described, f"{method} {rule.rule} missing from openapi.json"
    assert doc == spec()


def test_pages_render(client: FlaskClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and b'id="screen-attract"' in page.data
    assert b"<script>" not in page.data  # no inline script: only the JSON data block and kiosk.js
    notice = client.get("/notice")
    assert notice.status_code == 200
    for asset in ("/static/kiosk.js", "/static/kiosk.css"):
        with client.get(asset) as r:  # closes the file send_file opened
            assert r.status_code == 200


def test_unexpected_error_is_a_kind_500(kiosk: Kiosk) -> None:
    app = create_app(kiosk, testing=True)

    @app.get("/api/boom")
    def _boom() -> str:
        raise RuntimeError("boom")

    r = app.test_client().get("/api/boom")
    _error(r, 500, "internal")
    assert b"boom" not in r.data
