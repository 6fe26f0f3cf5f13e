"""P0-8: a delivery link works once. GET never spends it; of 32 concurrent POSTs over real TLS exactly one
gets the JPEG; expired, spent and unknown links get the same plain 404; nothing is cached; tokens are
never logged."""

from __future__ import annotations

import gc
import http.client
import logging
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.config import KioskConfig
from appliance.kiosk import Kiosk
from kiosk_ui.delivery import create_delivery_app
from kiosk_ui.serve import DELIVERY_THREADS, Listener
from tests.support import tls_delivery_listener

CONCURRENT = 32


def _config(base: Path) -> KioskConfig:
    return KioskConfig.model_validate(
        {"store": {"path": str(base / "store")}, "audit": {"path": str(base / "audit")}}
    )


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    k = Kiosk(_config(tmp_path_factory.mktemp("p08")))
    k.start()
    yield k
    k.close()


@pytest.fixture(scope="module")
def served(kiosk: Kiosk) -> Iterator[tuple[Listener, ssl.SSLContext]]:
    # No certificate configured on loopback: the ephemeral self-signed one, as in a laptop demo.
    with tls_delivery_listener(kiosk, threads=DELIVERY_THREADS) as pair:
        yield pair


@pytest.fixture(scope="module")
def listener(served: tuple[Listener, ssl.SSLContext]) -> Listener:
    return served[0]


@pytest.fixture(scope="module")
def tls(served: tuple[Listener, ssl.SSLContext]) -> ssl.SSLContext:
    return served[1]


def _visit_with_link(kiosk: Kiosk) -> str:
    """A whole visit through the facade; returns the token of its one-time link (the visit has ended)."""
    kiosk.start_session()
    kiosk.consent(True, {})
    taken = kiosk.capture()
    url = kiosk.deliver(taken.headshot.id).url
    kiosk.end()
    return url.split("/d/", 1)[1]


