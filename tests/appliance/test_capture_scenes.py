"""A capture at an event: the burst never keeps a frame the render would refuse or one with somebody else in
the guest's picture; when no frame qualifies the guest is told what to change (issue 13).

The session worker runs in this process with a directory camera over scenes composed from the test
portraits (``tests/engine/scenes.py``): the camera "sees" exactly those frames, in name order."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from appliance.config import KioskConfig
from appliance.errors import CAPTURE_REFUSED
from appliance.store import new_session_id
from appliance.worker import CAPTURE_REFUSALS, SessionWorker, WorkerError
from tests.engine import scenes

REPO = Path(__file__).resolve().parents[2]
Scene = Callable[[], scenes.Scene]


def _worker(tmp_path: Path, frames: list[Scene]) -> SessionWorker:
    shots = tmp_path / "camera"
    shots.mkdir(parents=True)
    for i, make in enumerate(frames):
        Image.fromarray(make().rgb).save(shots / f"{i:02d}.png")
    store = tmp_path / "store"
    store.mkdir(mode=0o700)
    cfg = KioskConfig.model_validate(
        {
            "camera": {"source": "directory", "path": str(shots), "fps": 60},
            "store": {"path": str(store)},
            "session": {"capture_burst_frames": len(frames)},
        }
    )
    worker = SessionWorker(cfg, str(store))
    worker.begin(new_session_id(), capacity_bytes=None)
    worker.open_camera()
    return worker


@pytest.fixture
def make_worker(tmp_path: Path) -> Iterator[Callable[[list[Scene]], SessionWorker]]:
    made: list[SessionWorker] = []

    def make(frames: list[Scene]) -> SessionWorker:
        worker = _worker(tmp_path / str(len(made)), frames)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.shutdown()


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([scenes.side_by_side, scenes.overlapping], "step_apart"),
        ([scenes.tiny_face, scenes.tiny_face], "face_too_small"),
        ([scenes.face_cut_off, scenes.face_cut_off], "face_cut_off"),
        # Mixed: the refusal names what most frames showed.
        ([scenes.overlapping, scenes.overlapping, scenes.tiny_face], "step_apart"),
    ],
)
def test_a_burst_with_no_usable_frame_keeps_nothing_and_says_why(
    make_worker: Callable[[list[Scene]], SessionWorker], frames: list[Scene], code: str
) -> None:
    worker = make_worker(frames)
    with pytest.raises(WorkerError) as caught:
        worker.capture(burst=len(frames))
    assert caught.value.code == code
    assert worker.takes == {} and worker.inventory() == []  # nothing stored, not even encrypted


def test_the_burst_keeps_the_frame_with_only_the_guest(
    make_worker: Callable[[list[Scene]], SessionWorker],
) -> None:
    # A friend leans in for two frames out of three: the one frame without them is the one kept.
    worker = make_worker([scenes.overlapping, scenes.cut_left, scenes.side_by_side])
    taken = worker.capture(burst=3)
    take = worker.takes[taken["take"]]
    assert take.others == ()
    assert take.face.bbox[0] < 0.4 * take.shape[1]  # the guest of cut_left, at the left of the frame
    rendered = worker.render(taken["take"], "white", "square")
    assert rendered["bytes"] > 0


def test_the_live_preview_asks_the_guest_to_step_apart_first(
    make_worker: Callable[[list[Scene]], SessionWorker],
) -> None:
    worker = make_worker([scenes.side_by_side])
    frame = worker.frame(background=None)
    assert frame["hints"][0] == "step_apart"


def test_every_refusal_is_known_to_the_facade_the_page_and_http() -> None:
    assert set(CAPTURE_REFUSALS) == set(CAPTURE_REFUSED)
    script = (REPO / "kiosk_ui" / "static" / "kiosk.js").read_text(encoding="utf-8")
    listed = re.search(r"const CAPTURE_REFUSED = \[([^\]]*)\]", script)
    assert listed is not None
    assert set(re.findall(r'"(\w+)"', listed.group(1))) == set(CAPTURE_REFUSED)

    from appliance.errors import WorkerRefused
    from kiosk_ui.errors import http_status
    from kiosk_ui.strings import client_strings

    with _app_context():
        strings = client_strings()
    for code in CAPTURE_REFUSED:
        assert http_status(WorkerRefused("x", code=code)) == 422
        assert f"error_{code}" in strings, f"the page has no text for {code}"
    assert "hint_step_apart" in strings


def _app_context() -> Any:
    from appliance.kiosk import Kiosk
    from kiosk_ui import create_app

    return create_app(Kiosk(KioskConfig()), testing=True).test_request_context("/")
