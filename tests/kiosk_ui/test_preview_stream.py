"""The live preview where the guest meets it (issue 14): an HTTP client of the real guest listener (cheroot,
as ``python -m appliance run`` serves it) counts the JPEG parts of ``/api/session/preview.mjpg`` it
receives from a 30 fps demo camera; Delete now ends the stream at once; a frame the worker made for a visit
that was wiped meanwhile never reaches the client; ``?seated=1`` aims the guidance at the lower outline.

``python -m appliance.bench --client-only`` measures the same at length, with the kiosk in its own process
and the relay's CPU (BENCHMARKS.md, "Issue 14: the live preview at the client")."""

from __future__ import annotations

import http.client
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from appliance.bench import count_parts, free_port, read_part
from appliance.kiosk import Kiosk
from appliance.workerclient import Frame, WorkerClient
from kiosk_ui.serve import Listener, ui_listener
from tests.kiosk_ui.conftest import kiosk_config

# The camera delivers 30 fps and the page asks for no more (kiosk_ui.guest.MAX_PREVIEW_FPS). Measured at
# the client (appliance.bench, BENCHMARKS.md): 29.7-30 fps on the 2-core development machine, 17-30 with
# two busy-loop processes taking the cores beside it; the design before issue 14 could not pass 12 (its
# cap) and gave 8.3-8.5, 5.3-6.5 beside the busy loops. 20 over 3 s leaves a third for a loaded CI machine
# while still failing anything that spaces frames like the old relay did; the better of two windows, so one
# burst of someone else's work does not decide it.
MIN_CLIENT_FPS = 20.0
COUNT_SECONDS = 3.0
# Delete now ends the stream once the worker's frame in progress comes back (one frame, ~35 ms measured);
# a second is room for a loaded machine, and far below anything a guest would notice.
MAX_END_SECONDS = 1.0
MARKER = b"\xff\xd8FRAME-OF-A-WIPED-VISIT\xff\xd9"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kiosk, Listener]]:
    cfg = kiosk_config(tmp_path_factory.mktemp("preview"), ui={"port": free_port()})
    assert cfg.camera.source == "demo" and cfg.camera.fps == 30  # the demo camera's default
    kiosk = Kiosk(cfg)
    kiosk.start()
    listener = ui_listener(kiosk, cfg)
    listener.start()
    try:
        yield kiosk, listener
    finally:
        listener.stop()
        kiosk.close()


@pytest.fixture
def visit(served: tuple[Kiosk, Listener]) -> Iterator[tuple[Kiosk, int]]:
    """A visit in the live preview; wiped afterwards if a test left it running."""
    kiosk, listener = served
    kiosk.wait_for_spare()
    kiosk.start_session()
    kiosk.consent(True)
    yield kiosk, listener.port
    if kiosk.has_visit():
        kiosk.delete_now()


def _open(port: int, query: str = "") -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/api/session/preview.mjpg{query}")
    response = conn.getresponse()
    assert response.status == 200, response.read()[:200]
    assert response.getheader("Content-Type", "").startswith("multipart/x-mixed-replace")
    return conn, response