def _request(
    listener: Listener, tls: ssl.SSLContext, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", listener.port, context=tls, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _assert_plain_404(status: int, headers: dict[str, str], body: bytes, reference: bytes) -> None:
    assert status == 404
    assert body == reference
    assert headers["cache-control"] == "no-store"
    assert headers["content-type"].startswith("text/plain")


def test_get_never_spends_and_exactly_one_of_32_posts_wins(
    kiosk: Kiosk, listener: Listener, tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = _visit_with_link(kiosk)
    path = f"/d/{token}"

    for _ in range(3):  # link-preview bots, the phone's own prefetch, a reload
        status, headers, body = _request(listener, tls, "GET", path)
        assert status == 200
        assert b"Save photo" in body and b'method="post"' in body
        assert headers["cache-control"] == "no-store"
        assert headers["referrer-policy"] == "no-referrer"
        assert "max-age" in headers["strict-transport-security"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert _request(listener, tls, "HEAD", path)[0] == 200

    barrier = threading.Barrier(CONCURRENT)
    results: list[tuple[int, dict[str, str], bytes]] = []
    lock = threading.Lock()

    def spend() -> None:
        barrier.wait()
        outcome = _request(listener, tls, "POST", path)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=spend) for _ in range(CONCURRENT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(r[0] for r in results)
    assert statuses == [200] + [404] * (CONCURRENT - 1)

    winner = next(r for r in results if r[0] == 200)
    _, headers, jpeg = winner
    assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
    assert headers["content-type"] == "image/jpeg"
    assert headers["content-disposition"].startswith("attachment")
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"

    unknown = _request(listener, tls, "GET", "/d/" + "0" * 32 + "." + "A" * 43)
    losers = [r for r in results if r[0] == 404]
    for status, headers, body in [*losers, _request(listener, tls, "GET", path), unknown]:
        _assert_plain_404(status, headers, body, unknown[2])

    # Tokens (id and key) never reach a log line, from any thread.
    obj_id, key = token.split(".")
    assert token not in caplog.text and obj_id not in caplog.text and key not in caplog.text


def test_expired_link_is_the_same_404(
    kiosk: Kiosk, listener: Listener, tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = _visit_with_link(kiosk)
    assert _request(listener, tls, "GET", f"/d/{token}")[0] == 200
    store = kiosk.deliveries
    assert store is not None
    later = time.time() + kiosk.cfg.delivery.window_minutes * 60 + 1
    monkeypatch.setattr(store, "clock", lambda: later)
    reference = _request(listener, tls, "GET", "/d/not-a-token")
    assert reference[0] == 404
    for method in ("GET", "POST"):
        _assert_plain_404(*_request(listener, tls, method, f"/d/{token}"), reference[2])


def test_wrong_key_does_not_destroy_the_link(kiosk: Kiosk, listener: Listener, tls: ssl.SSLContext) -> None:
    token = _visit_with_link(kiosk)
    obj_id, key = token.split(".")
    forged = obj_id + "." + ("B" if key[0] != "B" else "C") + key[1:]
    assert _request(listener, tls, "POST", f"/d/{forged}")[0] == 404
    # The last character's two unused bits: another spelling of the same key is not the link either
    # (found by the audit, whose "wrong" key once changed only those bits and spent a link).
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(key[-1])
    for other in {alphabet[(last & ~3) | low] for low in range(4)} - {key[-1]}:
        assert _request(listener, tls, "POST", f"/d/{obj_id}.{key[:-1]}{other}")[0] == 404
    status, _, body = _request(listener, tls, "POST", f"/d/{token}")
    assert status == 200 and body[:2] == b"\xff\xd8"


def _holders(needle: str, own: set[int]) -> list[str]:
    """Live objects of this process that reference a str or bytes containing ``needle``, except the objects
    whose ids are in ``own`` (the test's own copies). Looks one level into untracked tuples and dicts too
    (CPython stops tracking containers of atomic values, so they are not in ``gc.get_objects()``)."""
    needle_b = needle.encode()
    gc.collect()
    found: list[str] = []
    for holder in gc.get_objects():
        stack = [(holder, 0)]
        while stack:
            obj, depth = stack.pop()
            for ref in gc.get_referents(obj):
                if id(ref) in own:
                    continue
                if (isinstance(ref, str) and needle in ref) or (
                    isinstance(ref, bytes | bytearray) and needle_b in ref
                ):
                    found.append(f"{type(holder).__module__}.{type(holder).__qualname__}")
                elif isinstance(ref, tuple | dict) and not gc.is_tracked(ref) and depth == 0:
                    stack.append((ref, 1))
    return found


def test_a_collected_link_leaves_no_copy_in_the_process(
    kiosk: Kiosk, listener: Listener, tls: ssl.SSLContext
) -> None:
    """P1-6 in miniature, found by the audit: after a visit whose link was opened and collected over real TLS,
    no live object of the serving process still holds the token or its key (cheroot parses every request
    line with ``urllib.parse.urlsplit``, whose process-wide LRU cache kept the last 128 request URIs; each
    listener thread kept its last connection, whose reader still buffered the decrypted request)."""
    token = _visit_with_link(kiosk)
    path = f"/d/{token}"
    doubled = f"/d//{token}"  # werkzeug would answer 308 with the token in Location
    # "Connection: close": the server closes after answering, so its reader never reads past the request
    # (a keep-alive connection's next read would have emptied the buffer by chance).
    close = {"Connection": "close"}
    assert _request(listener, tls, "GET", doubled, close)[0] == 404
    assert _request(listener, tls, "GET", path, close)[0] == 200
    assert _request(listener, tls, "POST", path, close)[0] == 200
    key = token.split(".")[1]
    own = {id(token), id(path), id(doubled), id(key)}
    # The client has its answer as soon as the body is in; the server thread closes the connection a moment
    # later. Give it a bounded moment, then nothing may hold the key.
    deadline = time.monotonic() + 3.0
    while (held := _holders(key, own)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert held == []


def test_rate_limited(kiosk: Kiosk) -> None:
    client = create_delivery_app(kiosk, rate_limit=5, rate_window=60).test_client()
    statuses = [client.get("/d/nothing").status_code for _ in range(7)]
    assert statuses == [404] * 5 + [429] * 2
