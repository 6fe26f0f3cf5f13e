"""The staff camera check (issue 16 item 5): the live set-up with every person a flat silhouette, over a real
started kiosk (demo camera showing portraits, real worker processes). The engine's own face detector is the
judge: it finds the face in the raw demo frames and none in any frame of the check."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

import appliance.camera_check
from appliance.accounts import Role
from appliance.audit import receipt_recorder
from appliance.camera import make_frame_source
from appliance.errors import NotAllowed
from appliance.kiosk import Kiosk
from engine.imageio import RgbImage
from engine.pipeline import HeadshotEngine
from tests.kiosk_ui.conftest import kiosk_config
from tests.kiosk_ui.staff_helpers import Staff, StaffActions, make_staff

JPEG_MAGIC = b"\xff\xd8\xff"


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    cfg = kiosk_config(tmp_path_factory.mktemp("camera-check-kiosk"))
    k = Kiosk(cfg, on_receipt=receipt_recorder(cfg))
    k.start()
    yield k
    k.close()


@pytest.fixture(scope="module")
def engine(kiosk: Kiosk) -> Iterator[HeadshotEngine]:
    """The engine's face detector, in the test process: the judge of every frame."""
    with HeadshotEngine(kiosk.cfg.engine) as e:
        yield e


@pytest.fixture
def staff(kiosk: Kiosk, tmp_path: Path) -> Iterator[Staff]:
    yield make_staff(kiosk, tmp_path, olga=Role.OPERATOR)
    if kiosk.state().phase != "idle":
        kiosk.staff_abort()


def operator(staff: Staff) -> StaffActions:
    browser = staff.client()
    assert browser.login("olga").status_code == 303
    return browser


def decode(jpeg: bytes) -> RgbImage:
    bgr = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def jpeg_of(part: bytes) -> bytes:
    """The JPEG of one multipart part (``--frame`` head, blank line, JPEG, CRLF)."""
    head, _, body = part.partition(b"\r\n\r\n")
    assert head.startswith(b"--frame") and b"image/jpeg" in head
    assert body.startswith(JPEG_MAGIC) and body.endswith(b"\r\n")
    return body[:-2]


def claimed_spare(kiosk: Kiosk) -> int:
    """The pid of the warm spare that the next check claims (started here if none is: no ``tick`` runs)."""
    kiosk.spares.spawn()
    kiosk.wait_for_spare()
    pid = kiosk.spares.spare_pid
    assert pid is not None
    return pid


