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

import pyotp
import pytest

from appliance.accounts import Role
from appliance.kiosk import Kiosk
from kiosk_ui.staff import ABSOLUTE_TIMEOUT_SECONDS, COOKIE, IDLE_TIMEOUT_SECONDS, TLS_COOKIE
from kiosk_ui.staff_auth import LOGIN_COOKIE, LOGIN_FORM_SECONDS, TLS_LOGIN_COOKIE
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
    """The page with its CSRF token and the kiosk's time blanked, to compare two failure pages. (The test
    clock moves by whole TOTP steps, which the console rightly reports as a clock jump; that report depends
    on the clock, not on why a sign-in failed.)"""
    page = CSRF.sub('name="csrf_token" value=""', response_text)
    page = re.sub(r'<div class="error" role="alert" id="clock-problem">.*?</div>', "", page, flags=re.S)
    page = re.sub(r"Kiosk time: [^.]*\.", "Kiosk time: .", page)
    return re.sub(r"\n\s*\n", "\n", page)


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
    assert kiosk.state().paused is False


def test_a_pre_sign_in_cookie_is_never_promoted(staff: Staff) -> None:
    """Session fixation: the sign-in form makes no session at all, and a session id planted before
    sign-in is replaced at sign-in and never works."""
    browser = staff.client()
    browser.csrf()
    assert browser.cookie() is None  # the form holds nothing on the server, so there is nothing to plant
    planted = "planted-by-someone-else-" + "x" * 20
    browser.client.set_cookie(COOKIE, planted)
    assert browser.login("olga").status_code == 303
    assert browser.cookie() not in (None, planted)
    attacker = staff.client()
    attacker.client.set_cookie(COOKIE, planted)
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


def _set_cookie(response: object, name: str) -> str:
    headers = response.headers.getlist("Set-Cookie")  # type: ignore[attr-defined]
    found = [h for h in headers if h.startswith(f"{name}=")]
    assert found, f"no {name} cookie in {headers}"
    return str(found[0])


def test_cookie_is_httponly_samesite_strict_and_host_prefixed_over_tls(staff: Staff) -> None:
    plain = staff.client()
    form = plain.get("/staff/login").headers["Set-Cookie"]  # the sign-in form's token, not a session
    assert form.startswith(f"{LOGIN_COOKIE}=") and "HttpOnly" in form and "SameSite=Strict" in form
    assert "Path=/" in form
    assert plain.get("/staff/login").headers.get("Set-Cookie") is None  # a fresh form token is reused
    signed = plain.login("olga")
    assert signed.status_code == 303
    first = _set_cookie(signed, COOKIE)
    assert "HttpOnly" in first and "SameSite=Strict" in first
    assert "Path=/" in first and "Expires" not in first and "Max-Age" not in first

    secure = staff.client(https=True)
    cookie = secure.get("/staff/login").headers["Set-Cookie"]
    assert cookie.startswith(f"{TLS_LOGIN_COOKIE}=") and "Secure" in cookie and "Domain" not in cookie
    response = secure.login("olga")
    assert response.status_code == 303
    session = _set_cookie(response, TLS_COOKIE)
    assert "Secure" in session and "Domain" not in session and "HttpOnly" in session
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


