"""The staff console: its own Flask app on ``[staff] host/port`` (DESIGN.md §2 invariant 8, §9 P1-1, P1-3).

Staff run the kiosk from here and never see a guest's photo: no route returns an image, a render id or a
session id, and only the admin's re-authenticated audit export carries receipt codes (the anonymous ids
guests keep to exercise their rights); the dashboard shows counts, durations and states only.

Sign-in is name + password (argon2id) + TOTP code, checked by ``appliance.staff.StaffStore`` (single-use
codes, per-account lockout with back-off). On top of it this module keeps:

* **server-side sessions** (``SessionTable``): the cookie holds only a random id; the session itself —
  account, role, CSRF token, times — lives in this process. Signing out deletes it, so a replayed cookie
  is worth nothing (Flask's default cookie session would still replay). A fresh id is issued at sign-in,
  so a cookie planted before sign-in is never promoted (session fixation). Idle and absolute timeouts.
* **a per-address limiter** (``AddressLimiter``) with back-off, beside the store's per-account counter.
* **CSRF**: a per-session token in a hidden ``csrf_token`` field of every form, compared in constant time,
  plus the Origin / Fetch-Metadata check of ``kiosk_ui.security``.
* **re-authentication** (password + a new TOTP code) for staff account changes and the audit export.

Every failure to sign in shows the same message, whatever the reason. Every staff action is appended to the
audit trail; account names appear there and nowhere else (no log line carries one).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import Blueprint, Flask, Response, current_app, g, redirect, render_template, request, url_for
from markupsafe import Markup
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from appliance.audit import AuditError, AuditLog, receipt_recorder
from appliance.compliance import CONSENT_LANGUAGES, ComplianceError, render_documents
from appliance.config import KioskConfig, is_loopback
from appliance.kiosk import KioskError
from appliance.staff import AuthFailed, FailureReason, Role, StaffError, StaffStore
from kiosk_ui import metrics, security

if TYPE_CHECKING:
    from appliance.kiosk import Kiosk

__all__ = [
    "ABSOLUTE_TIMEOUT_SECONDS",
    "IDLE_TIMEOUT_SECONDS",
    "AddressLimiter",
    "SessionTable",
    "StaffConsole",
    "StaffSession",
    "create_staff_app",
]

logger = logging.getLogger(__name__)

IDLE_TIMEOUT_SECONDS = 15 * 60.0  # OWASP ASVS 3.3: re-authenticate after a short idle time
ABSOLUTE_TIMEOUT_SECONDS = 8 * 3600.0  # one shift
ANONYMOUS_IDLE_SECONDS = 10 * 60.0  # a sign-in form left open longer must be reloaded
MAX_SESSIONS = 1000  # bounds the memory an unauthenticated client can make us hold
COOKIE = "staff_session"
# Over TLS the cookie gets the __Host- prefix: the browser then insists on Secure, Path=/ and no Domain, so
# another host on the event network cannot plant or overwrite it.
TLS_COOKIE = "__Host-staff_session"
MAX_REQUEST_BYTES = 64 * 1024
STAFF_THREADS = 8

_RANK = {Role.OPERATOR: 1, Role.ADMIN: 2}
# Outcome pages after an action (POST -> 303 -> GET). Fixed texts chosen by key, so nothing a client sends is
# echoed back into a page.
_NOTICES = {
    "paused": "The kiosk is paused: new visits cannot start.",
    "resumed": "The kiosk is running again.",
    "aborted": "The current visit was aborted and wiped.",
    "no_visit": "There was no visit in progress.",
    "choices": "Backgrounds and crop presets updated.",
    "settings": "Event settings updated.",
    "removed": "The staff account was removed.",
}

F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------------------------------------- sessions


@dataclass
class StaffSession:
    """One browser's session. ``account`` is None before sign-in (the session then only carries the CSRF
    token of the sign-in form)."""

    csrf: str = field(repr=False)
    created: float
    last_seen: float
    account: str | None = None
    role: Role | None = None


def _key(session_id: str) -> str:
    # The table is keyed by a hash of the cookie value, so the ids themselves are not kept in memory.
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionTable:
    """Server-side staff sessions, in memory (a restart signs everyone out, which is fine for a kiosk).

    ``clock`` is epoch seconds. Thread-safe. ``get`` enforces the idle and absolute timeouts and refreshes
    the idle timer; ``end`` forgets a session at once.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        idle_seconds: float = IDLE_TIMEOUT_SECONDS,
        absolute_seconds: float = ABSOLUTE_TIMEOUT_SECONDS,
        anonymous_idle_seconds: float = ANONYMOUS_IDLE_SECONDS,
        capacity: int = MAX_SESSIONS,
    ) -> None:
        self.clock = clock
        self.idle_seconds = idle_seconds
        self.absolute_seconds = absolute_seconds
        self.anonymous_idle_seconds = anonymous_idle_seconds
        self.capacity = capacity
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, StaffSession] = OrderedDict()

    def _expired(self, session: StaffSession, now: float) -> bool:
        idle = self.idle_seconds if session.account is not None else self.anonymous_idle_seconds
        return now - session.last_seen > idle or now - session.created > self.absolute_seconds

    def new(self, account: str | None = None, role: Role | None = None) -> tuple[str, StaffSession]:
        """A fresh session (id, session); the id goes into the cookie and nowhere else."""
        now = self.clock()
        session_id = secrets.token_urlsafe(32)
        session = StaffSession(
            csrf=secrets.token_urlsafe(32), created=now, last_seen=now, account=account, role=role
        )
        with self._lock:
            for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
                del self._sessions[key]
            while len(self._sessions) >= self.capacity:
                # Evict the oldest sign-in form first; signed-in staff only when there is nothing else.
                anonymous = next((k for k, s in self._sessions.items() if s.account is None), None)
                del self._sessions[anonymous if anonymous is not None else next(iter(self._sessions))]
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

    def end_account(self, account: str) -> int:
        """End every session of ``account`` (removed, or its TOTP reset); returns how many."""
        with self._lock:
            keys = [k for k, s in self._sessions.items() if s.account == account]
            for key in keys:
                del self._sessions[key]
        return len(keys)


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


