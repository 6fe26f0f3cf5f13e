"""Staff console authentication: server-side sessions, the sign-in limiter, CSRF and the role decorator.

Sign-in is name + password (argon2id) + TOTP code, checked by ``appliance.accounts.StaffStore`` (single-use
codes, per-account lockout with back-off). On top of it this module keeps:

* **server-side sessions** (``SessionTable``), for signed-in staff only: the cookie holds only a random id;
  the session itself — account, role, CSRF token, times — lives in this process. Signing out deletes it,
  so a replayed cookie is worth nothing (Flask's default cookie session would still replay). A fresh id is
  issued at sign-in, so a cookie planted before sign-in is never promoted (session fixation). Idle and
  absolute timeouts.
* **a sign-in form that holds nothing on the server** (``LoginTokens``): its CSRF token is a signed
  double-submit token (HMAC-SHA256 under a per-process key over issue time and a random nonce), sent both
  as a cookie and as the form field and valid for ``LOGIN_FORM_SECONDS``. Anonymous requests therefore add
  nothing to the session table, and however many sign-in pages an outsider loads, no staff member's
  session or half-filled sign-in can be pushed out.
* **a per-address limiter** (``AddressLimiter``) with back-off: wrong passwords count against the client's
  address only, so an outsider cannot lock a staff account by guessing; the store's per-account lockout
  counts wrong codes after the right password. A locked account keeps its live sessions (a lock stops new
  sign-ins, nothing more).
* **CSRF** for signed-in staff: a per-session token in a hidden ``csrf_token`` field of every form, compared
  in constant time, plus the Origin / Fetch-Metadata check of ``kiosk_ui.security``.
* **re-authentication** (password + a new TOTP code) for staff account changes and the audit export.

``StaffAuth`` (in ``app.extensions["staff_auth"]``) ties them to the account store and the audit trail;
the request helpers below (``current_session``, ``staff_only``, ``check_csrf``...) are what the views in
``kiosk_ui.staff`` use. Every failure to sign in shows the same message, whatever the reason.

Texts for people go through ``_s`` / ``_sl`` (the console's own gettext domain, "staff": extracted by
``kiosk_ui/translations/staff-babel.cfg`` with ``-k _s -k _sl``, keywords the guest catalog's extraction does
not know, so a staff sentence can never land in the guest's catalog). Log lines stay English.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from flask import current_app, g, redirect, request, url_for
from flask_babel import gettext, lazy_gettext
from flask_babel.speaklater import LazyString
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from appliance.accounts import AuthFailed, FailureReason, Role, SignIn, StaffError, StaffStore
from appliance.audit import AuditError, AuditLog

__all__ = [
    "ABSOLUTE_TIMEOUT_SECONDS",
    "ANONYMOUS_IDLE_SECONDS",
    "COOKIE",
    "IDLE_TIMEOUT_SECONDS",
    "LOGIN_COOKIE",
    "LOGIN_FORM_SECONDS",
    "MAX_SESSIONS",
    "STAFF_DOMAIN",
    "TLS_COOKIE",
    "TLS_LOGIN_COOKIE",
    "AddressLimiter",
    "LoginTokens",
    "ReauthFailed",
    "Refused",
    "SessionTable",
    "StaffAuth",
    "StaffSession",
    "_s",
    "_sl",
    "actor",
    "check_csrf",
    "check_login_csrf",
    "clear_cookie",
    "clear_login_cookie",
    "confirm_request",
    "current_session",
    "login_token",
    "session_id",
    "set_cookie",
    "set_login_cookie",
    "signed_in",
    "staff_only",
]

logger = logging.getLogger(__name__)

IDLE_TIMEOUT_SECONDS = 15 * 60.0  # OWASP ASVS 3.3: re-authenticate after a short idle time
ABSOLUTE_TIMEOUT_SECONDS = 8 * 3600.0  # one shift
LOGIN_FORM_SECONDS = 10 * 60.0  # a sign-in form left open longer must be reloaded
ANONYMOUS_IDLE_SECONDS = LOGIN_FORM_SECONDS  # the earlier name
MAX_SESSIONS = 1000  # signed-in sessions only: anonymous requests never add one
COOKIE = "staff_session"
# Over TLS the cookie gets the __Host- prefix: the browser then insists on Secure, Path=/ and no Domain, so
# another host on the event network cannot plant or overwrite it.
TLS_COOKIE = "__Host-staff_session"
LOGIN_COOKIE = "staff_login"  # the sign-in form's double-submit token
TLS_LOGIN_COOKIE = "__Host-staff_login"
EXTENSION = "staff_auth"  # the app.extensions key of the app's StaffAuth

_RANK = {Role.OPERATOR: 1, Role.ADMIN: 2}
STAFF_DOMAIN = "staff"  # the console's gettext domain (kiosk_ui/translations/*/LC_MESSAGES/staff.po)


def _s(msgid: str, **variables: Any) -> str:
    """A console text in the request's language (the app's default domain, "staff"); ``%(name)s``
    placeholders are filled from ``variables``. Call inside a request."""
    return str(gettext(msgid, **variables))


def _sl(msgid: str) -> LazyString:
    """``_s`` for a text defined at import time: translated when it is turned into a string."""
    return lazy_gettext(msgid)


F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------------------------------------- sessions


@dataclass
class StaffSession:
    """One signed-in browser's session (``account`` and ``role`` are always set; the Optional types are
    kept for the views, which check them anyway)."""

    csrf: str = field(repr=False)
    created: float
    last_seen: float
    account: str | None = None
    role: Role | None = None


def _key(session_id: str) -> str:
    # The table is keyed by a hash of the cookie value, so the ids themselves are not kept in memory.
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionTable:
    """Server-side sessions of signed-in staff, in memory (a restart signs everyone out, which is fine for a
    kiosk). Only a successful sign-in adds one, so nobody without credentials can fill the table.

    ``clock`` is epoch seconds. Thread-safe. ``get`` enforces the idle and absolute timeouts and refreshes
    the idle timer; ``end`` forgets a session at once.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        idle_seconds: float = IDLE_TIMEOUT_SECONDS,
        absolute_seconds: float = ABSOLUTE_TIMEOUT_SECONDS,
        capacity: int = MAX_SESSIONS,
    ) -> None:
        self.clock = clock
        self.idle_seconds = idle_seconds
        self.absolute_seconds = absolute_seconds
        self.capacity = capacity
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, StaffSession] = OrderedDict()

    def _expired(self, session: StaffSession, now: float) -> bool:
        return now - session.last_seen > self.idle_seconds or now - session.created > self.absolute_seconds

    def new(self, account: str, role: Role) -> tuple[str, StaffSession]:
        """A fresh signed-in session (id, session); the id goes into the cookie and nowhere else."""
        now = self.clock()
        session_id = secrets.token_urlsafe(32)
        session = StaffSession(
            csrf=secrets.token_urlsafe(32), created=now, last_seen=now, account=account, role=role
        )
        with self._lock:
            for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
                del self._sessions[key]
            while len(self._sessions) >= self.capacity:
                # Only sign-ins fill the table; at capacity the least recently used session goes.
                del self._sessions[next(iter(self._sessions))]
            self._sessions[_key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> StaffSession | None:
        """The live session for a cookie value, or None (unknown, ended or timed out)."""
        if not session_id or len(session_id) > 128:
            return None
        now = self.clock()
        key = _key(session_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[key]
                return None
            session.last_seen = now
            self._sessions.move_to_end(key)
            return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(_key(session_id), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def end_account(self, account: str) -> int:
        """End every session of ``account`` (removed, or its TOTP reset); returns how many."""
        with self._lock:
            keys = [k for k, s in self._sessions.items() if s.account == account]
            for key in keys:
                del self._sessions[key]
        return len(keys)


class LoginTokens:
    """The sign-in form's CSRF tokens, checked without any server-side state (signed double-submit).

    A token is ``<issue time, hex>.<nonce>.<mac>``: 16 random bytes of nonce and an HMAC-SHA256 under a key
    made once per process, both base64url. The sign-in page sets it as a cookie (HttpOnly, SameSite=Strict,
    ``__Host-`` over TLS) and puts it in the form; a sign-in is accepted only if both are present, equal,
    carry a valid MAC and are at most ``lifetime_seconds`` old. Another site can neither read the cookie
    nor set it on this host, and a token made up or kept past its time fails the MAC or the age check. A
    restart changes the key, so open sign-in forms must be reloaded then.
    """

    _CONTEXT = b"headshot-kiosk staff sign-in form v1"

    def __init__(self, *, clock: Callable[[], float], lifetime_seconds: float = LOGIN_FORM_SECONDS) -> None:
        self.clock = clock
        self.lifetime_seconds = lifetime_seconds
        self._key = secrets.token_bytes(32)

    def _mac(self, issued: str, nonce: str) -> str:
        digest = hmac.new(self._key, b"|".join((self._CONTEXT, issued.encode(), nonce.encode())), "sha256")
        return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()

    def issue(self) -> str:
        issued = format(int(self.clock()), "x")
        nonce = secrets.token_urlsafe(16)
        return f"{issued}.{nonce}.{self._mac(issued, nonce)}"

    def age(self, token: str | None) -> float | None:
        """Seconds since ``token`` was issued if it is genuine and still within its lifetime, else None."""
        if not token or len(token) > 128 or token.count(".") != 2:
            return None
        issued, nonce, mac = token.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac(issued, nonce).encode()):
            return None
        try:
            age = self.clock() - int(issued, 16)
        except ValueError:
            return None
        # A token from the future: the clock was set back since (item: a wrong clock corrected); reload.
        return age if -60.0 <= age <= self.lifetime_seconds else None

    def accepts(self, cookie: str | None, field: str | None) -> bool:
        """The double-submit check: the cookie and the form field are the same genuine, unexpired token."""
        if not cookie or not field or not hmac.compare_digest(cookie.encode(), field.encode()):
            return False
        return self.age(cookie) is not None


class AddressLimiter:
    """Failed sign-ins per client address in a sliding window, with a back-off that doubles per block.

    After ``max_failures`` failures within ``window_seconds`` the address is blocked for ``base_seconds``,
    doubled for each further block (up to ``cap_seconds``); the block count is forgotten after
    ``cap_seconds`` without a failure. Complements ``StaffStore``'s per-account lockout: this one stops one
    client trying many names. Thread-safe; holds at most ``capacity`` addresses.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        max_failures: int = 10,
        window_seconds: float = 15 * 60.0,
        base_seconds: float = 60.0,
        cap_seconds: float = 3600.0,
        capacity: int = 10_000,
    ) -> None:
        self.clock = clock
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.base_seconds = base_seconds
        self.cap_seconds = cap_seconds
        self.capacity = capacity
        self._lock = threading.Lock()
        # address -> (failure times, blocks so far, blocked until, last failure)
        self._state: OrderedDict[str, tuple[deque[float], int, float, float]] = OrderedDict()

    def blocked(self, address: str) -> bool:
        with self._lock:
            state = self._state.get(address)
            return state is not None and state[2] > self.clock()

    def failed(self, address: str) -> bool:
        """Count a failure; True if it starts a block."""
        now = self.clock()
        with self._lock:
            failures, blocks, until, last = self._state.pop(address, (deque(), 0, 0.0, now))
            if now - last > self.cap_seconds:
                blocks = 0  # a quiet hour forgives earlier blocks
            while failures and now - failures[0] > self.window_seconds:
                failures.popleft()
            failures.append(now)
            started = False
            if len(failures) >= self.max_failures:
                until = now + min(self.base_seconds * 2.0 ** min(blocks, 32), self.cap_seconds)
                blocks += 1
                failures.clear()
                started = True
            self._state[address] = (failures, blocks, until, now)
            while len(self._state) > self.capacity:
                self._state.popitem(last=False)
            return started


# ---------------------------------------------------------------------------------------------- sign-in


class ReauthFailed(Exception):
    """The password + new code confirming a sensitive action were not accepted."""


class StaffAuth:
    """Sign-in, re-authentication and the sessions of one staff console; also where staff actions are
    recorded in the audit trail (sign-ins are the first of them).

    ``clock`` is epoch seconds and drives sessions, timeouts, TOTP and the audit times.
    """

    def __init__(self, *, store: StaffStore, audit: AuditLog, clock: Callable[[], float]) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock
        self.sessions = SessionTable(clock=clock)
        self.limiter = AddressLimiter(clock=clock)
        self.login_tokens = LoginTokens(clock=clock)

    def record(
        self, account: str, action: str, *, target: str | None = None, changes: dict[str, Any] | None = None
    ) -> None:
        """Append a staff action to the audit trail. A failure to write is logged and does not undo the
        action (the kiosk must stay operable); ``audit verify`` still checks what was written."""
        try:
            self.audit.append_staff(account, action, target=target, changes=changes, at=self.clock())
        except (AuditError, OSError) as exc:
            logger.error("could not record a staff action in the audit trail: %s", exc.__class__.__name__)

    def sign_in(self, address: str, name: str, password: str, code: str) -> tuple[str, StaffSession]:
        """Check the credentials and open a fresh session; raises ``AuthFailed`` (one message for all).

        Every failure counts against ``address`` (``AddressLimiter``); a wrong password does not count
        against the account (``StaffStore.authenticate(lock_on_wrong_password=False)``), so whoever guesses
        passwords blocks only their own address. ``code`` may be a recovery code (recorded as
        ``login.recovery``)."""
        if self.limiter.blocked(address):
            # No argon2 work for a blocked address; the refusal reads exactly like any other failure.
            raise AuthFailed(FailureReason.LOCKED)
        try:
            signed: SignIn = self.store.authenticate(
                name, password, code, now=self.clock(), lock_on_wrong_password=False
            )
        except AuthFailed as failed:
            self.record(failed.account or "unknown", f"login.failed.{failed.reason.value}")
            if self.limiter.failed(address):
                logger.warning("staff sign-in blocked for a client address after repeated failures")
                self.record("unknown", "login.throttled")
            raise
        summary = signed.summary
        self.record(summary.name, "login.recovery" if signed.recovery else "login")
        logger.info("staff signed in (role %s)", summary.role.value)
        return self.sessions.new(summary.name, summary.role)

    def confirm(self, session: StaffSession, password: str, code: str) -> None:
        """Re-authentication for a sensitive action: the account's password and a TOTP code of a later time
        step than any used before (so the code that signed in cannot be used again)."""
        if session.account is None:
            raise ReauthFailed
        try:
            self.store.verify(session.account, password, code, now=self.clock())
        except AuthFailed as failed:
            self.record(session.account, f"reauth.failed.{failed.reason.value}")
            raise ReauthFailed from None

    def still_valid(self, session: StaffSession) -> bool:
        """The account still exists with the same role (checked on every request, so a removal or a role
        change from the command line ends its sessions at once).

        A lockout does not end them: a lock answers failed sign-ins, and anyone who can reach the sign-in
        form can cause failed sign-ins, so ending sessions on a lock would let an outsider throw staff out."""
        try:
            accounts = {summary.name: summary for summary in self.store.list(now=self.clock())}
        except StaffError:
            return False
        summary = accounts.get(session.account or "")
        return summary is not None and summary.role is session.role


# ---------------------------------------------------------------------------------------------- per request


def _auth() -> StaffAuth:
    return cast(StaffAuth, current_app.extensions[EXTENSION])


def _cookie_name() -> str:
    return TLS_COOKIE if request.is_secure else COOKIE


def _login_cookie_name() -> str:
    return TLS_LOGIN_COOKIE if request.is_secure else LOGIN_COOKIE


def login_token() -> tuple[str, bool]:
    """The sign-in form's token for this request: the browser's own if it is genuine and less than half
    its lifetime old (two open tabs keep working), else a fresh one. Returns (token, is_new); give the
    response to ``set_login_cookie`` when it is new."""
    tokens = _auth().login_tokens
    sent = request.cookies.get(_login_cookie_name())
    age = tokens.age(sent)
    if sent and age is not None and age < tokens.lifetime_seconds / 2:
        return sent, False
    return tokens.issue(), True


def set_login_cookie(response: BaseResponse, token: str) -> None:
    response.set_cookie(
        _login_cookie_name(),
        token,
        max_age=int(_auth().login_tokens.lifetime_seconds),
        path="/",
        secure=request.is_secure,
        httponly=True,
        samesite="Strict",
    )


def clear_login_cookie(response: BaseResponse) -> None:
    response.delete_cookie(
        _login_cookie_name(), path="/", secure=request.is_secure, httponly=True, samesite="Strict"
    )


_FORM_EXPIRED = _sl("The form has expired or did not come from this console. Reload and try again.")


def check_login_csrf() -> None:
    """403 unless the sign-in form's ``csrf_token`` and the sign-in cookie carry the same genuine,
    unexpired token (``LoginTokens.accepts``), or the browser is signed in and sent its session's token."""
    sent = request.form.get("csrf_token", "")
    session = current_session()
    if session is not None and sent and hmac.compare_digest(sent.encode(), session.csrf.encode()):
        return  # signed in already: a form of this console carries the session's own token
    if not _auth().login_tokens.accepts(request.cookies.get(_login_cookie_name()), sent):
        logger.warning("refused a staff sign-in without a valid form token")
        raise Refused(403, str(_FORM_EXPIRED))


def session_id() -> str | None:
    """The request's session cookie value (unchecked: ``current_session`` looks it up)."""
    return request.cookies.get(_cookie_name())


def set_cookie(response: BaseResponse, value: str) -> None:
    # No Max-Age: a browser session cookie; the server-side timeouts decide how long it is worth anything.
    response.set_cookie(
        _cookie_name(), value, path="/", secure=request.is_secure, httponly=True, samesite="Strict"
    )


def clear_cookie(response: BaseResponse) -> None:
    response.delete_cookie(
        _cookie_name(), path="/", secure=request.is_secure, httponly=True, samesite="Strict"
    )


def current_session() -> StaffSession | None:
    """The request's live session (signed in or not), cached on ``g``."""
    if "staff_session" not in g:
        g.staff_session = _auth().sessions.get(session_id())
    return cast("StaffSession | None", g.staff_session)


class Refused(HTTPException):
    """An HTTP error with our own sentence, rendered by the console's error page."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description=description)
        self.code = code


def check_csrf(session: StaffSession | None) -> None:
    """403 unless the form's ``csrf_token`` equals the session's (constant-time compare)."""
    sent = request.form.get("csrf_token", "")
    if session is None or not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        logger.warning("refused a staff form without a valid CSRF token")
        raise Refused(403, str(_FORM_EXPIRED))


def staff_only(role: Role) -> Callable[[F], F]:
    """Allow signed-in staff of ``role`` or higher; CSRF-check every POST.

    Anonymous (or expired, or signed-out) -> 303 to the sign-in page; a lower role -> 403.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            auth = _auth()
            session = current_session()
            if session is not None and session.account is not None and not auth.still_valid(session):
                auth.sessions.end(session_id())
                session = None
            if session is None or session.account is None or session.role is None:
                return redirect(url_for("staff.login"), code=303)
            if _RANK[session.role] < _RANK[role]:
                raise Refused(403, _s("Your role does not allow this."))
            if request.method == "POST":
                check_csrf(session)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def signed_in() -> StaffSession:
    """The signed-in session of a view behind ``staff_only``."""
    session = current_session()
    if session is None or session.account is None:  # staff_only has checked; keeps the types honest
        raise Refused(401, _s("Sign in first."))
    return session


def actor() -> str:
    """The signed-in account's name, for the audit trail (``signed_in`` has refused anonymous sessions)."""
    return signed_in().account or "unknown"


def confirm_request() -> None:
    """Re-authenticate the signed-in account from the form's ``password`` and ``totp`` fields."""
    try:
        _auth().confirm(signed_in(), request.form.get("password", ""), request.form.get("totp", ""))
    except ReauthFailed:
        raise Refused(
            403, _s("Confirmation failed: enter your password and a new code from your authenticator app.")
        ) from None