def wrong_code(staff: Staff, name: str) -> str:
    """A six-digit code that is none of ``name``'s codes within the ±1 step window at the test clock."""
    totp = pyotp.TOTP(staff.secrets[name])
    valid = {totp.at(int(staff.clock()) + 30 * step) for step in (-1, 0, 1)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def test_account_lockout_after_repeated_failures(staff: Staff) -> None:
    # The right password with wrong codes: the password is known and the second factor is under attack.
    browser = staff.client()
    for _ in range(5):
        assert browser.login("olga", code=wrong_code(staff, "olga")).status_code == 401
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
    for _ in range(4):  # with the wrong code above: five failures after the right password lock olga
        fail("olga", code=wrong_code(staff, "olga"))
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
    assert kiosk.state().paused is False
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
    assert kiosk.state().paused is False
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


# ------------------------------------------------------------------------------------------ jamming


def test_a_flood_of_anonymous_sign_in_pages_evicts_no_sign_in_and_no_session(staff: Staff) -> None:
    """The sign-in form holds nothing on the server (a signed double-submit token), so an outsider loading it
    any number of times adds nothing to the session table: neither a staff member's half-filled sign-in
    nor a signed-in session can be pushed out."""
    auth = staff.app.extensions["staff_auth"]
    auth.sessions.capacity = 3  # small, so an eviction would surely happen if the flood could cause one
    olga = staff.client()
    assert olga.login("olga").status_code == 303
    alice = staff.client()
    token = alice.csrf()  # alice opened the sign-in form and is typing
    for _ in range(200):
        flood = staff.app.test_client(use_cookies=False)
        assert flood.get("/staff/login").status_code == 200
    assert len(auth.sessions) == 1  # only olga's
    form = {"csrf_token": token, "username": "alice", "password": PASSWORD, "totp": staff.next_code("alice")}
    signed = alice.client.post("/staff/login", data=form)
    assert signed.status_code == 303
    assert olga.get("/staff/").status_code == 200 and alice.get("/staff/").status_code == 200


def test_a_sign_in_token_is_bound_to_its_cookie_signed_and_expires(staff: Staff) -> None:
    browser = staff.client()
    token = browser.csrf()
    issued, nonce, mac = token.split(".")
    forged = f"{issued}.{nonce}.{'A' * len(mac)}"

    def attempt(form_token: str, cookie: str | None = None) -> int:
        client = staff.app.test_client()
        if cookie is not None:
            client.set_cookie(LOGIN_COOKIE, cookie)
        form = {"csrf_token": form_token, "username": "olga", "password": PASSWORD, "totp": "123456"}
        return client.post("/staff/login", data=form).status_code

    assert attempt(token) == 403  # the form token without its cookie (another site's form)
    assert attempt(forged, forged) == 403  # a made-up pair: the MAC fails
    assert attempt(token, staff.client().csrf()) == 403  # a cookie of another form
    assert attempt(token, token) == 401  # the genuine pair: checked, then the wrong code refused
    staff.clock.advance(LOGIN_FORM_SECONDS + 1)
    assert attempt(token, token) == 403  # expired: reload the form
    assert browser.csrf() != token  # and a reload gives a fresh one


def test_an_outsiders_wrong_passwords_block_the_address_not_the_account_nor_its_sessions(
    staff: Staff, kiosk: Kiosk
) -> None:
    olga = staff.client()
    assert olga.login("olga").status_code == 303
    outsider = staff.client()
    for attempt in range(30):  # a burst of guesses for a staff name the outsider learnt
        guess = f"guess number {attempt}"
        response = outsider.login("olga", password=guess, code="123456", address="192.0.2.66")
        assert response.status_code == 401
    assert [s.locked_until for s in staff.store.list(now=staff.clock()) if s.name == "olga"] == [None]
    assert olga.get("/staff/").status_code == 200  # still signed in and working
    assert olga.post("/staff/kiosk/pause").status_code == 303 and kiosk.state().paused
    olga.post("/staff/kiosk/resume")
    assert outsider.login("olga", address="192.0.2.66").status_code == 401  # the guessing address is blocked
    assert staff.client().login("olga", address="198.51.100.7").status_code == 303  # a new sign-in works
    assert "unknown:login.throttled" in staff.actions()


def test_an_account_lockout_never_ends_its_live_sessions(staff: Staff, kiosk: Kiosk) -> None:
    olga = staff.client()
    assert olga.login("olga").status_code == 303
    # Someone with olga's password tries codes: the account locks against new sign-ins...
    thief = staff.client()
    for _ in range(5):
        assert thief.login("olga", code=wrong_code(staff, "olga"), address="192.0.2.70").status_code == 401
    (locked,) = [s.locked_until for s in staff.store.list(now=staff.clock()) if s.name == "olga"]
    assert locked is not None
    assert staff.client().login("olga", address="198.51.100.8").status_code == 401
    # ...and olga, signed in on her phone, keeps working.
    assert olga.get("/staff/").status_code == 200
    assert olga.post("/staff/kiosk/pause").status_code == 303 and kiosk.state().paused
    assert olga.post("/staff/kiosk/resume").status_code == 303


# ------------------------------------------------------------------------------------------ a wrong clock


def test_a_clock_hours_off_is_reported_and_a_recovery_code_signs_in_once(
    kiosk: Kiosk, tmp_path: Path
) -> None:
    staff = make_staff(kiosk, tmp_path)
    enrolment = staff.store.add("olga", Role.OPERATOR, PASSWORD)
    staff.secrets["olga"] = enrolment.secret
    phone_code = pyotp.TOTP(enrolment.secret).now()  # the phone has the right time
    staff.clock.advance(-6 * 3600)  # the kiosk came back from a power cut six hours behind

    page = staff.client().get("/staff/login").get_data(as_text=True)
    assert 'id="clock-problem"' in page and "recovery code" in page
    assert "timedatectl set-time" in page
    browser = staff.client()
    assert browser.login("olga", code=phone_code).status_code == 401  # TOTP cannot match: windows stay ±30 s
    assert browser.login("olga", code=enrolment.recovery_codes[0]).status_code == 303
    dashboard = browser.get("/staff/").get_data(as_text=True)
    assert 'id="clock-problem"' in dashboard
    assert staff.client().login("olga", code=enrolment.recovery_codes[0]).status_code == 401  # once only
    assert "olga:login.recovery" in staff.actions()
    assert staff.store.recovery_codes_left("olga") == len(enrolment.recovery_codes) - 1


def test_the_right_clock_raises_no_alarm(staff: Staff) -> None:
    page = staff.client().get("/staff/login").get_data(as_text=True)
    assert 'id="clock-problem"' not in page and 'id="device-time"' in page