# ---------------------------------------------------------------------------------------------- the console


class ReauthFailed(Exception):
    """The password + new code confirming a sensitive action were not accepted."""


class StaffConsole:
    """What the views call: sign-in, sessions, and the staff actions, each recorded in the audit trail.

    ``cfg`` is the configuration the kiosk started with: the backgrounds and crop presets operators choose
    from, and the event settings admins change, are bounded by it and by the config's legal limits.
    """

    def __init__(
        self,
        kiosk: Kiosk,
        cfg: KioskConfig,
        *,
        store: StaffStore,
        audit: AuditLog,
        clock: Callable[[], float],
        thermal_root: Path = metrics.THERMAL_ROOT,
    ) -> None:
        self.kiosk = kiosk
        self.cfg = cfg
        self.store = store
        self.audit = audit
        self.clock = clock
        self.thermal_root = thermal_root
        self.sessions = SessionTable(clock=clock)
        self.limiter = AddressLimiter(clock=clock)
        self._settings_lock = threading.Lock()

    # -- audit

    def record(self, account: str, action: str, *, target: str | None = None) -> None:
        """Append a staff action to the audit trail. A failure to write is logged and does not undo the
        action (the kiosk must stay operable); ``audit verify`` still checks what was written."""
        try:
            self.audit.append_staff(account, action, target=target, at=self.clock())
        except (AuditError, OSError) as exc:
            logger.error("could not record a staff action in the audit trail: %s", exc.__class__.__name__)

    # -- sign-in

    def sign_in(self, address: str, name: str, password: str, code: str) -> tuple[str, StaffSession]:
        """Check the credentials and open a fresh session; raises ``AuthFailed`` (one message for all)."""
        if self.limiter.blocked(address):
            # No argon2 work for a blocked address; the refusal reads exactly like any other failure.
            raise AuthFailed(FailureReason.LOCKED)
        try:
            summary = self.store.verify(name, password, code, now=self.clock())
        except AuthFailed as failed:
            self.record(failed.account or "unknown", f"login.failed.{failed.reason.value}")
            if self.limiter.failed(address):
                logger.warning("staff sign-in blocked for a client address after repeated failures")
                self.record("unknown", "login.throttled")
            raise
        self.record(summary.name, "login")
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
        """The account still exists, has the same role and is not locked (checked on every request, so a
        removal from the command line or a lockout ends its sessions at once)."""
        try:
            accounts = {summary.name: summary for summary in self.store.list(now=self.clock())}
        except StaffError:
            return False
        summary = accounts.get(session.account or "")
        return summary is not None and summary.role is session.role and summary.locked_until is None

    # -- event settings

    def _replace_event(
        self, *, event: Mapping[str, Any], delivery: Mapping[str, Any] | None = None
    ) -> KioskConfig:
        """The kiosk's current config with ``event`` (and ``delivery``) fields changed, validated again by
        ``KioskConfig`` so every bound of the config file (delivery window ≤ 60 min...) holds."""
        current = self.kiosk.cfg
        data = current.model_dump()
        data["event"] = {**data["event"], **event}
        if delivery:
            data["delivery"] = {**data["delivery"], **delivery}
        return KioskConfig.model_validate(data)

    def choose_backgrounds_and_presets(
        self, account: str, backgrounds: list[str], presets: list[str]
    ) -> None:
        """Offer guests a subset of the configured backgrounds and presets; the first of each is the default.

        Only the event's choices change, none of the consent text, so receipts keep their policy hash.
        Raises ``ValueError`` for an empty or unknown choice.
        """
        if not backgrounds or not presets:
            raise ValueError("choose at least one background and one crop preset")
        if set(backgrounds) - set(self.cfg.event.backgrounds) or set(presets) - set(self.cfg.event.presets):
            raise ValueError("choose among the configured backgrounds and crop presets")
        with self._settings_lock:
            new = self._replace_event(event={"backgrounds": tuple(backgrounds), "presets": tuple(presets)})
            # The facade reads its config on every call (validation, the first render's defaults) and the
            # guest page reads it on every load, so swapping the frozen object applies the choice.
            self.kiosk.update_event(new)
        self.record(account, "event.choices")

    def change_event_settings(
        self, account: str, *, name: str, languages: list[str], window_minutes: int
    ) -> None:
        """Change the event name, the offered languages and the delivery window (≤ 60 min).

        These change the consent text, so they apply only while the kiosk is paused with no visit in
        progress (no guest agrees to one text and leaves under another), and the receipt recorder is rebuilt
        so later receipts carry the new text's hash. Raises ``KioskError`` (409) otherwise and
        ``ValueError`` for a value outside the config's bounds.
        """
        with self._settings_lock:
            state = self.kiosk.state()
            if not state["paused"] or state["phase"] != "idle":
                raise KioskError(
                    "pause the kiosk and wait until no visit is in progress before changing event settings",
                    code="not_paused",
                    status=409,
                )
            try:
                new = self._replace_event(
                    event={"name": name, "languages": tuple(languages)},
                    delivery={"window_minutes": window_minutes},
                )
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
                )
                raise ValueError(problems) from None
            # python -m appliance run records receipts with receipt_recorder(cfg), whose policy hash is
            # fixed at creation; a new text needs a recorder hashing the new text.
            recorder = receipt_recorder(new) if self.kiosk.on_receipt is not None else None
            self.kiosk.update_event(new, require_idle=True, on_receipt=recorder)
        self.record(account, "event.settings")

    # -- dashboard

    def dashboard(self) -> dict[str, Any]:
        return metrics.dashboard(self.kiosk, self.audit, now=self.clock(), thermal_root=self.thermal_root)


