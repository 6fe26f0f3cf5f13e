"""The facade driving real session workers, the real engine and the demo camera, end to end."""

from __future__ import annotations

import io
import math
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from appliance.config import KioskConfig
from appliance.delivery import DeliveryGone, unpack_photos
from appliance.errors import (
    ConsentRequired,
    KioskError,
    NoSession,
    NotAllowed,
    RetakeLimit,
    SessionActive,
    WorkerFailed,
)
from appliance.kiosk import Kiosk
from appliance.lifecycle import WipeReason
from appliance.visit import Receipt
from engine.runtime import tensorrt_available
from tests.appliance.conftest import ManualClock


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has no memory left, but check its state to be exact.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def entropy(data: bytes) -> float:
    counts = Counter(data)
    return -sum(c / len(data) * math.log2(c / len(data)) for c in counts.values())


class Harness:
    def __init__(self, kiosk: Kiosk, clock: ManualClock, receipts: list[Receipt]) -> None:
        self.kiosk, self.clock, self.receipts = kiosk, clock, receipts

    def session_files(self) -> list[Path]:
        return [p for d in self.kiosk.session_dirs() for p in (self.kiosk.store.path / d).iterdir()]

    def worker_pid(self) -> int:
        s = self.kiosk._visit
        assert s is not None and s.worker is not None
        return s.worker.pid

    def reset(self) -> None:
        if self.kiosk.state().phase != "idle":
            self.kiosk.delete_now()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(tmp_path_factory.mktemp("kiosk") / "store")},
            "session": {"max_takes": 2},
            "event": {"consent_choices": ["skin_smoothing"]},
        }
    )
    clock = ManualClock(1000.0)
    receipts: list[Receipt] = []
    kiosk = Kiosk(cfg, clock=clock, on_receipt=receipts.append)
    kiosk.start()
    yield Harness(kiosk, clock, receipts)
    kiosk.close()


@pytest.fixture
def h(harness: Harness) -> Iterator[Harness]:
    harness.reset()
    yield harness
    harness.reset()


def test_full_visit_ends_with_nothing_but_the_pending_delivery(h: Harness) -> None:
    k = h.kiosk
    assert k.start_session().phase == "consent"
    assert k.consent(True, {"skin_smoothing": True}).phase == "preview"
    frame = k.preview_frame()
    assert frame.jpeg[:3] == b"\xff\xd8\xff" and frame.size == (1280, 720)
    shot = k.capture()
    assert shot.visit.phase == "review" and shot.visit.takes_left == 1
    other = k.render(shot.take, "white", "portrait")
    jpeg = k.image(other.id)
    assert Image.open(io.BytesIO(jpeg)).size == (1080, 1350)
    held = k.state().held
    assert sorted(i.kind for i in held) == ["capture", "headshot", "headshot"]
    # What we hold is what the store holds: same objects, nothing else.
    assert sorted(i.id for i in held) == sorted(p.name for p in h.session_files())
    worker = h.worker_pid()
    delivered = k.deliver(other.id)
    assert delivered.url is not None
    token = delivered.url.rsplit("/d/", 1)[1]
    assert delivered.url.startswith("https://localhost:8443/d/") and 590 <= delivered.expires_in <= 600
    done = k.end()
    assert done.visit.phase == "idle" and done.receipt == h.receipts[-1].code
    assert h.receipts[-1].outcome is WipeReason.FINISHED
    assert h.receipts[-1].choices == {"skin_smoothing": True}
    assert k.session_dirs() == [] and wait_dead(worker)
    assert k.deliveries is not None
    assert k.deliveries.spend(token) == jpeg  # the phone still gets it, once
    with pytest.raises(DeliveryGone):
        k.deliveries.spend(token)


def test_store_holds_only_ciphertext_during_a_visit(h: Harness) -> None:
    k = h.kiosk
    k.start_session()
    k.consent(True)
    k.capture()
    files = h.session_files()
    assert len(files) == 2
    for f in files:
        data = f.read_bytes()
        # Full signatures, not the 3-byte SOI: in megabytes of ciphertext "\xff\xd8\xff" turns up by chance.
        assert not data.startswith(b"\xff\xd8") and b"\xff\xd8\xff\xe0\x00\x10JFIF" not in data
        assert b"\x89PNG\r\n\x1a\n" not in data
        assert entropy(data) > 7.9


def test_decline_captures_nothing_and_never_opens_the_camera(h: Harness) -> None:
    k = h.kiosk
    k.start_session()
    assert k.health().camera.state == "closed"
    with pytest.raises(ConsentRequired):
        k.preview_frame()
    assert k.consent(False).phase == "idle"
    assert h.receipts[-1].outcome is WipeReason.CONSENT_DECLINED
    assert k.session_dirs() == []


def test_one_visit_at_a_time(h: Harness) -> None:
    h.kiosk.start_session()
    with pytest.raises(SessionActive):
        h.kiosk.start_session()


