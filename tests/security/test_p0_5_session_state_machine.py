"""P0-5: property-based walk over the session API with a fake clock.

Invariants after every step: the camera is never open before consent; "what we hold" equals what the
store really holds; every exit (delete-now, revoke, each timeout, a dead worker, end) leaves the store
without the session's files and the session worker process gone."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from appliance.config import KioskConfig
from appliance.errors import ConsentRequired, KioskError
from appliance.kiosk import Kiosk
from tests.appliance.conftest import ManualClock
from tests.appliance.test_kiosk import wait_dead

EXITS = ("end", "delete_now", "revoke")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kiosk, ManualClock]]:
    clock = ManualClock(5000.0)
    cfg = KioskConfig.model_validate(
        {
            "store": {"path": str(tmp_path_factory.mktemp("p05") / "store")},
            "session": {"max_takes": 2},
            "event": {"consent_choices": ["skin_smoothing"]},
        }
    )
    kiosk = Kiosk(cfg, clock=clock)
    kiosk.start()
    yield kiosk, clock
    kiosk.close()


def test_session_api_state_machine(shared: tuple[Kiosk, ManualClock]) -> None:
    kiosk, clock = shared

    class SessionMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            if kiosk.state().phase != "idle":
                kiosk.delete_now()
            self.ended_workers: list[int] = []

        def phase(self) -> str:
            return str(kiosk.state().phase)

        def _worker_pid(self) -> int | None:
            s = kiosk._visit
            return None if s is None or s.worker is None else s.worker.pid

        def _exit(self, how: str) -> None:
            pid = self._worker_pid()
            try:
                getattr(kiosk, how)()
            except KioskError:
                return
            if pid is not None:
                self.ended_workers.append(pid)

        @precondition(lambda self: self.phase() == "idle")
        @rule()
        def start(self) -> None:
            kiosk.start_session()

        @precondition(lambda self: self.phase() == "consent")
        @rule(accept=st.booleans())
        def consent(self, accept: bool) -> None:
            kiosk.consent(accept, {"skin_smoothing": accept})

        @rule()
        def preview(self) -> None:
            before = self.phase()
            try:
                frame = kiosk.preview_frame()
            except ConsentRequired:
                assert before in ("idle", "consent")
                return
            except KioskError:
                return
            assert before == "preview" and frame.jpeg[:2] == b"\xff\xd8"

        @precondition(lambda self: self.phase() in ("preview", "review"))
        @rule()
        def capture(self) -> None:
            try:
                kiosk.capture()
            except KioskError as exc:
                assert exc.code in ("retake_limit", "no_face")

        @precondition(lambda self: self.phase() == "review")
        @rule(
            background=st.sampled_from(["studio-grey", "white", "blur"]),
            preset=st.sampled_from(["square", "badge"]),
        )
        def render(self, background: str, preset: str) -> None:
            take = kiosk.state().takes[-1].id
            kiosk.render(take, background, preset)

        @precondition(lambda self: self.phase() == "review")
        @rule()
        def deliver(self) -> None:
            kiosk.deliver(kiosk.state().headshots[-1].id)

        @precondition(lambda self: self.phase() != "idle")
        @rule(how=st.sampled_from(EXITS))
        def leave(self, how: str) -> None:
            self._exit(how)

        @precondition(lambda self: self.phase() != "idle")
        @rule(seconds=st.sampled_from([5.0, 50.0, 130.0, 700.0]))
        def wait(self, seconds: float) -> None:
            pid = self._worker_pid()
            clock.advance(seconds)
            kiosk.tick()
            if self.phase() == "idle" and pid is not None:
                self.ended_workers.append(pid)

        @precondition(lambda self: self.phase() in ("preview", "review", "delivery"))
        @rule()
        def worker_crashes(self) -> None:
            pid = self._worker_pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            wait_dead(pid)
            deadline = time.monotonic() + 5
            while self.phase() != "idle" and time.monotonic() < deadline:
                kiosk.tick()
                time.sleep(0.05)
            self.ended_workers.append(pid)

        @invariant()
        def camera_closed_before_consent(self) -> None:
            if self.phase() in ("idle", "consent"):
                s = kiosk._visit
                assert s is None or s.worker is None, "no session worker (so no camera) before consent"
                assert kiosk.health().camera.state == "closed"

        @invariant()
        def held_equals_stored(self) -> None:
            s = kiosk._visit
            held = {i.id for i in kiosk.state().held if i.kind != "delivery"}
            stored = set()
            if s is not None and (kiosk.store.path / s.id).exists():
                stored = {p.name for p in (kiosk.store.path / s.id).iterdir()}
            assert held == stored

        @invariant()
        def idle_means_wiped(self) -> None:
            if self.phase() == "idle":
                assert kiosk.session_dirs() == []
                for pid in self.ended_workers:
                    assert wait_dead(pid), f"worker {pid} of an ended session is still alive"

        def teardown(self) -> None:
            if self.phase() != "idle":
                self._exit("delete_now")
            assert kiosk.session_dirs() == []

    machine = settings(
        max_examples=10,
        stateful_step_count=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )(SessionMachine)
    machine.TestCase().runTest()