def _console() -> StaffConsole:
    return cast(StaffConsole, current_app.extensions["staff_console"])


# ---------------------------------------------------------------------------------------------- plumbing


def _cookie_name() -> str:
    return TLS_COOKIE if request.is_secure else COOKIE


def _session_id() -> str | None:
    return request.cookies.get(_cookie_name())


def _set_cookie(response: BaseResponse, session_id: str) -> None:
    # No Max-Age: a browser session cookie; the server-side timeouts decide how long it is worth anything.
    response.set_cookie(
        _cookie_name(), session_id, path="/", secure=request.is_secure, httponly=True, samesite="Strict"
    )


def _clear_cookie(response: BaseResponse) -> None:
    response.delete_cookie(
        _cookie_name(), path="/", secure=request.is_secure, httponly=True, samesite="Strict"
    )


def _current() -> StaffSession | None:
    """The request's live session (signed in or not), cached on ``g``."""
    if "staff_session" not in g:
        g.staff_session = _console().sessions.get(_session_id())
    return cast("StaffSession | None", g.staff_session)


def _check_csrf(session: StaffSession | None) -> None:
    """403 unless the form's ``csrf_token`` equals the session's (constant-time compare)."""
    sent = request.form.get("csrf_token", "")
    if session is None or not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        logger.warning("refused a staff form without a valid CSRF token")
        raise _Refused(403, "The form has expired or did not come from this console. Reload and try again.")


