"""P1-2: security headers on every response of both apps, errors included (200 to 500)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.test import TestResponse

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from kiosk_ui import create_app
from kiosk_ui.delivery import create_delivery_app
from tests.support import tls_delivery_listener


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    base: Path = tmp_path_factory.mktemp("p12")
    cfg = KioskConfig.model_validate(
        {"store": {"path": str(base / "store")}, "audit": {"path": str(base / "audit")}}
    )
    k = Kiosk(cfg)
    k.start()
    yield k
    k.close()


def _check(r: TestResponse, *, delivery: bool = False) -> None:
    h = r.headers
    csp = h["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split("; ")}
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]  # no inline script, no eval
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'none'"]
    assert "unsafe" not in csp
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["X-Frame-Options"] == "DENY"
    assert h["Referrer-Policy"] == "no-referrer"
    assert "camera=()" in h["Permissions-Policy"]
    assert h["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in h
    if delivery:
        assert "max-age" in h["Strict-Transport-Security"]


def test_guest_app_headers_everywhere(kiosk: Kiosk) -> None:
    app = create_app(kiosk, testing=True)

    @app.get("/api/boom")
    def _boom() -> str:
        raise RuntimeError("boom")

    @app.get("/boom")
    def _boom_page() -> str:
        raise RuntimeError("boom")

    c = app.test_client()
    cases = [
        (c.get("/"), 200),
        (c.get("/notice"), 200),
        (c.get("/api/session"), 200),
        (c.get("/api/openapi.json"), 200),
        (c.get("/static/kiosk.js"), 200),
        (c.get("/api/session/preview.mjpg"), 403),
        (c.post("/api/session", json={}, headers={"Origin": "https://evil.example"}), 403),
        (c.get("/nothing"), 404),
        (c.get("/api/nothing"), 404),
        (c.get("/api/session/qr.png"), 404),
        (c.delete("/api/session"), 405),
        (c.post("/api/session", data="x" * 20000, content_type="application/json"), 413),
        (c.post("/api/session", data="a=b", content_type="application/x-www-form-urlencoded"), 415),
        (c.get("/api/boom"), 500),
        (c.get("/boom"), 500),
    ]
    for response, status in cases:
        with response:
            assert response.status_code == status, (response.request.path, response.status_code)
            _check(response)


def test_delivery_app_headers_everywhere(kiosk: Kiosk) -> None:
    c = create_delivery_app(kiosk, rate_limit=3, rate_window=60).test_client()
    base = {"base_url": "https://localhost:8443"}
    cases = [
        (c.get("/d/unknown", **base), 404),
        (c.post("/d/unknown", **base), 404),
        (c.get("/", **base), 404),
        (c.get("/d/x", **base), 429),
    ]
    for response, status in cases:
        assert response.status_code == status
        _check(response, delivery=True)


@pytest.mark.parametrize(
    "request_line",
    [b"CONNECT /d/x HTTP/1.1", b"GET //../.. HTTP/1.1", b"GET /d/x HTTP/9.9", b"NONSENSE"],
)
def test_errors_written_by_the_server_itself_carry_the_headers(kiosk: Kiosk, request_line: bytes) -> None:
    """Requests cheroot rejects before Flask sees them (found by the audit's fuzzing) over real TLS."""
    import socket

    from kiosk_ui.serve import SERVER_ERROR_HEADERS

    with tls_delivery_listener(kiosk, threads=2) as (listener, ctx):
        ctx.check_hostname = False
        with (
            socket.create_connection(("127.0.0.1", listener.port), timeout=10) as raw,
            ctx.wrap_socket(raw) as tls,
        ):
            tls.sendall(request_line + b"\r\nHost: localhost\r\n\r\n")
            reply = b""
            while chunk := tls.recv(4096):
                reply += chunk
        head = reply.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        status = int(head.split()[1])
        assert 400 <= status < 600 and status != 500, head
        for name, value in SERVER_ERROR_HEADERS:
            assert f"{name}: {value}" in head, head
