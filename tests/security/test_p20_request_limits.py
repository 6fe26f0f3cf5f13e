"""Issue 20.1: every listener bounds the request head and body while cheroot reads them, before the app runs.

cheroot's limits default to 0 (unlimited): a 200 MB header to the delivery listener grew the process from 98
to 336 MB before its 404, and the rate limiter only runs after the headers are parsed. Over real listeners
(TLS for delivery, plain loopback HTTP for the guest UI and the staff console): a flood of header bytes is
cut off after a few KiB (431, or a closed connection) and the process does not grow; an oversized head gets
431 and an oversized declared body 413, both with the security headers; requests of legitimate size still
reach the app.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from kiosk_ui.serve import (
    MAX_REQUEST_HEAD_BYTES,
    SERVER_ERROR_HEADERS,
    STAFF_MAX_BODY_BYTES,
    UI_MAX_BODY_BYTES,
    Listener,
    staff_listener,
    ui_listener,
)
from tests.support import free_port, tls_delivery_listener

FLOOD_BYTES = 64 * 2**20
# The server may have taken this much into socket buffers (a few MiB) and its bounded drain before it closed;
# without a limit it takes all FLOOD_BYTES.
MAX_ACCEPTED_BYTES = 32 * 2**20
MAX_GROWTH_BYTES = 32 * 2**20
FAKE_LINK = "/d/" + "0" * 32 + "." + "A" * 43


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    base: Path = tmp_path_factory.mktemp("p20-limits")
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(base / "store")},
            "audit": {"path": str(base / "audit")},
            "staff": {"port": free_port(), "accounts_path": str(base / "staff.json")},
            "ui": {"port": free_port()},
        }
    )
    k = Kiosk(cfg)
    k.start(wait_for_worker=False)  # no visit: the listeners answer before any session exists
    yield k
    k.close()


@pytest.fixture(scope="module")
def delivery(kiosk: Kiosk) -> Iterator[tuple[Listener, ssl.SSLContext]]:
    with tls_delivery_listener(kiosk, threads=4) as pair:
        yield pair


Connect = Callable[[], socket.socket]


def _tls_connect(pair: tuple[Listener, ssl.SSLContext]) -> Connect:
    listener, context = pair

    def connect() -> socket.socket:
        raw = socket.create_connection(("127.0.0.1", listener.port), timeout=15)
        return context.wrap_socket(raw, server_hostname="localhost")

    return connect


def _plain_connect(listener: Listener) -> Connect:
    return lambda: socket.create_connection(("127.0.0.1", listener.port), timeout=15)


def _exchange(connect: Connect, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` whole, read the reply to its end; (0, {}, b"") if the server closed without one."""
    reply = b""
    with connect() as sock:
        try:
            sock.sendall(request)
            while chunk := sock.recv(65536):
                reply += chunk
        except (ConnectionError, ssl.SSLError):
            pass
    if not reply.startswith(b"HTTP/"):
        return 0, {}, b""
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _assert_refused(status: int, headers: dict[str, str], expected: int) -> None:
    assert status == expected, status
    for name, value in SERVER_ERROR_HEADERS:
        assert headers.get(name.lower()) == value, name
    assert headers.get("connection") == "close"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096  # resident pages; 4 KiB pages on x86-64 and the Jetson


def _flood_header(connect: Connect) -> tuple[int, int, bytes]:
    """Stream one endless header line; returns (bytes the server accepted, peak RSS growth, any reply)."""
    baseline = _rss_bytes()
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    chunk = b"a" * 65536
    sent = 0
    reply = b""
    try:
        with connect() as sock:
            try:
                sock.sendall(b"GET /d/x HTTP/1.1\r\nHost: localhost\r\nX-Flood: ")
                while sent < FLOOD_BYTES:
                    sock.sendall(chunk)
                    sent += len(chunk)
                sock.sendall(b"\r\n\r\n")
            except (ConnectionError, ssl.SSLError, TimeoutError):
                pass  # the server stopped reading and closed: what a limit should do
            try:
                while data := sock.recv(65536):
                    reply += data
            except (ConnectionError, ssl.SSLError, TimeoutError, OSError):
                pass
    finally:
        stop.set()
        sampler.join()
    return sent, peak[0] - baseline, reply


def test_a_header_flood_is_cut_off_without_growing_the_process(
    delivery: tuple[Listener, ssl.SSLContext],
) -> None:
    sent, growth, reply = _flood_header(_tls_connect(delivery))
    assert sent < MAX_ACCEPTED_BYTES, f"the listener read {sent >> 20} MiB of one header"
    assert growth < MAX_GROWTH_BYTES, f"the process grew by {growth >> 20} MiB"
    if reply:  # the 431 may be lost to the reset when the client keeps sending; never another answer
        assert reply.startswith(b"HTTP/1.1 431 "), reply[:40]


