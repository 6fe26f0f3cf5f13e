"""P1-1 staff authentication below the web console: argon2id parameters, single-use TOTP with ±1 step of
skew, lockout with back-off, and one identical error for every failure reason.

Server-side sessions, CSRF and per-address limits are the console's (tests/kiosk_ui).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import argon2
import pyotp
import pytest

from appliance.accounts import (
    PRODUCTION_ARGON2,
    TOTP_INTERVAL_SECONDS,
    AuthFailed,
    FailureReason,
    LockoutPolicy,
    Role,
    StaffStore,
)

FAST = argon2.Parameters(
    type=argon2.Type.ID, version=19, salt_len=16, hash_len=32, time_cost=1, memory_cost=1024, parallelism=1
)
PASSWORD = "correct horse battery staple"
STEP = TOTP_INTERVAL_SECONDS
T0 = 1_700_000_010.0  # 10 s into step 56_666_667


def code(secret: str, at: float) -> str:
    return pyotp.TOTP(secret).at(int(at))


def reason_of(store: StaffStore, name: str, password: str, totp: str, now: float) -> FailureReason:
    with pytest.raises(AuthFailed) as failed:
        store.verify(name, password, totp, now=now)
    return failed.value.reason


@pytest.fixture
def store(tmp_path: Path) -> StaffStore:
    return StaffStore(tmp_path / "staff.json", argon2=FAST)


@pytest.fixture
def secret(store: StaffStore) -> str:
    return store.add("alice", Role.ADMIN, PASSWORD).secret


# ------------------------------------------------------------------------------------------------ argon2id


def test_production_parameters_are_argon2id_64mib_t2_or_more() -> None:
    assert PRODUCTION_ARGON2.type is argon2.Type.ID
    assert PRODUCTION_ARGON2.memory_cost >= 64 * 1024  # KiB
    assert PRODUCTION_ARGON2.time_cost >= 2
    assert PRODUCTION_ARGON2.salt_len >= 16
    assert PRODUCTION_ARGON2.hash_len >= 32


def test_default_store_hashes_with_the_production_parameters(tmp_path: Path) -> None:
    store = StaffStore(tmp_path / "staff.json")  # no override: what a kiosk runs
    store.add("alice", Role.ADMIN, PASSWORD)
    stored = json.loads(store.path.read_text())["accounts"]["alice"]["password_hash"]
    params = argon2.extract_parameters(stored)
    assert params.type is argon2.Type.ID
    assert params.memory_cost == PRODUCTION_ARGON2.memory_cost
    assert params.time_cost == PRODUCTION_ARGON2.time_cost
    assert params.parallelism == PRODUCTION_ARGON2.parallelism


# ------------------------------------------------------------------------------------------------ TOTP


def test_pyotp_alone_accepts_a_code_twice(secret: str) -> None:
    # The premise of the replay check (DESIGN.md §9 P1-1): pyotp keeps no state.
    totp = pyotp.TOTP(secret)
    now = code(secret, T0)
    at = datetime.fromtimestamp(T0, tz=timezone.utc)
    assert totp.verify(now, for_time=at) and totp.verify(now, for_time=at)


def test_code_reused_within_its_step_is_refused(store: StaffStore, secret: str) -> None:
    totp = code(secret, T0)
    store.verify("alice", PASSWORD, totp, now=T0)
    assert reason_of(store, "alice", PASSWORD, totp, T0 + 5) is FailureReason.REUSED_CODE


def test_code_reused_in_the_next_step_is_refused(store: StaffStore, secret: str) -> None:
    # Still inside the ±1 window one step later, so only the stored last step stops it.
    totp = code(secret, T0)
    store.verify("alice", PASSWORD, totp, now=T0)
    assert reason_of(store, "alice", PASSWORD, totp, T0 + STEP) is FailureReason.REUSED_CODE


def test_previous_step_code_is_accepted_once(store: StaffStore, secret: str) -> None:
    late = code(secret, T0 - STEP)
    store.verify("alice", PASSWORD, late, now=T0)
    assert reason_of(store, "alice", PASSWORD, late, T0) is FailureReason.REUSED_CODE


def test_next_step_code_is_accepted_for_a_slow_server_clock(store: StaffStore, secret: str) -> None:
    store.verify("alice", PASSWORD, code(secret, T0 + STEP), now=T0)


def test_code_older_than_the_last_used_one_is_refused(store: StaffStore, secret: str) -> None:
    store.verify("alice", PASSWORD, code(secret, T0), now=T0)
    # The previous step's code is within the skew window, but older than the one just used.
    assert reason_of(store, "alice", PASSWORD, code(secret, T0 - STEP), T0) is FailureReason.REUSED_CODE


@pytest.mark.parametrize("offset_steps", [-2, 2, -3, 10])
def test_codes_beyond_one_step_of_skew_are_refused(store: StaffStore, secret: str, offset_steps: int) -> None:
    stale = code(secret, T0 + offset_steps * STEP)
    assert reason_of(store, "alice", PASSWORD, stale, T0) is FailureReason.WRONG_CODE


@pytest.mark.parametrize("garbage", ["", "12345", "1234567", "abcdef", "12 34 5"])
def test_malformed_codes_are_refused(store: StaffStore, secret: str, garbage: str) -> None:
    assert reason_of(store, "alice", PASSWORD, garbage, T0) is FailureReason.WRONG_CODE


def test_wrong_password_does_not_spend_the_code(store: StaffStore, secret: str) -> None:
    totp = code(secret, T0)
    assert reason_of(store, "alice", "wrong password!!", totp, T0) is FailureReason.WRONG_PASSWORD
    store.verify("alice", PASSWORD, totp, now=T0)


# ------------------------------------------------------------------------------------------------ lockout


def test_lockout_after_five_failures_then_expiry(store: StaffStore, secret: str) -> None:
    now = T0
    for _ in range(5):
        assert reason_of(store, "alice", "wrong password!!", "000000", now) is FailureReason.WRONG_PASSWORD
        now += 1
    # Locked: even the right password and a fresh code are refused, with the same error.
    assert reason_of(store, "alice", PASSWORD, code(secret, now), now) is FailureReason.LOCKED
    assert store.list(now=now)[0].locked_until is not None
    # After the 60 s lock the right credentials work and reset the counter.
    now = T0 + 4 + 60 + 1
    store.verify("alice", PASSWORD, code(secret, now), now=now)
    assert store.list(now=now)[0].locked_until is None
    for _ in range(4):  # counter was reset: four more failures do not lock
        reason_of(store, "alice", "wrong password!!", "000000", now)
    now += STEP
    store.verify("alice", PASSWORD, code(secret, now), now=now)


def test_lock_doubles_on_each_failure_after_expiry_and_is_capped(store: StaffStore, secret: str) -> None:
    policy = LockoutPolicy()
    assert [policy.lock_seconds(n) for n in range(1, 10)] == [0, 0, 0, 0, 60, 120, 240, 480, 900]
    assert policy.lock_seconds(1000) == policy.cap_seconds

    now = T0
    for _ in range(5):
        reason_of(store, "alice", "wrong password!!", "000000", now)
    now += 61  # the first lock (60 s) is over; the next failure locks for 120 s
    reason_of(store, "alice", "wrong password!!", "000000", now)
    assert reason_of(store, "alice", PASSWORD, code(secret, now + 119), now + 119) is FailureReason.LOCKED
    store.verify("alice", PASSWORD, code(secret, now + 121), now=now + 121)


def test_attempts_during_a_lock_do_not_extend_it(store: StaffStore, secret: str) -> None:
    for _ in range(5):
        reason_of(store, "alice", "wrong password!!", "000000", T0)
    for second in range(1, 59):
        assert reason_of(store, "alice", "wrong password!!", "000000", T0 + second) is FailureReason.LOCKED
    store.verify("alice", PASSWORD, code(secret, T0 + 61), now=T0 + 61)


def test_reused_and_wrong_codes_count_as_failures(tmp_path: Path) -> None:
    store = StaffStore(tmp_path / "staff.json", argon2=FAST, lockout=LockoutPolicy(max_failures=2))
    secret = store.add("alice", Role.ADMIN, PASSWORD).secret
    totp = code(secret, T0)
    store.verify("alice", PASSWORD, totp, now=T0)
    assert reason_of(store, "alice", PASSWORD, totp, T0) is FailureReason.REUSED_CODE
    assert reason_of(store, "alice", PASSWORD, "000000", T0) is FailureReason.WRONG_CODE
    assert reason_of(store, "alice", PASSWORD, code(secret, T0 + STEP), T0 + STEP) is FailureReason.LOCKED


# ------------------------------------------------------------------------------------------------ one error


def test_every_failure_reason_gives_the_identical_error(store: StaffStore, secret: str) -> None:
    seen: dict[FailureReason, AuthFailed] = {}

    def collect(name: str, password: str, totp: str, now: float) -> None:
        with pytest.raises(AuthFailed) as failed:
            store.verify(name, password, totp, now=now)
        seen[failed.value.reason] = failed.value

    used = code(secret, T0)
    store.verify("alice", PASSWORD, used, now=T0)
    collect("mallory", PASSWORD, used, T0)  # unknown user
    collect("Not A Name!", PASSWORD, used, T0)  # not even a valid name
    collect("alice", "wrong password!!", code(secret, T0 + STEP), T0 + STEP)
    collect("alice", PASSWORD, "000000", T0 + STEP)
    collect("alice", PASSWORD, used, T0 + STEP)  # reused
    for _ in range(3):
        collect("alice", "wrong password!!", "000000", T0 + STEP)
    collect("alice", PASSWORD, code(secret, T0 + 2 * STEP), T0 + 2 * STEP)  # locked
    assert set(seen) == set(FailureReason)
    assert len({str(e) for e in seen.values()}) == 1
    assert len({repr(e) for e in seen.values()}) == 1
    assert len({e.args for e in seen.values()}) == 1
    message = str(seen[FailureReason.LOCKED])
    for word in ("locked", "unknown", "reused", "password is", "code is"):
        assert word not in message.lower()
    assert seen[FailureReason.UNKNOWN_USER].account is None
    assert seen[FailureReason.WRONG_CODE].account == "alice"


def test_unknown_user_costs_as_much_as_a_wrong_password(tmp_path: Path) -> None:
    # Equal work for known and unknown names, so timing does not reveal which names exist. Costly enough
    # parameters (~50-100 ms) make a skipped argon2 verify stand out far above scheduling noise.
    costly = argon2.Parameters(
        type=argon2.Type.ID,
        version=19,
        salt_len=16,
        hash_len=32,
        time_cost=3,
        memory_cost=32 * 1024,
        parallelism=1,
    )
    store = StaffStore(tmp_path / "staff.json", argon2=costly, lockout=LockoutPolicy(max_failures=100))
    store.add("alice", Role.ADMIN, PASSWORD)

    def fastest(name: str) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            with pytest.raises(AuthFailed):
                store.verify(name, "wrong password!!", "123456", now=T0)
            times.append(time.perf_counter() - start)
        return min(times)

    known, unknown = fastest("alice"), fastest("mallory")
    assert unknown > 0.5 * known, f"unknown name {unknown * 1000:.1f} ms vs known {known * 1000:.1f} ms"


def test_logs_carry_no_password_code_secret_or_name(
    store: StaffStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    enrolment = store.add("alice", Role.ADMIN, PASSWORD)
    totp = code(enrolment.secret, T0)
    store.verify("alice", PASSWORD, totp, now=T0)
    for _ in range(6):
        with pytest.raises(AuthFailed):
            store.verify("alice", "hunter2hunter2", "654321", now=T0)
    store.reset_totp("alice")
    stored = json.loads(store.path.read_text())["accounts"]["alice"]["password_hash"]
    text = caplog.text
    assert caplog.records  # something was logged (lockout, add, reset)
    for secret_value in (PASSWORD, "hunter2hunter2", totp, "654321", enrolment.secret, stored, "alice"):
        assert secret_value not in text
