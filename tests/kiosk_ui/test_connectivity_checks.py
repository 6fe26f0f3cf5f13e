"""The phones' connectivity checks get the answers their systems expect (kiosk_ui.probes), served by a
real listener on loopback and fetched with a plain HTTP client, the way a phone fetches them."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from kiosk_ui.probes import ANSWERS
from kiosk_ui.serve import Listener, connectivity_check_listener_for
from tests.support import free_port


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = connectivity_check_listener_for("127.0.0.1", free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _get(listener: Listener, path: str, host: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", listener.port, timeout=5)
    try:
        conn.request(method, path, headers={"Host": host, "User-Agent": "Dalvik/2.1.0"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("host", "path", "status", "body"),
    [
        ("connectivitycheck.gstatic.com", "/generate_204", 204, b""),
        ("clients3.google.com", "/generate_204", 204, b""),
        ("www.google.com", "/gen_204", 204, b""),
        ("captive.apple.com", "/hotspot-detect.html", 200, b"<HTML><HEAD><TITLE>Success</TITLE></HEAD>"),
        ("www.msftconnecttest.com", "/connecttest.txt", 200, b"Microsoft Connect Test"),
        ("www.msftncsi.com", "/ncsi.txt", 200, b"Microsoft NCSI"),
        ("detectportal.firefox.com", "/success.txt", 200, b"success\n"),
    ],
)
def test_each_system_gets_its_expected_answer(
    listener: Listener, host: str, path: str, status: int, body: bytes
) -> None:
    got_status, headers, got_body = _get(listener, path, host)
    assert got_status == status
    assert got_body.startswith(body) and (body or got_body == b"")
    assert headers["cache-control"] == "no-store"
    assert "location" not in headers and "set-cookie" not in headers  # never a captive-portal redirect


def test_apple_body_is_exact(listener: Listener) -> None:
    # iOS compares the whole body; one byte more and it opens the captive-portal sheet.
    _status, _headers, body = _get(listener, "/hotspot-detect.html", "captive.apple.com")
    assert body == b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"


def test_anything_else_is_a_bare_404(listener: Listener) -> None:
    for path in ("/", "/d/abc", "/api/session", "/index.html", "/generate_204/x"):
        status, _headers, body = _get(listener, path, "kiosk.example")
        assert status == 404 and body == b""


def test_only_get_and_head(listener: Listener) -> None:
    status, headers, body = _get(listener, "/generate_204", "connectivitycheck.gstatic.com", "HEAD")
    assert status == 204 and body == b""
    status, headers, _body = _get(listener, "/connecttest.txt", "www.msftconnecttest.com", "POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"


def test_every_answer_is_listed_once() -> None:
    assert all(path.startswith("/") for path in ANSWERS)
    assert {status for status, _t, _b in ANSWERS.values()} == {"204 No Content", "200 OK"}
