"""Issue 20.5: what a client sends cannot forge a log line. The access log wrote the request path as it came,
so ``%0A`` in a path produced a separate, authentic-looking ``ERROR appliance.kiosk: ... worker died`` line.
Over the real TLS delivery listener: every line the listener logs is one line of printable ASCII, whatever
the path held, and a token in the path is still never logged.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator

import pytest

from appliance.kiosk import Kiosk
from kiosk_ui.serve import Listener, loggable_path, loggable_text
from tests.support import tls_delivery_listener, workerless_kiosk

FORGED = "ERROR appliance.kiosk: session 1234 worker died"
PATHS = [
    "/x%0A" + FORGED.replace(" ", "%20"),
    "/x%0D%0A" + FORGED.replace(" ", "%20"),
    "/x%0D" + FORGED.replace(" ", "%20"),
    "/%1B[2J%1B[31mred",  # a terminal escape: clear the screen, colour what follows
    "/x%E2%80%A8y%C2%85z",  # U+2028 and NEL, line breaks to some viewers (C1 bytes in WSGI's latin-1)
    "/x%7Fy%00z%09w%0Bv%0Cu",
    "/x%25%0Ay",  # a literal "%" followed by a newline
]


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    with workerless_kiosk(tmp_path_factory.mktemp("p20-logs")) as k:  # only the delivery store is needed
        yield k


@pytest.fixture(scope="module")
def delivery(kiosk: Kiosk) -> Iterator[tuple[Listener, ssl.SSLContext]]:
    with tls_delivery_listener(kiosk, threads=2) as pair:
        yield pair


def _send(pair: tuple[Listener, ssl.SSLContext], request_line: str) -> int:
    listener, context = pair
    raw_request = request_line.encode("latin-1") + b"\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    reply = b""
    with (
        socket.create_connection(("127.0.0.1", listener.port), timeout=15) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(raw_request)
        while chunk := tls.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


def _listener_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("kiosk_ui.serve")]


def _one_printable_line(message: str) -> bool:
    return all(" " <= char <= "~" for char in message)


@pytest.mark.parametrize("path", PATHS)
def test_control_characters_in_a_path_stay_inside_one_log_line(
    delivery: tuple[Listener, ssl.SSLContext], caplog: pytest.LogCaptureFixture, path: str
) -> None:
    caplog.set_level(logging.DEBUG)
    status = _send(delivery, f"GET {path} HTTP/1.1")
    assert status in (400, 404), status
    lines = _listener_lines(caplog)
    assert lines, "the request was not logged at all"
    for message in lines:
        assert _one_printable_line(message), repr(message)
    # The forged text is still visible to whoever reads the log, but inside the GET line, not as its own.
    assert not any(message.startswith("ERROR") for message in lines)


def test_a_token_after_a_control_character_is_still_redacted(
    kiosk: Kiosk, delivery: tuple[Listener, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    assert kiosk.deliveries is not None
    token = kiosk.deliveries.create(b"\xff\xd8not really a jpeg\xff\xd9").token
    obj_id, key = token.split(".")
    caplog.set_level(logging.DEBUG)
    for path in (f"/d/{token}%0A", f"/d/x%0A/d/{token}", f"/d/%22{token}", f"/d/x%20{token}%0D"):
        _send(delivery, f"GET {path} HTTP/1.1")
    text = "\n".join(_listener_lines(caplog))
    assert "/d/<redacted>" in text
    assert obj_id not in text and key not in text


def test_the_escapes() -> None:
    """What the log shows for a hostile path and for cheroot's own messages that quote a client."""
    assert loggable_path("/d/x\nERROR y") == "/d/x%0AERROR%20y"
    assert loggable_path("/a%b\x1b\x85\xff") == "/a%25b%1B%85%FF"
    assert loggable_path("/api/session/render/abc.jpg?x=1") == "/api/session/render/abc.jpg?x=1"
    assert loggable_text("Bad request\r\nERROR forged\x1b[0m\u2028") == (
        "Bad request\\r\\nERROR forged\\x1b[0m\\u2028"
    )
    assert loggable_text("a\\nb") == "a\\\\nb"  # a literal backslash-n cannot pass for an escaped newline


def test_the_listeners_own_error_messages_are_escaped(
    delivery: tuple[Listener, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    listener, _ = delivery
    caplog.set_level(logging.DEBUG)
    listener._error_log("Illegal header line: b'X\\r\\n'\nERROR appliance.kiosk: forged", logging.ERROR)
    (message,) = _listener_lines(caplog)
    assert _one_printable_line(message) and "\\nERROR appliance.kiosk: forged" in message