def _call(port: int, method: str, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if method == "POST":
            conn.request(method, path, body=b"{}", headers={"Content-Type": "application/json"})
        else:
            conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _guidance(port: int) -> dict[str, Any]:
    import json

    status, body = _call(port, "GET", "/api/session/guidance")
    assert status == 200
    result: dict[str, Any] = json.loads(body)
    return result


def _drain(response: http.client.HTTPResponse, parts: list[bytes], ended: threading.Event) -> None:
    try:
        while (part := read_part(response)) is not None:
            parts.append(part)
    except (OSError, http.client.HTTPException):
        pass
    ended.set()


def test_the_client_receives_the_preview_at_the_camera_rate(visit: tuple[Kiosk, int]) -> None:
    _kiosk, port = visit
    conn, response = _open(port)
    try:
        first = read_part(response)
        assert first is not None and first[:2] == b"\xff\xd8"
        count = count_parts(response, warmup=0.5, seconds=COUNT_SECONDS)
        if count.fps < MIN_CLIENT_FPS:
            count = max(count, count_parts(response, warmup=0.0, seconds=COUNT_SECONDS), key=lambda c: c.fps)
        assert count.fps >= MIN_CLIENT_FPS, count
        assert count.bytes_median > 10_000  # real 1280×720 JPEGs, not placeholders
        guidance = _guidance(port)
        assert guidance["fresh"] is True and isinstance(guidance["hints"], list)
    finally:
        conn.close()


@contextmanager
def _streaming(port: int, parts_first: int) -> Iterator[tuple[list[bytes], threading.Event]]:
    """A preview stream read on a thread of its own into ``parts``; yields once ``parts_first`` parts
    have arrived (``ended`` is set when the server ends the stream); closes it afterwards."""
    conn, response = _open(port)
    parts: list[bytes] = []
    ended = threading.Event()
    reader = threading.Thread(target=_drain, args=(response, parts, ended), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 10
        while len(parts) < parts_first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(parts) >= parts_first
        yield parts, ended
    finally:
        conn.close()
        reader.join(5)


def test_delete_now_ends_the_stream_at_once(visit: tuple[Kiosk, int]) -> None:
    kiosk, port = visit
    with _streaming(port, 5) as (_parts, ended):
        t0 = time.monotonic()
        status, _ = _call(port, "POST", "/api/session/delete")
        assert status == 200
        assert ended.wait(MAX_END_SECONDS + 5)
        assert time.monotonic() - t0 < MAX_END_SECONDS
        assert not kiosk.has_visit() and kiosk.session_dirs() == []
        # No new stream for the wiped visit.
        assert _call(port, "GET", "/api/session/preview.mjpg")[0] == 403


def test_a_frame_made_while_the_visit_was_wiped_never_reaches_the_client(
    visit: tuple[Kiosk, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wipe lands while the worker makes a frame: the frame comes back to a visit that is gone, and
    the facade refuses it (``Kiosk._still``) instead of the stream sending it."""
    kiosk, port = visit
    real_frame = WorkerClient.frame
    armed = threading.Event()
    wiped = threading.Event()

    def frame_then_wipe(self: WorkerClient, **kwargs: Any) -> Frame:
        made = real_frame(self, **kwargs)
        if not armed.is_set() or wiped.is_set():
            return made
        # Delete now from another thread, as the guest's tap would arrive, and wait until it is done:
        # the frame below belongs to a visit that no longer exists.
        deleter = threading.Thread(target=kiosk.delete_now)
        deleter.start()
        deleter.join(10)
        wiped.set()
        return Frame(MARKER, made.hints, made.face, made.size)

    monkeypatch.setattr(WorkerClient, "frame", frame_then_wipe)
    with _streaming(port, 3) as (parts, ended):
        armed.set()
        assert wiped.wait(10)
        assert ended.wait(MAX_END_SECONDS + 5), "the stream did not end after the wipe"
        assert parts and all(part[:2] == b"\xff\xd8" for part in parts)
        assert not any(MARKER in part for part in parts)
        assert not kiosk.has_visit()


def test_seated_aims_the_guidance_at_the_lower_outline(visit: tuple[Kiosk, int]) -> None:
    """The demo camera opens on its first portrait (the astronaut, face centre at 22-25 % of the frame
    height for its first 12 s): ready for the standing outline, too high for the seated one."""
    _kiosk, port = visit
    for query, expect_move in (("?seated=1", True), ("", False), ("?seated=0", False)):
        conn, response = _open(port, query)
        try:
            for _ in range(5):
                assert read_part(response) is not None
            hints = _guidance(port)["hints"]
        finally:
            conn.close()
        assert ("centre_yourself" in hints) is expect_move, (query, hints)


def test_the_relay_keeps_no_frame_it_has_sent(
    visit: tuple[Kiosk, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the stream runs, every frame the relay has sent is already gone from this process (freed by
    reference counting, no collector needed): at any moment it holds at most the frame on its way out
    and the one coming back from the worker. The first frame included, which the view once kept in a
    closure for the whole stream."""
    real_frame = WorkerClient.frame
    made: list[weakref.ref[Frame]] = []

    def recorded(self: WorkerClient, **kwargs: Any) -> Frame:
        frame = real_frame(self, **kwargs)
        made.append(weakref.ref(frame))
        return frame

    monkeypatch.setattr(WorkerClient, "frame", recorded)
    _kiosk, port = visit
    conn, response = _open(port)
    try:
        for _ in range(10):
            assert read_part(response) is not None
        alive = [i for i, ref in enumerate(made) if ref() is not None]
        assert len(made) >= 10 and all(i >= len(made) - 2 for i in alive), (len(made), alive)
    finally:
        conn.close()
