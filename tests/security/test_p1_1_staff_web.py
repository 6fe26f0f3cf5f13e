"""P1-1 (and P1-3) over HTTP: the staff console's server-side sessions, single-use TOTP, lockouts,
identical failure messages, CSRF, session fixation and timeouts — against a real started kiosk, real argon2id
(test cost) and real TOTP codes at an injected clock.

The account-level rules below the web layer are in test_p1_1_staff_auth.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.kiosk import Kiosk
from appliance.staff import Role
from kiosk_ui.staff import ABSOLUTE_TIMEOUT_SECONDS, COOKIE, IDLE_TIMEOUT_SECONDS, TLS_COOKIE
from tests.kiosk_ui.conftest import kiosk_config
from tests.kiosk_ui.staff_helpers import CSRF, PASSWORD, Staff, make_staff
from tests.security.test_p1_3_csrf_origin import FOREIGN

FAILED = "sign-in failed: check the name, password and code, or wait and try again"


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kiosk]:
    k = Kiosk(kiosk_config(tmp_path_factory.mktemp("p1-1-web")))
    k.start()
    yield k
    k.close()


@pytest.fixture
def staff(kiosk: Kiosk, tmp_path: Path) -> Iterator[Staff]:
    yield make_staff(kiosk, tmp_path, alice=Role.ADMIN, olga=Role.OPERATOR)
    kiosk.resume()


def _page(response_text: str) -> str:
    """The page with its per-session CSRF token blanked, to compare two failure pages."""
    return CSRF.sub('name="csrf_token" value=""', response_text)


# ------------------------------------------------------------------------------------------ sessions


def test_logged_out_cookie_replayed_is_worthless(staff: Staff, kiosk: Kiosk) -> None:
    browser = staff.client()
    assert browser.login("olga").status_code == 303
    cookie, token = browser.cookie(), browser.csrf("/staff/")
    assert cookie and browser.get("/staff/").status_code == 200
    assert browser.logout().status_code == 303
    assert browser.cookie() is None  # the browser was told to drop it

    replay = staff.client()
    replay.client.set_cookie(COOKIE, cookie)
    assert replay.get("/staff/").status_code == 303
    response = replay.post("/staff/kiosk/pause", csrf=token)
    assert response.status_code == 303 and response.headers["Location"].endswith("/staff/login")
    assert kiosk.state()["paused"] is False


def test_a_pre_sign_in_cookie_is_never_promoted(staff: Staff) -> None:
    """Session fixation: the id set before sign-in is replaced at sign-in and stops working."""
    browser = staff.client()
    browser.csrf()
    planted = browser.cookie()
    assert browser.login("olga").status_code == 303
    assert browser.cookie() not in (None, planted)
    attacker = staff.client()
    attacker.client.set_cookie(COOKIE, planted or "")
    assert attacker.get("/staff/").status_code == 303


def test_idle_timeout_ends_the_session(staff: Staff) -> None:
    browser = staff.client()
    browser.login("olga")
    for _ in range(3):  # activity keeps it alive
        staff.clock.advance(IDLE_TIMEOUT_SECONDS - 60)
        assert browser.get("/staff/").status_code == 200
    staff.clock.advance(IDLE_TIMEOUT_SECONDS + 1)
    assert browser.get("/staff/").status_code == 303


def test_absolute_timeout_ends_even_an_active_session(staff: Staff) -> None:
    browser = staff.client()
    browser.login("olga")
    elapsed = 0.0
    while elapsed + 600 < ABSOLUTE_TIMEOUT_SECONDS:
        staff.clock.advance(600)
        elapsed += 600
        assert browser.get("/staff/").status_code == 200  # still signed in: each request counts as activity
    assert browser.get("/staff/").status_code == 200
    staff.clock.advance(ABSOLUTE_TIMEOUT_SECONDS - elapsed + 1)
    assert browser.get("/staff/").status_code == 303


def test_cookie_is_httponly_samesite_strict_and_host_prefixed_over_tls(staff: Staff) -> None:
    plain = staff.client()
    plain.get("/staff/login")
    header = plain.get("/staff/login").headers.get("Set-Cookie") or ""
    first = staff.client().get("/staff/login").headers["Set-Cookie"]
    assert header == ""  # an existing session is not re-issued
    assert first.startswith(f"{COOKIE}=") and "HttpOnly" in first and "SameSite=Strict" in first
    assert "Path=/" in first and "Expires" not in first and "Max-Age" not in first

    secure = staff.client(https=True)
    cookie = secure.get("/staff/login").headers["Set-Cookie"]
    assert cookie.startswith(f"{TLS_COOKIE}=") and "Secure" in cookie and "Domain" not in cookie
    assert secure.login("olga").status_code == 303
    assert secure.get("/staff/").status_code == 200


# ------------------------------------------------------------------------------------------ sign-in


def test_totp_code_is_refused_the_second_time_over_http(staff: Staff) -> None:
    code = staff.next_code("olga")
    first = staff.client()
    assert first.login("olga", code=code).status_code == 303
    first.logout()
    again = staff.client().login("olga", code=code)
    assert again.status_code == 401 and FAILED in again.get_data(as_text=True)
    # Nor does the sign-in code confirm a sensitive action.
    alice = staff.client()
    sign_in = staff.next_code("alice")
    alice.login("alice", code=sign_in)
    assert alice.post("/staff/admin/audit/export", {"password": PASSWORD, "totp": sign_in}).status_code == 403


def test_account_lockout_after_repeated_failures(staff: Staff) -> None:
    browser = staff.client()
    for _ in range(5):
        assert browser.login("olga", password="not the password").status_code == 401
    assert browser.login("olga").status_code == 401  # right credentials, but locked
    staff.clock.advance(61)
    assert browser.login("olga").status_code == 303
    assert "olga:login.failed.locked" in staff.actions()


def test_address_lockout_with_back_off(staff: Staff) -> None:
    attacker, other = "192.0.2.66", "198.51.100.7"
    browser = staff.client()
    for attempt in range(10):  # many names from one address: the account counters never trip
        assert browser.login(f"guess{attempt}", code="123456", address=attacker).status_code == 401
    assert browser.login("olga", address=attacker).status_code == 401
    assert staff.client().login("olga", address=other).status_code == 303  # only that address is blocked
    staff.clock.advance(61)
    assert staff.client().login("alice", address=attacker).status_code == 303
    for attempt in range(10):
        browser.login(f"again{attempt}", code="123456", address=attacker)
    staff.clock.advance(61)  # the second block lasts twice as long
    assert staff.client().login("alice", address=attacker).status_code == 401
    staff.clock.advance(60)
    assert staff.client().login("alice", address=attacker).status_code == 303
    assert "unknown:login.throttled" in staff.actions()


def test_every_failure_reads_the_same(staff: Staff) -> None:
    pages = []
    browser = staff.client()

    def fail(name: str, **kwargs: str) -> None:
        response = browser.login(name, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 401
        pages.append(_page(response.get_data(as_text=True)))

    fail("nobody", code="123456")  # unknown name
    fail("olga", password="wrong password here")
    fail("olga", code="000000" if staff.next_code("olga") != "000000" else "111111")  # wrong code
    used = staff.next_code("alice")
    assert staff.client().login("alice", code=used).status_code == 303
    fail("alice", code=used)  # reused code
    for _ in range(3):
        fail("olga", password="wrong password here")
    fail("olga")  # locked
    for attempt in range(10):
        staff.client().login(f"x{attempt}", code="123456", address="192.0.2.9")
    response = browser.login("alice", address="192.0.2.9")  # address blocked
    pages.append(_page(response.get_data(as_text=True)))
    assert response.status_code == 401
    assert len(set(pages)) == 1 and FAILED in pages[0]
    reasons = {a.split(":", 1)[1] for a in staff.actions() if ":login.failed." in a}
    assert reasons >= {
        "login.failed.unknown_user",
        "login.failed.wrong_password",
        "login.failed.wrong_code",
        "login.failed.reused_code",
        "login.failed.locked",
    }


# ------------------------------------------------------------------------------------------ CSRF (P1-3)


@pytest.mark.parametrize("token", [None, "", "forged-token", "other-session"])
def test_csrf_missing_or_wrong_is_refused_and_changes_nothing(
    staff: Staff, kiosk: Kiosk, token: str | None
) -> None:
    browser = staff.client()
    browser.login("olga")
    if token == "other-session":
        token = staff.client().csrf()  # a valid token, of someone else's session
    form = {} if token is None else {"csrf_token": token}
    response = browser.client.post("/staff/kiosk/pause", data=form)
    assert response.status_code == 403
    assert kiosk.state()["paused"] is False
    # The sign-in form is protected the same way.
    fresh = staff.client()
    fresh.csrf()
    sign_in = fresh.client.post(
        "/staff/login",
        data={**form, "username": "olga", "password": PASSWORD, "totp": staff.next_code("olga")},
    )
    assert sign_in.status_code == 403 and fresh.get("/staff/").status_code == 303


def test_foreign_origin_is_refused(staff: Staff, kiosk: Kiosk) -> None:
    browser = staff.client()
    browser.login("olga")
    for headers in FOREIGN:  # the same foreign requests the guest API refuses (P1-3)
        response = browser.post("/staff/kiosk/pause", headers=headers)
        assert response.status_code == 403, headers
    assert kiosk.state()["paused"] is False
    assert browser.post("/staff/kiosk/pause", headers={"Origin": "http://localhost"}).status_code == 303


# ------------------------------------------------------------------------------------------ what leaks


def test_logs_carry_no_password_code_cookie_or_account_name(
    staff: Staff, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    browser = staff.client()
    code = staff.next_code("alice")
    browser.login("alice", password="a wrong password")
    browser.login("alice", code=code)
    browser.post("/staff/admin/audit/export", browser.reauth("alice"))
    cookie = browser.cookie()
    browser.logout()
    text = caplog.text
    assert caplog.records  # sign-in was logged, without the details
    for secret in (PASSWORD, "a wrong password", code, cookie or "-", "alice", staff.secrets["alice"]):
        assert secret not in text, secret
    # The security headers of every other response hold for the console too (P1-2).
    response = browser.get("/staff/login")
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert re.search(r"script-src 'self'", response.headers["Content-Security-Policy"])
