"""The session state machine: every road ends in WIPE, and the table stays honest as phases are added."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.config import KioskConfig, SessionConfig
from appliance.lifecycle import (
    CAMERA_PHASES,
    GUEST_IDLE_PHASES,
    TRANSITIONS,
    InvalidTransition,
    Phase,
    WipeReason,
    advance,
    can_advance,
    timeout_for,
    timeout_reason,
)
from appliance.visit import Visit, visit_view

HOLDING_PHASES = [phase for phase in Phase if phase not in (Phase.IDLE, Phase.WIPE)]


def reachable(start: Phase, *, without: frozenset[Phase] = frozenset()) -> set[Phase]:
    seen = {start}
    queue = deque([start])
    while queue:
        for following in TRANSITIONS[queue.popleft()]:
            if following not in seen and following not in without:
                seen.add(following)
                queue.append(following)
    return seen


@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_has_a_row_in_the_table(phase: Phase) -> None:
    assert phase in TRANSITIONS


@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_except_idle_and_wipe_can_be_wiped(phase: Phase) -> None:
    # A phase added later that holds session state must list WIPE, or this fails.
    assert can_advance(phase, Phase.WIPE) == (phase not in (Phase.IDLE, Phase.WIPE))


@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_is_reachable_from_idle_and_leads_back_to_idle(phase: Phase) -> None:
    assert phase in reachable(Phase.IDLE)
    assert Phase.IDLE in reachable(phase) or phase is Phase.IDLE


@pytest.mark.parametrize("phase", list(Phase))
def test_no_phase_moves_to_itself(phase: Phase) -> None:
    assert not can_advance(phase, phase)


@pytest.mark.parametrize("phase", list(Phase))
def test_idle_is_entered_only_from_wipe(phase: Phase) -> None:
    assert can_advance(phase, Phase.IDLE) == (phase is Phase.WIPE)


def test_wipe_leads_only_to_idle() -> None:
    assert TRANSITIONS[Phase.WIPE] == frozenset({Phase.IDLE})


def test_idle_has_nothing_to_wipe() -> None:
    assert TRANSITIONS[Phase.IDLE] == frozenset({Phase.CONSENT})
    with pytest.raises(InvalidTransition):
        advance(Phase.IDLE, Phase.WIPE)


def test_the_guest_flow_walks_through() -> None:
    phase = Phase.IDLE
    for target in (
        Phase.CONSENT,
        Phase.PREVIEW,
        Phase.COUNTDOWN,
        Phase.CAPTURE,
        Phase.PROCESSING,
        Phase.REVIEW,
        Phase.PREVIEW,  # retake
        Phase.COUNTDOWN,
        Phase.PREVIEW,  # countdown cancelled
        Phase.COUNTDOWN,
        Phase.CAPTURE,
        Phase.PROCESSING,
        Phase.REVIEW,
        Phase.DELIVERY,
        Phase.WIPE,
        Phase.IDLE,
    ):
        phase = advance(phase, target)
    assert phase is Phase.IDLE


def test_delivery_ends_only_in_wipe() -> None:
    assert TRANSITIONS[Phase.DELIVERY] == frozenset({Phase.WIPE})


def test_the_camera_cannot_open_before_consent() -> None:
    # With CONSENT removed from the graph, no camera phase can be reached from IDLE.
    assert not (reachable(Phase.IDLE, without=frozenset({Phase.CONSENT})) & CAMERA_PHASES)
    assert not ({Phase.IDLE, Phase.CONSENT, Phase.WIPE} & CAMERA_PHASES)


def test_invalid_transition_says_what_is_allowed() -> None:
    with pytest.raises(InvalidTransition) as info:
        advance(Phase.REVIEW, Phase.CAPTURE)
    assert info.value.current is Phase.REVIEW
    assert info.value.target is Phase.CAPTURE
    assert str(info.value) == (
        "cannot go from phase 'review' to 'capture'; from 'review' the allowed next phases are: "
        "delivery, preview, wipe"
    )


def test_the_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[Phase.IDLE] = frozenset({Phase.WIPE})  # type: ignore[index]


def test_phase_and_reason_values_are_stable_strings() -> None:
    assert Phase("review") is Phase.REVIEW
    assert isinstance(Phase.REVIEW, str) and Phase.REVIEW.value == "review"
    assert {reason.value for reason in WipeReason} == {
        "finished",
        "deleted_by_guest",
        "consent_revoked",
        "consent_declined",
        "idle_timeout",
        "error",
        "worker_died",
        "staff_abort",
        "shutdown",
    }


@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_holding_a_session_has_a_time_limit(phase: Phase) -> None:
    cfg = SessionConfig()
    limit = timeout_for(phase, cfg)
    if phase in (Phase.IDLE, Phase.WIPE):
        assert limit is None
    else:
        assert limit is not None and 0 < limit <= 600


def test_time_limits_come_from_the_session_config() -> None:
    cfg = SessionConfig(
        consent_idle_timeout_seconds=11,
        preview_idle_timeout_seconds=22,
        review_idle_timeout_seconds=33,
        delivery_idle_timeout_seconds=44,
        idle_warning_seconds=5,
        capture_timeout_seconds=55,
        processing_timeout_seconds=66,
    )
    assert {phase: timeout_for(phase, cfg) for phase in Phase} == {
        Phase.IDLE: None,
        Phase.CONSENT: 11,
        Phase.PREVIEW: 22,
        Phase.COUNTDOWN: 55,
        Phase.CAPTURE: 55,
        Phase.PROCESSING: 66,
        Phase.REVIEW: 33,
        Phase.DELIVERY: 44,
        Phase.WIPE: None,
    }


@pytest.mark.parametrize("phase", HOLDING_PHASES)
def test_timeout_reason_blames_the_guest_only_on_guest_screens(phase: Phase) -> None:
    expected = WipeReason.IDLE_TIMEOUT if phase in GUEST_IDLE_PHASES else WipeReason.ERROR
    assert timeout_reason(phase) is expected


@given(st.lists(st.sampled_from(list(Phase)), max_size=60))
def test_random_walks_follow_the_table_and_can_always_wipe(targets: list[Phase]) -> None:
    phase = Phase.IDLE
    for target in targets:
        allowed = can_advance(phase, target)
        try:
            phase = advance(phase, target)
        except InvalidTransition:
            assert not allowed
        else:
            assert allowed and phase is target
        # Wherever the walk stands, the way out is at most two steps: WIPE, then IDLE.
        assert phase in (Phase.IDLE, Phase.WIPE) or can_advance(phase, Phase.WIPE)


@pytest.mark.parametrize("phase", HOLDING_PHASES)
def test_the_idle_warning_shows_only_while_the_kiosk_waits_for_the_guest(phase: Phase) -> None:
    """The "still there?" warning only where the guest is the one to act. The capture's failsafe is as long as
    the warning (20 s each by default): the page warned at every photo, and the shutter button's next press
    went to "I need more time" instead of "Get it on my phone" (a CI failure of the shutter-button test)."""
    cfg = KioskConfig()
    timeout = timeout_for(phase, cfg.session)
    assert timeout is not None
    visit = Visit(id="v", receipt="R", started_wall=0.0, last_activity=1000.0, phase=phase)
    for elapsed in (0.0, timeout - 1.0):
        view = visit_view(visit, cfg, now=1000.0 + elapsed, wall=0.0, paused=False)
        assert view.idle_seconds_left == pytest.approx(timeout - elapsed)  # the failsafe is still told
        in_window = timeout - elapsed <= cfg.session.idle_warning_seconds
        assert view.idle_warning is (phase in GUEST_IDLE_PHASES and in_window)