class _Refused(HTTPException):
    """An HTTP error with our own sentence, rendered by the app's error page."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description=description)
        self.code = code


def staff_only(role: Role) -> Callable[[F], F]:
    """Allow signed-in staff of ``role`` or higher; CSRF-check every POST.

    Anonymous (or expired, or signed-out) -> 303 to the sign-in page; a lower role -> 403.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            console = _console()
            session = _current()
            if session is not None and session.account is not None and not console.still_valid(session):
                console.sessions.end(_session_id())
                session = None
            if session is None or session.account is None or session.role is None:
                return redirect(url_for("staff.login"), code=303)
            if _RANK[session.role] < _RANK[role]:
                raise _Refused(403, "Your role does not allow this.")
            if request.method == "POST":
                _check_csrf(session)
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _signed_in() -> StaffSession:
    session = _current()
    if session is None or session.account is None:  # staff_only has checked; keeps the types honest
        raise _Refused(401, "Sign in first.")
    return session


def _actor() -> str:
    """The signed-in account's name, for the audit trail (``_signed_in`` has refused anonymous sessions)."""
    return _signed_in().account or "unknown"


def _confirm() -> None:
    """Re-authenticate the signed-in account from the form's ``password`` and ``totp`` fields."""
    try:
        _console().confirm(_signed_in(), request.form.get("password", ""), request.form.get("totp", ""))
    except ReauthFailed:
        raise _Refused(
            403, "Confirmation failed: enter your password and a new code from your authenticator app."
        ) from None


def _done(notice: str, endpoint: str = "staff.dashboard") -> BaseResponse:
    return redirect(url_for(endpoint, done=notice), code=303)


def _notice() -> str | None:
    return _NOTICES.get(request.args.get("done", ""))


# ---------------------------------------------------------------------------------------------- views

bp = Blueprint("staff", __name__, template_folder="templates")


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    session = _current()
    return {
        "csrf_token": session.csrf if session is not None else "",
        "staff_role": session.role.value if session is not None and session.role is not None else None,
        "is_admin": session is not None and session.role is Role.ADMIN,
    }


@bp.get("/staff/login")
def login() -> BaseResponse:
    session = _current()
    if session is not None and session.account is not None:
        return redirect(url_for("staff.dashboard"), code=303)
    # The form's CSRF token needs a session before sign-in: an anonymous one, replaced at sign-in.
    session_id = None
    if session is None:
        session_id, g.staff_session = _console().sessions.new()
    response = Response(render_template("staff/login.html", error=None))
    if session_id is not None:
        _set_cookie(response, session_id)
    return response


@bp.post("/staff/login")
def login_submit() -> BaseResponse:
    session = _current()
    _check_csrf(session)
    console = _console()
    try:
        session_id, _fresh = console.sign_in(
            request.remote_addr or "unknown",
            request.form.get("username", "")[:64],
            request.form.get("password", "")[:1024],
            request.form.get("totp", "")[:16],
        )
    except AuthFailed as failed:
        return Response(render_template("staff/login.html", error=str(failed)), status=401)
    # A fresh id: the pre-sign-in session (and any cookie an attacker planted) is gone for good.
    console.sessions.end(_session_id())
    response = redirect(url_for("staff.dashboard"), code=303)
    _set_cookie(response, session_id)
    return response


@bp.post("/staff/logout")
@staff_only(Role.OPERATOR)
def logout() -> BaseResponse:
    console = _console()
    account = _actor()
    console.sessions.end(_session_id())
    console.record(account, "logout")
    response = redirect(url_for("staff.login"), code=303)
    _clear_cookie(response)
    response.headers["Clear-Site-Data"] = '"cache", "cookies", "storage"'
    return response


@bp.get("/staff/")
@staff_only(Role.OPERATOR)
def dashboard() -> str:
    console = _console()
    return render_template(
        "staff/dashboard.html",
        data=console.dashboard(),
        notice=_notice(),
        configured=console.cfg.event,
        offered=console.kiosk.cfg.event,
    )