def test_a_head_over_the_limit_gets_431_and_one_under_it_reaches_the_app(
    delivery: tuple[Listener, ssl.SSLContext],
) -> None:
    connect = _tls_connect(delivery)
    over = (
        b"GET /d/x HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"y" * (MAX_REQUEST_HEAD_BYTES + 1) + b"\r\n\r\n"
    )
    status, headers, _ = _exchange(connect, over)
    _assert_refused(status, headers, 431)
    # Many headers, none long: the limit is on the head as a whole.
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"z" * 60) for i in range(200))
    status, headers, _ = _exchange(connect, b"GET /d/x HTTP/1.1\r\nHost: localhost\r\n" + many + b"\r\n")
    _assert_refused(status, headers, 431)
    under = (
        b"GET /d/x HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"y" * 6000 + b"\r\nConnection: close\r\n\r\n"
    )
    status, headers, _ = _exchange(connect, under)
    assert status == 404 and "max-age" in headers["strict-transport-security"]  # the app's own 404


def test_a_body_over_the_limit_gets_413_before_it_is_read(delivery: tuple[Listener, ssl.SSLContext]) -> None:
    """The delivery route never reads its body, so without a listener limit a POST declaring 100 MB got the
    app's 404 and the connection stayed open for the body."""
    connect = _tls_connect(delivery)
    declared = f"POST {FAKE_LINK} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000\r\n\r\n".encode()
    status, headers, _ = _exchange(connect, declared)
    _assert_refused(status, headers, 413)
    # A body already on its way is drained (bounded) before the close, so the client still reads the 413.
    sent = (
        f"POST {FAKE_LINK} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\n\r\n".encode() + b"x" * 5000
    )
    status, headers, _ = _exchange(connect, sent)
    _assert_refused(status, headers, 413)
    # A chunked body has no length to check up front: refused before a byte of it is read.
    chunked = f"POST {FAKE_LINK} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    status, headers, _ = _exchange(connect, chunked + b"10000\r\n" + b"x" * 4096)
    _assert_refused(status, headers, 411)
    # The "Save photo" form's empty body still reaches the app (an unknown link: its 404).
    empty = f"POST {FAKE_LINK} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    status, _, _ = _exchange(connect, empty.encode())
    assert status == 404


def test_the_guest_ui_and_staff_listeners_are_bounded_too(kiosk: Kiosk) -> None:
    ui, staff = ui_listener(kiosk, kiosk.cfg), staff_listener(kiosk, kiosk.cfg)
    smile = "\N{GRINNING FACE}"  # four bytes in UTF-8, twelve percent-encoded
    for listener, legit_path, content_type, legit_body, limit in (
        # The largest guest request: a consent naming 16 choices of 64 four-byte characters, as JSON.
        (
            ui,
            "/api/session/consent",
            "application/json",
            json.dumps(
                {"accept": False, "choices": {f"{i:02d}" + smile * 62: True for i in range(16)}},
                ensure_ascii=False,
            ).encode(),
            UI_MAX_BODY_BYTES,
        ),
        # The largest staff form: a sign-in with a password of 1024 four-byte characters, percent-encoded.
        (
            staff,
            "/staff/login",
            "application/x-www-form-urlencoded",
            urllib.parse.urlencode(
                {"csrf_token": "t" * 64, "username": "alice", "password": smile * 1024, "totp": "123456"}
            ).encode(),
            STAFF_MAX_BODY_BYTES,
        ),
    ):
        listener.start()
        try:
            connect = _plain_connect(listener)
            sent, growth, _ = _flood_header(connect)
            assert sent < MAX_ACCEPTED_BYTES and growth < MAX_GROWTH_BYTES, listener.name
            over = (
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"y" * MAX_REQUEST_HEAD_BYTES + b"\r\n\r\n"
            )
            _assert_refused(*_exchange(connect, over)[:2], 431)
            post = f"POST {legit_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            big = (post + f"Content-Length: {limit + 1}\r\n\r\n").encode()
            _assert_refused(*_exchange(connect, big)[:2], 413)
            assert len(legit_body) <= limit
            fits = (post + f"Content-Length: {len(legit_body)}\r\nConnection: close\r\n\r\n").encode()
            status, headers, _ = _exchange(connect, fits + legit_body)
            # The app answers (whatever it thinks of the request), with its own full header set.
            assert status not in (0, 411, 413, 431) and status < 500, (listener.name, status)
            assert "permissions-policy" in headers, listener.name
        finally:
            listener.stop()