def gone(pid: int, timeout: float = 10.0) -> bool:
    """The process ``pid`` has exited and been reaped (no /proc entry, not even a zombie)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False


def test_raw_demo_frames_show_a_face_and_the_check_shows_none(
    kiosk: Kiosk, engine: HeadshotEngine, staff: Staff
) -> None:
    # Positive control: the demo camera puts a portrait in front of the camera, and the detector sees it.
    camera = make_frame_source(kiosk.cfg.camera)
    camera.open()
    try:
        raw = [camera.read().image for _ in range(3)]
    finally:
        camera.close()
    assert all(engine.detect_faces(rgb) for rgb in raw)

    pid = claimed_spare(kiosk)
    browser = operator(staff)
    page = browser.get("/staff/camera")
    assert page.status_code == 200 and "/staff/camera.mjpg" in page.get_data(as_text=True)
    stream = browser.get("/staff/camera.mjpg", buffered=False)
    assert stream.status_code == 200
    assert stream.mimetype == "multipart/x-mixed-replace"
    assert stream.headers["Cache-Control"] == "no-store"
    assert kiosk.health().camera.state == "check" and kiosk.spares.spare_pid != pid
    parts = iter(stream.response)
    for _ in range(4):
        rgb = decode(jpeg_of(next(parts)))
        assert rgb.shape == raw[0].shape
        assert engine.detect_faces(rgb) == []
    stream.close()  # the page went away: the check ends, its worker with it

    assert not kiosk.camera_checks.running
    assert gone(pid), "the check's worker is still alive"
    assert kiosk.health().camera.state == "closed"
    assert "olga:camera.check" in staff.actions()


def test_frames_carry_the_set_up_readings_and_the_face_as_an_outline_only(kiosk: Kiosk) -> None:
    pid = claimed_spare(kiosk)
    viewer = kiosk.start_camera_check()
    try:
        frame = kiosk.camera_check_frame()
    finally:
        kiosk.end_camera_check(viewer)
    r = frame.readings
    assert frame.jpeg.startswith(JPEG_MAGIC) and frame.size == (1280, 720)
    assert 0.0 < r.mean_luma < 1.0 and 0.0 <= r.clipped_highlights <= 1.0
    assert 0.5 < r.red_green < 2.0 and 0.5 < r.blue_green < 2.0 and r.focus >= 0.0
    assert len(r.faces) >= 1 and 0.1 < r.hidden < 0.95  # the portrait is found, and hidden
    (x0, y0, x1, y1) = r.faces[0]
    assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
    # Inside the face box, below the readings' text band (~110 px at 720p), the picture is the flat
    # silhouette colour, not the face, except where the thin framing guide crosses it.
    rgb = decode(frame.jpeg).astype(np.int16)
    w, h = frame.size
    top = max(int(y0 * h) + 8, 120)
    inner = rgb[top : int(y1 * h) - 8, int(x0 * w) + 8 : int(x1 * w) - 8]
    flat = np.abs(inner - np.array((70, 96, 140))).max(axis=2) <= 12
    assert inner.size and flat.mean() > 0.9
    assert gone(pid)


def test_a_guest_visit_ends_the_check_at_once_and_then_the_check_is_refused(
    kiosk: Kiosk, staff: Staff
) -> None:
    pid = claimed_spare(kiosk)
    browser = operator(staff)
    stream = browser.get("/staff/camera.mjpg", buffered=False)
    assert stream.status_code == 200
    parts = iter(stream.response)
    jpeg_of(next(parts))

    started = time.monotonic()
    assert kiosk.start_session().phase == "consent"  # the guest is never refused because of a check
    assert time.monotonic() - started < 5.0
    assert not kiosk.camera_checks.running
    assert gone(pid), "the check's worker outlived the guest's arrival"
    assert list(parts) == []  # the stream stops: no frame after the visit started
    stream.close()

    assert browser.get("/staff/camera").status_code == 409
    assert browser.get("/staff/camera.mjpg").status_code == 409
    assert not kiosk.camera_checks.running

    # The guest gets a fresh worker and a camera of their own.
    assert kiosk.consent(True).phase == "preview"
    assert kiosk.health().camera.state not in ("closed", "check")
    assert kiosk.staff_abort()


def test_the_check_needs_an_operator_signed_in(staff: Staff, kiosk: Kiosk) -> None:
    anonymous = staff.client()
    for path in ("/staff/camera", "/staff/camera.mjpg"):
        response = anonymous.get(path)
        assert response.status_code == 303 and response.headers["Location"].endswith("/staff/login")
    assert not kiosk.camera_checks.running


def test_a_check_nobody_watches_is_ended_by_tick(kiosk: Kiosk, monkeypatch: pytest.MonkeyPatch) -> None:
    pid = claimed_spare(kiosk)
    kiosk.start_camera_check()  # a viewer that never leaves (a stream whose generator never closed)
    kiosk.camera_check_frame()
    kiosk.tick()
    assert kiosk.camera_checks.running  # a frame was just asked for
    monkeypatch.setattr(appliance.camera_check, "IDLE_SECONDS", 0.0)
    time.sleep(0.01)
    kiosk.tick()
    assert not kiosk.camera_checks.running
    assert gone(pid)
    with pytest.raises(NotAllowed, match="no camera check"):
        kiosk.camera_check_frame()