def test_wrong_phase_is_refused_clearly(h: Harness) -> None:
    with pytest.raises(NoSession):
        h.kiosk.capture()
    h.kiosk.start_session()
    with pytest.raises(NotAllowed, match="consent"):
        h.kiosk.capture()


def test_retake_limit(h: Harness) -> None:
    k = h.kiosk
    k.start_session()
    k.consent(True)
    k.capture()
    k.capture()
    with pytest.raises(RetakeLimit):
        k.capture()


@pytest.mark.parametrize("how", ["delete_now", "revoke"])
def test_delete_and_revoke_wipe_everything_including_the_link(h: Harness, how: str) -> None:
    k = h.kiosk
    k.start_session()
    k.consent(True)
    shot = k.capture()
    token = k.deliver(shot.headshot.id).url.rsplit("/d/", 1)[1]
    worker = h.worker_pid()
    getattr(k, how)()
    assert k.session_dirs() == [] and wait_dead(worker)
    assert k.deliveries is not None
    with pytest.raises(DeliveryGone):
        k.deliveries.peek(token)


def test_idle_timeout_wipes_and_returns_to_attract(h: Harness) -> None:
    k = h.kiosk
    k.start_session()
    k.consent(True)
    k.capture()
    worker = h.worker_pid()
    h.clock.advance(k.cfg.session.review_idle_timeout_seconds - k.cfg.session.idle_warning_seconds + 1)
    assert k.state().idle_warning is True
    k.tick()
    assert k.state().phase == "review", "the warning comes first"
    h.clock.advance(k.cfg.session.idle_warning_seconds)
    k.tick()
    assert k.state().phase == "idle" and h.receipts[-1].outcome is WipeReason.IDLE_TIMEOUT
    assert k.session_dirs() == [] and wait_dead(worker)


def test_worker_crash_wipes_the_visit_and_the_kiosk_recovers(h: Harness) -> None:
    k = h.kiosk
    k.start_session()
    k.consent(True)
    k.capture()
    os.kill(h.worker_pid(), signal.SIGKILL)
    time.sleep(0.2)
    k.tick()
    state = k.state()
    assert state.phase == "idle" and state.error == "worker_died"
    assert k.session_dirs() == []
    k.wait_for_spare()
    k.start_session()
    assert k.consent(True).phase == "preview"


def test_a_dying_worker_mid_request_is_a_friendly_error(h: Harness) -> None:
    k = h.kiosk
    k.start_session()
    k.consent(True)
    os.kill(h.worker_pid(), signal.SIGKILL)
    time.sleep(0.2)
    with pytest.raises(WorkerFailed, match="deleted"):
        k.preview_frame()
    assert k.state().phase == "idle" and k.session_dirs() == []


def test_health_has_counts_and_no_session_contents(h: Harness) -> None:
    health = h.kiosk.health()
    assert {"counters", "store", "camera", "worker", "render_ms", "wipe_ms"} <= set(health.as_json())
    # What the worker really loaded, not what the config asked for ("auto" picks one per machine).
    expected = "tensorrt" if tensorrt_available() else "onnxruntime"
    assert health.worker.engine_backend == expected
    text = repr(health)
    for receipt in h.receipts:
        assert receipt.code not in text


def test_retake_goes_back_to_the_live_preview_within_the_limit(h: Harness) -> None:
    k = h.kiosk
    k.start_session()
    k.consent(True)
    k.capture()
    assert k.retake().phase == "preview"
    assert k.preview_frame().jpeg[:2] == b"\xff\xd8"
    k.capture()
    with pytest.raises(RetakeLimit):
        k.retake()
    assert k.state().phase == "review" and len(k.state().takes) == 2


def test_several_crops_go_through_one_link(h: Harness) -> None:
    """Issue 15.4: the guest asks for the badge crop too; one link carries both, rendered from the same
    photo and background, and is spent once."""
    k = h.kiosk
    k.start_session()
    k.consent(True, {"skin_smoothing": False})
    shot = k.capture()
    main = shot.headshot
    with pytest.raises(KioskError, match="also_presets"):
        k.deliver(main.id, ["poster"])
    delivered = k.deliver(main.id, ["badge", main.preset, "badge"])  # duplicates and the main one ignored
    assert delivered.url is not None
    token = delivered.url.rsplit("/d/", 1)[1]
    assert k.deliveries is not None
    photos = unpack_photos(k.deliveries.spend(token))
    assert [name for name, _ in photos] == [f"headshot-{main.preset}.jpg", "headshot-badge.jpg"]
    sizes = [Image.open(io.BytesIO(jpeg)).size for _, jpeg in photos]
    assert sizes[0] != sizes[1]  # two different crops, both real JPEGs
    with pytest.raises(DeliveryGone):
        k.deliveries.spend(token)