@bp.post("/staff/kiosk/pause")
@staff_only(Role.OPERATOR)
def pause() -> BaseResponse:
    _console().kiosk.pause()
    _console().record(_actor(), "kiosk.pause")
    return _done("paused")


@bp.post("/staff/kiosk/resume")
@staff_only(Role.OPERATOR)
def resume() -> BaseResponse:
    _console().kiosk.resume()
    _console().record(_actor(), "kiosk.resume")
    return _done("resumed")


@bp.post("/staff/kiosk/abort")
@staff_only(Role.OPERATOR)
def abort() -> BaseResponse:
    aborted = _console().kiosk.staff_abort()
    _console().record(_actor(), "kiosk.abort" if aborted else "kiosk.abort.none")
    return _done("aborted" if aborted else "no_visit")


@bp.post("/staff/event/choices")
@staff_only(Role.OPERATOR)
def event_choices() -> BaseResponse:
    try:
        _console().choose_backgrounds_and_presets(
            _actor(),
            request.form.getlist("backgrounds"),
            request.form.getlist("presets"),
        )
    except ValueError as exc:
        raise _Refused(400, str(exc)) from None
    return _done("choices")


@bp.get("/staff/admin/event")
@staff_only(Role.ADMIN)
def event_settings() -> str:
    cfg = _console().kiosk.cfg
    return render_template("staff/event.html", cfg=cfg, notice=_notice(), all_languages=CONSENT_LANGUAGES)


@bp.post("/staff/admin/event")
@staff_only(Role.ADMIN)
def event_settings_submit() -> BaseResponse:
    try:
        window = int(request.form.get("window_minutes", ""))
    except ValueError:
        raise _Refused(400, "The delivery window must be a whole number of minutes.") from None
    try:
        _console().change_event_settings(
            _actor(),
            name=request.form.get("name", "")[:200],
            languages=request.form.getlist("languages"),
            window_minutes=window,
        )
    except ValueError as exc:
        raise _Refused(400, f"Not within the allowed settings: {exc}") from None
    return _done("settings", "staff.event_settings")


@bp.get("/staff/admin/accounts")
@staff_only(Role.ADMIN)
def accounts() -> str:
    return render_template(
        "staff/accounts.html",
        accounts=_console().store.list(),
        notice=_notice(),
        roles=[r.value for r in Role],
    )


def _enrolment_page(enrolment: Any, action: str) -> str:
    # segno draws the otpauth:// URI as inline SVG markup (no image URL, so the CSP's img-src is untouched
    # and nothing of it is cached: every staff response is no-store). Shown once, never stored.
    import segno  # noqa: PLC0415 - only this page needs it

    svg = segno.make_qr(enrolment.uri, error="m").svg_inline(scale=5, dark="#000", light="#fff")
    return render_template(
        "staff/enrolment.html",
        action=action,
        name=enrolment.name,
        role=enrolment.role.value,
        secret=enrolment.secret,
        uri=enrolment.uri,
        qr_svg=Markup(svg),  # noqa: S704 - segno's own SVG, built from the URI; no client input in markup
    )


@bp.post("/staff/admin/accounts/add")
@staff_only(Role.ADMIN)
def account_add() -> str:
    _confirm()
    console = _console()
    name = request.form.get("name", "")[:64]
    try:
        enrolment = console.store.add(
            name, request.form.get("role", ""), request.form.get("new_password", "")
        )
    except StaffError as exc:
        raise _Refused(400, str(exc)) from None
    console.record(_actor(), f"staff.add.{enrolment.role.value}", target=enrolment.name)
    return _enrolment_page(enrolment, "added")


@bp.post("/staff/admin/accounts/remove")
@staff_only(Role.ADMIN)
def account_remove() -> BaseResponse:
    _confirm()
    console = _console()
    name = request.form.get("name", "")[:64]
    try:
        console.store.remove(name)
    except StaffError as exc:
        raise _Refused(400, str(exc)) from None
    console.sessions.end_account(name)
    console.record(_actor(), "staff.remove", target=name)
    return _done("removed", "staff.accounts")


