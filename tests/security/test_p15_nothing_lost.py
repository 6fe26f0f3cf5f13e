"""Issue 15.3: nothing is lost to a bad connection. A link is spent only when its photo has reached the phone
(every byte acknowledged, the connection not reset before they were read); a POST whose connection the
client closes before it has read the whole body leaves the link collectable by the next POST; a repeat of
the same Save from the same phone within a short grace is served again, and nothing else is. One POST still
wins among concurrent ones, refusals are still the same 404, tokens are still never logged.
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder

from appliance.delivery import DeliveryGone, DeliveryStore
from appliance.kiosk import Kiosk
from kiosk_ui.delivery import create_delivery_app
from kiosk_ui.serve import Listener
from tests.support import tls_delivery_listener, workerless_kiosk

# Bigger than the socket buffers of both ends on loopback, and a headshot's order of size.
JPEG = b"\xff\xd8\xff\xe0" + os.urandom(3 * 2**20) + b"\xff\xd9"
SMALL = b"\xff\xd8\xff\xe0" + os.urandom(100 * 1024) + b"\xff\xd9"
ATTEMPT = "A" * 22


# -- the store on its own ---------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> DeliveryStore:
    return DeliveryStore(tmp_path / "deliveries", window_seconds=600)


def test_a_collection_put_back_is_collectable_again_and_one_settled_is_spent(store: DeliveryStore) -> None:
    token = store.create(SMALL).token
    jpeg, claim = store.collect(token, client="10.0.0.5", attempt=ATTEMPT)
    assert jpeg == SMALL
    store.in_flight_wait_seconds = 0.05
    with pytest.raises(DeliveryGone):  # claimed: nobody else gets it meanwhile
        store.collect(token, client="10.0.0.6")
    with pytest.raises(DeliveryGone):
        store.peek(token)
    store.settle(claim, delivered=False)
    store.settle(claim, delivered=True)  # once per claim: the second call does nothing
    assert store.peek(token) == len(SMALL) and store.pending() == 1
    jpeg, claim = store.collect(token, client="10.0.0.5", attempt=ATTEMPT)
    store.settle(claim, delivered=True)
    assert store.pending() == 0
    for client, attempt in (("10.0.0.6", ATTEMPT), ("10.0.0.5", "B" * 22), ("10.0.0.5", None)):
        with pytest.raises(DeliveryGone):
            store.collect(token, client=client, attempt=attempt)
    with pytest.raises(DeliveryGone):
        store.peek(token)  # the landing page never serves a spent link, repeat or not
    # The same Save from the same phone: served again within the grace, once at a time.
    again, claim = store.collect(token, client="10.0.0.5", attempt=ATTEMPT)
    assert again == SMALL
    store.settle(claim, delivered=True)


def test_the_repeat_grace_ends_and_the_sweep_removes_the_photo(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "deliveries", window_seconds=600, repeat_grace_seconds=0.2)
    token = store.create(SMALL).token
    _, claim = store.collect(token, client="10.0.0.5", attempt=ATTEMPT)
    store.settle(claim, delivered=True)
    assert len(list(store.directory.iterdir())) == 1  # the ciphertext kept for a repeat
    time.sleep(0.3)
    with pytest.raises(DeliveryGone):
        store.collect(token, client="10.0.0.5", attempt=ATTEMPT)
    assert store.purge_expired() == 1
    assert list(store.directory.iterdir()) == []


def test_revoke_reaches_a_photo_on_its_way_and_one_kept_for_a_repeat(store: DeliveryStore) -> None:
    token = store.create(SMALL).token
    _, claim = store.collect(token, client="10.0.0.5", attempt=ATTEMPT)
    assert store.revoke(token)  # Delete now while the phone downloads
    store.settle(claim, delivered=False)  # the download broke off: the link must not come back
    assert list(store.directory.iterdir()) == []
    with pytest.raises(DeliveryGone):
        store.collect(token, client="10.0.0.5", attempt=ATTEMPT)
    token = store.create(SMALL).token
    _, claim = store.collect(token, client="10.0.0.5", attempt=ATTEMPT)
    store.settle(claim, delivered=True)
    store.revoke(token)
    assert list(store.directory.iterdir()) == []
    with pytest.raises(DeliveryGone):
        store.collect(token, client="10.0.0.5", attempt=ATTEMPT)


def test_a_post_waiting_for_one_in_flight_gets_the_link_it_put_back(store: DeliveryStore) -> None:
    token = store.create(SMALL).token
    _, claim = store.collect(token, client="10.0.0.5")
    threading.Timer(0.2, lambda: store.settle(claim, delivered=False)).start()
    started = time.monotonic()
    jpeg, second = store.collect(token, client="10.0.0.5")
    assert jpeg == SMALL and 0.1 < time.monotonic() - started < store.in_flight_wait_seconds
    store.settle(second, delivered=True)
    with pytest.raises(DeliveryGone):
        store.collect(token, client="10.0.0.5")


# -- over the real TLS listener ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    with workerless_kiosk(tmp_path_factory.mktemp("p15-lost")) as k:  # only the delivery store is needed
        yield k


@pytest.fixture(scope="module")
def served(kiosk: Kiosk) -> Iterator[tuple[Listener, ssl.SSLContext]]:
    with tls_delivery_listener(kiosk, threads=8) as pair:
        yield pair


def _link(kiosk: Kiosk, jpeg: bytes = JPEG) -> str:
    assert kiosk.deliveries is not None
    return "/d/" + kiosk.deliveries.create(jpeg).token


def _post(served: tuple[Listener, ssl.SSLContext], path: str, body: str = "") -> tuple[int, bytes]:
    listener, context = served
    conn = http.client.HTTPSConnection("127.0.0.1", listener.port, context=context, timeout=30)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        conn.request("POST", path, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _cut(served: tuple[Listener, ssl.SSLContext], path: str, keep: int) -> bytes:
    """POST, read ``keep`` bytes of the reply (head included) and close with the rest unread."""
    listener, context = served
    request = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".encode()
    got = b""
    with (
        socket.create_connection(("127.0.0.1", listener.port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(request)
        while len(got) < keep:
            chunk = tls.recv(min(16384, keep - len(got)))
            if not chunk:
                break
            got += chunk
    return got


@pytest.mark.parametrize(
    "keep", [0, 200, 64 * 1024, len(JPEG) - 1000], ids=["nothing", "head", "64k", "almost"]
)
def test_a_download_cut_mid_body_leaves_the_link_collectable_by_the_next_post(
    kiosk: Kiosk, served: tuple[Listener, ssl.SSLContext], caplog: pytest.LogCaptureFixture, keep: int
) -> None:
    caplog.set_level(logging.DEBUG)
    path = _link(kiosk)
    if keep:
        assert _cut(served, path, keep).startswith(b"HTTP/1.1 200 ")
    else:
        _cut(served, path, 0)
    status, body = _post(served, path)  # at once: no pause for the server to notice the cut
    assert status == 200 and body == JPEG
    assert _post(served, path)[0] == 404  # and now it is spent
    token = path.removeprefix("/d/")
    assert token.split(".")[0] not in caplog.text and token.split(".")[1] not in caplog.text


def test_a_complete_download_spends_the_link_and_only_the_same_save_repeats(
    kiosk: Kiosk, served: tuple[Listener, ssl.SSLContext]
) -> None:
    path = _link(kiosk, SMALL)
    status, body = _post(served, path, f"attempt={ATTEMPT}")
    assert status == 200 and body == SMALL
    # The same Save from the same phone (the browser lost the file): served again within the grace.
    deadline = time.monotonic() + 5
    while (again := _post(served, path, f"attempt={ATTEMPT}"))[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.05)  # the first settles when the client has closed: a moment after it read the body
    assert again == (200, SMALL)
    assert _post(served, path, f"attempt={'B' * 22}")[0] == 404  # another page's Save
    assert _post(served, path)[0] == 404  # no attempt at all: a bot, another client
    listener, context = served
    conn = http.client.HTTPSConnection("127.0.0.1", listener.port, context=context, timeout=30)
    conn.request("GET", path)
    assert conn.getresponse().status == 404  # a reload of the page says it is used
    conn.close()


def test_one_of_concurrent_posts_wins_even_when_the_winner_is_cut(
    kiosk: Kiosk, served: tuple[Listener, ssl.SSLContext]
) -> None:
    """The first POST is cut mid-body while eight others wait: exactly one of them then gets the photo."""
    path = _link(kiosk)
    results: list[int] = []
    lock = threading.Lock()
    start = threading.Event()

    def post() -> None:
        start.wait()
        status, body = _post(served, path)
        with lock:
            results.append(status if status != 200 or body == JPEG else -1)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    first = threading.Thread(target=_cut, args=(served, path, 64 * 1024))
    first.start()
    time.sleep(0.02)
    start.set()
    first.join(30)
    for t in threads:
        t.join(30)
    assert sorted(results) == [200] + [404] * 7


def test_without_a_front_the_app_spends_when_the_body_is_handed_over(kiosk: Kiosk) -> None:
    """The app's own fallback (a test client, a bare WSGI server): the link is spent once the body was
    iterated to its end, and put back when the body is closed before that."""
    assert kiosk.deliveries is not None
    token = kiosk.deliveries.create(SMALL).token
    app = create_delivery_app(kiosk, rate_limit=10_000)
    builder = EnvironBuilder(path=f"/d/{token}", method="POST", base_url="https://localhost:8443")
    environ = builder.get_environ()
    builder.close()
    statuses: list[str] = []
    body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
    body.close()  # closed unread: the connection went away
    assert statuses == ["200 OK"]
    assert kiosk.deliveries.peek(token) == len(SMALL)
    r = app.test_client().post(f"/d/{token}", base_url="https://localhost:8443")
    assert r.status_code == 200 and r.data == SMALL
    r.close()
    with pytest.raises(DeliveryGone):
        kiosk.deliveries.peek(token)