@bp.post("/staff/admin/accounts/reset-totp")
@staff_only(Role.ADMIN)
def account_reset_totp() -> str:
    _confirm()
    console = _console()
    name = request.form.get("name", "")[:64]
    try:
        enrolment = console.store.reset_totp(name)
    except StaffError as exc:
        raise _Refused(400, str(exc)) from None
    console.sessions.end_account(name)  # a lost phone: whoever holds it is signed out too
    console.record(_actor(), "staff.reset_totp", target=name)
    return _enrolment_page(enrolment, "reset")


@bp.get("/staff/admin/audit")
@staff_only(Role.ADMIN)
def audit_page() -> str:
    return render_template("staff/audit.html", result=_console().audit.verify())


@bp.post("/staff/admin/audit/export")
@staff_only(Role.ADMIN)
def audit_export() -> Response:
    _confirm()
    console = _console()
    data = console.audit.export()
    console.record(_actor(), "audit.export")
    response = Response(data, mimetype="application/x-ndjson")
    response.headers["Content-Disposition"] = 'attachment; filename="audit.jsonl"'
    return response


@bp.get("/staff/admin/compliance")
@staff_only(Role.ADMIN)
def compliance() -> str:
    return render_template("staff/compliance.html", names=sorted(render_documents(_console().kiosk.cfg)))


@bp.get("/staff/admin/compliance/<name>")
@staff_only(Role.ADMIN)
def compliance_document(name: str) -> Response:
    console = _console()
    try:
        documents = render_documents(console.kiosk.cfg)
    except ComplianceError as exc:
        raise _Refused(500, str(exc)) from None
    if name not in documents:
        raise _Refused(404, "No such document.")
    download = request.args.get("download") == "1"
    console.record(_actor(), "compliance.download" if download else "compliance.view")
    response = Response(documents[name], mimetype="text/markdown")
    if download:
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus text format, for signed-in staff or a scraper on this machine (loopback)."""
    session = _current()
    signed_in = session is not None and session.account is not None and _console().still_valid(session)
    if not signed_in and not _loopback(request.remote_addr):
        raise _Refused(403, "Metrics are for signed-in staff or a scraper on this machine.")
    text = metrics.metrics_text(_console().kiosk, thermal_root=_console().thermal_root)
    return Response(text, content_type=CONTENT_TYPE_LATEST)


def _loopback(address: str | None) -> bool:
    return address is not None and is_loopback(address)


# ---------------------------------------------------------------------------------------------- the app


def _refusal(code: str, message: str, status: int) -> Response:
    return Response(f"{status} {message}\n", status=status, mimetype="text/plain")


def create_staff_app(
    kiosk: Kiosk,
    cfg: KioskConfig,
    *,
    store: StaffStore,
    audit: AuditLog,
    clock: Callable[[], float] = time.time,
    thermal_root: Path = metrics.THERMAL_ROOT,
    testing: bool = False,
) -> Flask:
    """The staff console for ``kiosk`` (served by ``kiosk_ui.serve.staff_listener``).

    ``store`` holds the accounts, ``audit`` receives every staff action, ``clock`` (epoch seconds) drives
    sessions, timeouts, TOTP and the audit times — tests inject one. ``cfg`` bounds what staff may choose.
    """
    app = Flask(__name__, static_folder="static", static_url_path="/staff/static")
    app.config.update(
        TESTING=testing,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        # Flask's own cookie session is never used (ours is server-side); without a key it cannot be.
        SECRET_KEY=None,
    )
    app.extensions["kiosk"] = kiosk
    app.extensions["staff_console"] = StaffConsole(
        kiosk, cfg, store=store, audit=audit, clock=clock, thermal_root=thermal_root
    )
    security.install(app, csp=security.content_security_policy(), json_prefix=None, refuse=_refusal)
    app.register_blueprint(bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 400
        page = render_template("staff/error.html", status=status, message=exc.description or exc.name)
        return Response(page, status=status)

    @app.errorhandler(KioskError)
    def _kiosk_error(exc: KioskError) -> Response:
        page = render_template("staff/error.html", status=exc.status, message=str(exc))
        return Response(page, status=exc.status)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # The boundary: class and traceback to the log (no form values are ever logged), a plain page out.
        logger.exception("unexpected %s in the staff console (%s)", exc.__class__.__name__, request.endpoint)
        return Response("500 Something went wrong in the staff console\n", status=500, mimetype="text/plain")

    return app
