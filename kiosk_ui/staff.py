"""The staff console: its own Flask app on ``[staff] host/port`` (DESIGN.md §2 invariant 8, §9 P1-1, P1-3).

Staff run the kiosk from here and never see a guest's photo: no route returns an image, a render id or a
session id, and only the admin's re-authenticated audit export carries receipt codes (the anonymous ids
guests keep to exercise their rights); the dashboard shows counts, durations and states only.

This module holds the views and the app factory; they parse a form, call the facade (or
``appliance.event_settings``), record the action in the audit trail and render. Sign-in, sessions, the
limiter, CSRF and the role decorator live in ``kiosk_ui.staff_auth`` (its public names are importable from
here too). Every staff action is appended to the audit trail; account names appear there and nowhere else
(no log line carries one).

**On a phone.** Staff use the console from their own phones on the kiosk's network (its hotspot or the
venue's), over TLS with the certificate the delivery listener uses: pages are laid out for a phone first
(``static/staff.css``), and the console answers only to the kiosk's own names (``_check_host``: a foreign
name in the Host header is a DNS-rebinding attempt or a misdirected request). The URL reaches staff through
``provisioning doctor`` and the printed setup sheet (``provisioning.staffurl``), never the guest screen.

**Languages.** Every text is in the console's own gettext domain, "staff" (``_s``/``_sl`` here, ``_()`` in
the templates; ``kiosk_ui/translations/staff.pot``), in English, French, Spanish and German: the language
comes from ``?lang=``, then the browser's remembered choice (a cookie), then Accept-Language. The compliance
documents are listed, read and downloaded in each language (``appliance.compliance``).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request, url_for
from flask_babel import Babel, get_locale
from markupsafe import Markup, escape
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from appliance.accounts import AuthFailed, Role, StaffError, StaffStore
from appliance.audit import AuditLog
from appliance.clock import FIX_HINT, ClockWatch, clock_problem
from appliance.compliance import (
    SUPPORTED_LANGUAGES,
    ComplianceError,
    policy_hash,
    render_all_documents,
    render_documents,
)
from appliance.config import KioskConfig, is_loopback
from appliance.consent import CONSENT_LANGUAGES
from appliance.event_settings import EventSettings
from appliance.kiosk import KioskError
from appliance.overrides import OverrideError, overrides_path, read_overrides
from appliance.tlscert import certificate_dns_names
from kiosk_ui import metrics, security
from kiosk_ui.errors import http_status
from kiosk_ui.i18n import LANGUAGE_NAMES, remembered_locale
from kiosk_ui.staff_auth import (
    ABSOLUTE_TIMEOUT_SECONDS,
    COOKIE,
    EXTENSION,
    IDLE_TIMEOUT_SECONDS,
    STAFF_DOMAIN,
    TLS_COOKIE,
    AddressLimiter,
    Refused,
    SessionTable,
    StaffAuth,
    StaffSession,
    _s,
    _sl,
    actor,
    check_login_csrf,
    clear_cookie,
    clear_login_cookie,
    confirm_request,
    current_session,
    login_token,
    session_id,
    set_cookie,
    set_login_cookie,
    staff_only,
)

if TYPE_CHECKING:
    from appliance.kiosk import Kiosk

__all__ = [
    "ABSOLUTE_TIMEOUT_SECONDS",
    "COOKIE",
    "IDLE_TIMEOUT_SECONDS",
    "LANG_COOKIE",
    "MAX_REQUEST_BYTES",
    "STAFF_THREADS",
    "TLS_COOKIE",
    "TLS_LANG_COOKIE",
    "AddressLimiter",
    "SessionTable",
    "StaffConsole",
    "StaffSession",
    "allowed_hosts",
    "create_staff_app",
]

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
STAFF_THREADS = 8
# The camera check needs no more to judge a set-up, and each frame costs a detector and a segmentation run
# (~0.2 s on a 2-core CPU) that a guest arriving must not wait behind.
MAX_CHECK_FPS = 4.0
CHECK_BOUNDARY = "frame"
# The language the staff chose (``?lang=``), remembered by the browser; only a language code is kept. Over
# TLS with the __Host- prefix, like the session cookie, so no other host on the event network can set it.
LANG_COOKIE = "staff_lang"
TLS_LANG_COOKIE = "__Host-staff_lang"
LANG_COOKIE_SECONDS = 180 * 24 * 3600
STAFF_LANGUAGES = tuple(LANGUAGE_NAMES)  # the console speaks every language the kiosk does

# Outcome pages after an action (POST -> 303 -> GET). Fixed texts chosen by key, so nothing a client sends is
# echoed back into a page.
_NOTICES = {
    "paused": _sl("The kiosk is paused: new visits cannot start."),
    "resumed": _sl("The kiosk is running again."),
    "aborted": _sl("The current visit was aborted and wiped."),
    "no_visit": _sl("There was no visit in progress."),
    "choices": _sl("Backgrounds and crop presets updated."),
    "settings": _sl("Event settings updated."),
    "reset": _sl("Event settings are back to the config file's values."),
    "removed": _sl("The staff account was removed."),
}
_NOT_SAVED = _sl(
    "The change could not be saved on the device, so it was not made. Check the disk and try again."
)
# appliance.accounts.AuthFailed says the same for every reason; this is that sentence in the staff's language.
_SIGN_IN_FAILED = _sl("sign-in failed: check the name, password and code, or wait and try again")
# What the facade's refusals mean to staff, by their stable code (appliance.errors); any other code shows
# the facade's own (English) sentence.
_KIOSK_ERRORS = {
    "session_active": _sl("A guest visit is in progress. Try again when the kiosk is idle."),
    "paused": _sl("The kiosk is paused by staff."),
    "not_paused": _sl(
        "Pause the kiosk and wait until no visit is in progress before changing event settings."
    ),
    "busy": _sl("Please wait: the kiosk is still busy with the current visit."),
    "visit_ended": _sl("The camera check has ended. Reload the page to start it again."),
}
# kiosk_ui.security's refusals before any view runs, by code.
_REFUSALS = {
    "foreign_origin": _sl("Requests from other sites are not accepted."),
    "unknown_host": _sl("This console answers only to the kiosk's own names."),
}
_ROLE_NAMES = {"operator": _sl("operator"), "admin": _sl("admin")}
_BACKGROUND_NAMES = {"studio-grey": _sl("Studio grey"), "white": _sl("White"), "blur": _sl("Blurred")}
_PRESET_NAMES = {"square": _sl("Square"), "portrait": _sl("Portrait"), "badge": _sl("Badge")}


# ---------------------------------------------------------------------------------------------- the console


class StaffConsole:
    """What the views call besides the facade: sign-in and sessions (``auth``), the event settings, the
    dashboard, and the audit record of each staff action.

    ``cfg`` is the config file's values (``python -m appliance run`` hands the listeners the file without
    the console's overrides): the backgrounds and crop presets operators choose from, and the event settings
    admins change, are bounded by it and by the config's legal limits, and a reset goes back to it. Changes
    are kept in ``overrides`` (``appliance.overrides``; by default next to the accounts file, where ``run``
    looks for them).
    """

    def __init__(
        self,
        kiosk: Kiosk,
        cfg: KioskConfig,
        *,
        auth: StaffAuth,
        thermal_root: Path = metrics.THERMAL_ROOT,
        overrides: Path | None = None,
    ) -> None:
        self.kiosk = kiosk
        self.cfg = cfg
        self.auth = auth
        self.store = auth.store
        self.audit = auth.audit
        self.sessions = auth.sessions
        self.thermal_root = thermal_root
        self.overrides = overrides if overrides is not None else overrides_path(auth.store.path)
        self.event = EventSettings(kiosk, cfg, overrides=self.overrides)
        self.clock_watch = ClockWatch(wall=auth.clock)

    def record(
        self, account: str, action: str, *, target: str | None = None, changes: dict[str, Any] | None = None
    ) -> None:
        """Append a staff action to the audit trail (``StaffAuth.record``: a failed write never undoes it)."""
        self.auth.record(account, action, target=target, changes=changes)

    def choose_backgrounds_and_presets(
        self, account: str, backgrounds: list[str], presets: list[str]
    ) -> None:
        """Offer guests a subset of the configured choices (``EventSettings``); raises ``ValueError``, and
        ``OSError`` when the change cannot be saved (it is then not made)."""
        changes = self.event.choose_backgrounds_and_presets(backgrounds, presets)
        self.record(account, "event.choices", changes=changes)

    def change_event_settings(
        self, account: str, *, name: str, languages: list[str], window_minutes: int
    ) -> None:
        """Change the event name, languages and delivery window (``EventSettings.change``): only while paused
        and idle (``KioskError``, 409), only within the config's bounds (``ValueError``); kept across
        restarts (``OSError`` when that fails, and then nothing changed)."""
        changes = self.event.change(name=name, languages=languages, window_minutes=window_minutes)
        self.record(account, "event.settings", changes=changes)

    def reset_event_settings(self, account: str) -> None:
        """Back to the config file's event settings (``EventSettings.reset``)."""
        changes = self.event.reset()
        self.record(account, "event.reset", changes=changes)

    def overrides_problem(self) -> str | None:
        """Why the overrides file cannot be used (it is then ignored at start), or None."""
        try:
            read_overrides(self.overrides)
        except OverrideError as exc:
            return str(exc)
        return None

    def clock_report(self) -> dict[str, Any]:
        """The kiosk's time (so staff can compare it with their phone) and why it cannot be right, if so
        (``appliance.clock``): TOTP codes then fail, and recovery codes are the way in."""
        now = self.auth.clock()
        evidence = [self.audit.log_path, self.audit.head_path, self.store.path, self.overrides]
        problem = clock_problem(now=now, evidence=evidence) or self.clock_watch.problem()
        return {
            "now": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)),
            "problem": problem,
            "fix": FIX_HINT,
        }

    def dashboard(self) -> dict[str, Any]:
        return metrics.dashboard(
            self.kiosk, self.audit, now=self.auth.clock(), thermal_root=self.thermal_root
        )


def _console() -> StaffConsole:
    return cast(StaffConsole, current_app.extensions["staff_console"])


def _done(notice: str, endpoint: str = "staff.dashboard") -> BaseResponse:
    return redirect(url_for(endpoint, done=notice), code=303)


def _notice() -> str | None:
    notice = _NOTICES.get(request.args.get("done", ""))
    return str(notice) if notice is not None else None


def _clock() -> dict[str, Any]:
    """``StaffConsole.clock_report`` with the fix worded for staff, in their language."""
    report = _console().clock_report()
    sentence = _s(
        "set the time on the device with %(set_time)s, then %(rtc)s if it has a battery-backed clock"
    )
    report["fix"] = escape(sentence) % {
        "set_time": Markup("<code>sudo timedatectl set-time 'YYYY-MM-DD HH:MM:SS'</code>"),
        "rtc": Markup("<code>sudo hwclock --systohc</code>"),
    }
    return report


# ---------------------------------------------------------------------------------------------- languages


def _lang_cookie_name() -> str:
    return TLS_LANG_COOKIE if request.is_secure else LANG_COOKIE


def staff_locale() -> str:
    """The request's language: ``?lang=``, the remembered choice, Accept-Language, else English."""
    return remembered_locale(STAFF_LANGUAGES, request.cookies.get(_lang_cookie_name()))


def _remember_language(response: Response) -> Response:
    """Keep a language chosen with ``?lang=`` for the next pages (a cookie holding the code only)."""
    asked = request.args.get("lang", "")
    if asked in STAFF_LANGUAGES and request.cookies.get(_lang_cookie_name()) != asked:
        response.set_cookie(
            _lang_cookie_name(),
            asked,
            max_age=LANG_COOKIE_SECONDS,
            path="/",
            secure=request.is_secure,
            httponly=True,
            samesite="Strict",
        )
    return response


# ---------------------------------------------------------------------------------------------- host names


class _HostList:
    """:func:`allowed_hosts`, read again when the staff certificate file changes: the listener serves a
    renewed certificate without a restart (kiosk_ui.serve), and its names may have changed with it."""

    def __init__(self, cfg: KioskConfig) -> None:
        self._cfg = cfg
        self._stamp: tuple[int, int] | None = None
        self._names = allowed_hosts(cfg)
        self._stamp = self._read_stamp()

    def _read_stamp(self) -> tuple[int, int] | None:
        path = self._cfg.staff.tls_cert_path
        if path is None:
            return None
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_ino

    def names(self) -> frozenset[str]:
        stamp = self._read_stamp()
        if stamp != self._stamp:
            self._names, self._stamp = allowed_hosts(self._cfg), stamp
        return self._names


def allowed_hosts(cfg: KioskConfig) -> frozenset[str]:
    """The host names the console answers to: ``localhost``, the kiosk's public name
    (``[delivery] public_host``, which the hotspot's DNS resolves to the kiosk) and the names of the staff
    certificate (``*.`` wildcards stand for one label). Any IP literal is also accepted (``_check_host``)."""
    names = {"localhost", cfg.delivery.public_host.lower().rstrip(".")}
    path = cfg.staff.tls_cert_path
    return frozenset(names | (certificate_dns_names(path) if path is not None else frozenset()))


def _host_allowed(host: str, allowed: frozenset[str]) -> bool:
    name = host.lower()
    if name.startswith("["):  # [IPv6] or [IPv6]:port
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:  # name:port, IPv4:port
        name = name.rsplit(":", 1)[0]
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return True  # a page on another site cannot make a browser send an IP literal as its Host
    name = name.rstrip(".")
    if name in allowed or name.endswith(".localhost"):
        return True
    parent = name.split(".", 1)[1] if "." in name else ""
    return f"*.{parent}" in allowed


# ---------------------------------------------------------------------------------------------- views

bp = Blueprint("staff", __name__, template_folder="templates")


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    session = current_session()
    return {
        "csrf_token": session.csrf if session is not None else "",
        "staff_role": session.role.value if session is not None and session.role is not None else None,
        "is_admin": session is not None and session.role is Role.ADMIN,
        "staff_lang": str(get_locale()),
        "staff_languages": [(code, LANGUAGE_NAMES[code]) for code in STAFF_LANGUAGES],
        # The language links reload this page; a page that answered a form goes to the dashboard instead.
        "language_base": request.path if request.method == "GET" else url_for("staff.dashboard"),
        "language_names": LANGUAGE_NAMES,
        "role_names": {key: str(value) for key, value in _ROLE_NAMES.items()},
        "background_names": {key: str(value) for key, value in _BACKGROUND_NAMES.items()},
        "preset_names": {key: str(value) for key, value in _PRESET_NAMES.items()},
    }


def _login_page(error: str | None, status: int = 200) -> Response:
    """The sign-in form with its double-submit token (``staff_auth.LoginTokens``): nothing is kept on the
    server for it, so loading this page any number of times changes nothing here."""
    token, new = login_token()
    page = render_template("staff/login.html", error=error, csrf_token=token, clock=_clock())
    response = Response(page, status=status)
    if new:
        set_login_cookie(response, token)
    return response


@bp.get("/staff/login")
def login() -> BaseResponse:
    session = current_session()
    if session is not None and session.account is not None:
        return redirect(url_for("staff.dashboard"), code=303)
    return _login_page(None)


@bp.post("/staff/login")
def login_submit() -> BaseResponse:
    check_login_csrf()
    console = _console()
    try:
        new_id, _fresh = console.auth.sign_in(
            request.remote_addr or "unknown",
            request.form.get("username", "")[:64],
            request.form.get("password", "")[:1024],
            request.form.get("totp", "")[:32],
        )
    except AuthFailed:
        return _login_page(str(_SIGN_IN_FAILED), 401)
    # A fresh id: whatever session cookie the browser held before (one an attacker planted, too) is gone.
    console.sessions.end(session_id())
    response = redirect(url_for("staff.dashboard"), code=303)
    set_cookie(response, new_id)
    clear_login_cookie(response)
    return response


@bp.post("/staff/logout")
@staff_only(Role.OPERATOR)
def logout() -> BaseResponse:
    console = _console()
    account = actor()
    console.sessions.end(session_id())
    console.record(account, "logout")
    # Clear-Site-Data drops every cookie, the chosen language's too: the sign-in page's URL says it again.
    kept = request.cookies.get(_lang_cookie_name())
    lang = kept if kept in STAFF_LANGUAGES else None
    response = redirect(url_for("staff.login", lang=lang), code=303)
    clear_cookie(response)
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
        clock=_clock(),
    )


@bp.get("/staff/camera")
@staff_only(Role.OPERATOR)
def camera_check() -> str:
    """The camera check page: the live set-up with every person a flat silhouette (409 during a visit)."""
    _console().kiosk.refuse_camera_check()
    return render_template("staff/camera.html")


@bp.get("/staff/camera.mjpg")
@staff_only(Role.OPERATOR)
def camera_check_stream() -> Response:
    """The camera check as an MJPEG stream (the guest preview's pattern, ``kiosk_ui.guest.preview``). It
    starts the check (409 during a visit) and ends it when the stream goes: the generator's ``finally``
    runs when the client disconnects, when a guest visit starts (the next frame is refused) or on error."""
    kiosk = _console().kiosk
    viewer = kiosk.start_camera_check()
    try:
        first = kiosk.camera_check_frame()  # errors answer before streaming
    except BaseException:
        kiosk.end_camera_check(viewer)
        raise
    _console().record(actor(), "camera.check")

    def frames() -> Iterator[bytes]:
        jpeg: bytes | None = first.jpeg
        interval = 1.0 / MAX_CHECK_FPS
        try:
            while jpeg is not None:
                started = time.monotonic()
                head = (
                    f"--{CHECK_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                )
                yield head.encode() + jpeg + b"\r\n"
                jpeg = None
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
                try:
                    jpeg = kiosk.camera_check_frame().jpeg
                except KioskError:
                    return  # a guest visit started, the check timed out or its worker stopped
        finally:
            kiosk.end_camera_check(viewer)

    response = Response(frames(), mimetype=f"multipart/x-mixed-replace; boundary={CHECK_BOUNDARY}")
    response.headers["X-Accel-Buffering"] = "no"
    response.headers["Cache-Control"] = "no-store"
    # Also when the stream is closed before its first byte was asked for (a generator never started does
    # not run its ``finally``); ending twice is harmless.
    response.call_on_close(lambda: kiosk.end_camera_check(viewer))
    return response


@bp.post("/staff/kiosk/pause")
@staff_only(Role.OPERATOR)
def pause() -> BaseResponse:
    _console().kiosk.pause()
    _console().record(actor(), "kiosk.pause")
    return _done("paused")


@bp.post("/staff/kiosk/resume")
@staff_only(Role.OPERATOR)
def resume() -> BaseResponse:
    _console().kiosk.resume()
    _console().record(actor(), "kiosk.resume")
    return _done("resumed")


@bp.post("/staff/kiosk/abort")
@staff_only(Role.OPERATOR)
def abort() -> BaseResponse:
    aborted = _console().kiosk.staff_abort()
    _console().record(actor(), "kiosk.abort" if aborted else "kiosk.abort.none")
    return _done("aborted" if aborted else "no_visit")


@bp.post("/staff/event/choices")
@staff_only(Role.OPERATOR)
def event_choices() -> BaseResponse:
    try:
        _console().choose_backgrounds_and_presets(
            actor(),
            request.form.getlist("backgrounds"),
            request.form.getlist("presets"),
        )
    except ValueError as exc:
        raise Refused(400, _s("Not within the allowed choices: %(detail)s", detail=str(exc))) from None
    except OSError:
        logger.error("event overrides could not be written; the change was not made")
        raise Refused(503, str(_NOT_SAVED)) from None
    return _done("choices")


@bp.get("/staff/admin/event")
@staff_only(Role.ADMIN)
def event_settings() -> str:
    console = _console()
    return render_template(
        "staff/event.html",
        cfg=console.kiosk.cfg,
        notice=_notice(),
        all_languages=CONSENT_LANGUAGES,
        overridden=console.event.overridden(),
        overrides_problem=console.overrides_problem(),
    )


@bp.post("/staff/admin/event")
@staff_only(Role.ADMIN)
def event_settings_submit() -> BaseResponse:
    try:
        window = int(request.form.get("window_minutes", ""))
    except ValueError:
        raise Refused(400, _s("The delivery window must be a whole number of minutes.")) from None
    try:
        _console().change_event_settings(
            actor(),
            name=request.form.get("name", "")[:200],
            languages=request.form.getlist("languages"),
            window_minutes=window,
        )
    except ValueError as exc:
        raise Refused(400, _s("Not within the allowed settings: %(detail)s", detail=str(exc))) from None
    except OSError:
        logger.error("event overrides could not be written; the change was not made")
        raise Refused(503, str(_NOT_SAVED)) from None
    return _done("settings", "staff.event_settings")


@bp.post("/staff/admin/event/reset")
@staff_only(Role.ADMIN)
def event_settings_reset() -> BaseResponse:
    try:
        _console().reset_event_settings(actor())
    except OSError:
        logger.error("event overrides could not be removed; the reset was not made")
        raise Refused(503, str(_NOT_SAVED)) from None
    return _done("reset", "staff.event_settings")


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
        recovery_codes=enrolment.recovery_codes,
    )


@bp.post("/staff/admin/accounts/add")
@staff_only(Role.ADMIN)
def account_add() -> str:
    confirm_request()
    console = _console()
    name = request.form.get("name", "")[:64]
    try:
        enrolment = console.store.add(
            name, request.form.get("role", ""), request.form.get("new_password", "")
        )
    except StaffError as exc:
        raise Refused(400, str(exc)) from None
    console.record(actor(), f"staff.add.{enrolment.role.value}", target=enrolment.name)
    return _enrolment_page(enrolment, "added")


@bp.post("/staff/admin/accounts/remove")
@staff_only(Role.ADMIN)
def account_remove() -> BaseResponse:
    confirm_request()
    console = _console()
    name = request.form.get("name", "")[:64]
    try:
        console.store.remove(name)
    except StaffError as exc:
        raise Refused(400, str(exc)) from None
    console.sessions.end_account(name)
    console.record(actor(), "staff.remove", target=name)
    return _done("removed", "staff.accounts")


@bp.post("/staff/admin/accounts/reset-totp")
@staff_only(Role.ADMIN)
def account_reset_totp() -> str:
    confirm_request()
    console = _console()
    name = request.form.get("name", "")[:64]
    try:
        enrolment = console.store.reset_totp(name)
    except StaffError as exc:
        raise Refused(400, str(exc)) from None
    console.sessions.end_account(name)  # a lost phone: whoever holds it is signed out too
    console.record(actor(), "staff.reset_totp", target=name)
    return _enrolment_page(enrolment, "reset")


@bp.post("/staff/admin/accounts/recovery-codes")
@staff_only(Role.ADMIN)
def account_recovery_codes() -> str:
    confirm_request()
    console = _console()
    name = request.form.get("name", "")[:64]
    try:
        codes = console.store.new_recovery_codes(name)
    except StaffError as exc:
        raise Refused(400, str(exc)) from None
    console.record(actor(), "staff.recovery_codes", target=name)
    return render_template("staff/recovery_codes.html", name=name, recovery_codes=codes)


@bp.get("/staff/admin/audit")
@staff_only(Role.ADMIN)
def audit_page() -> str:
    return render_template("staff/audit.html", result=_console().audit.verify())


@bp.post("/staff/admin/audit/export")
@staff_only(Role.ADMIN)
def audit_export() -> Response:
    confirm_request()
    console = _console()
    data = console.audit.export()
    console.record(actor(), "audit.export")
    response = Response(data, mimetype="application/x-ndjson")
    response.headers["Content-Disposition"] = 'attachment; filename="audit.jsonl"'
    return response


def _title(text: str) -> str:
    """A document's title: its first heading without the ``— event`` suffix."""
    first = text.split("\n", 1)[0].removeprefix("# ")
    return first.rsplit(" — ", 1)[0] if " — " in first else first


def _document_language(name: str) -> str:
    """The language of a document file name (``dpia.fr.md`` -> fr; ``dpia.md`` is English)."""
    parts = name.split(".")
    return parts[-2] if len(parts) >= 3 and parts[-2] in SUPPORTED_LANGUAGES else "en"


@bp.get("/staff/admin/compliance")
@staff_only(Role.ADMIN)
def compliance() -> str:
    """The documents in one language (``?doc_lang=``, default: the console's), each to read or download."""
    console = _console()
    asked = request.args.get("doc_lang", "")
    doc_lang = asked if asked in SUPPORTED_LANGUAGES else str(get_locale())
    try:
        documents = render_documents(console.kiosk.cfg, doc_lang)
        digest = policy_hash(console.kiosk.cfg)
    except ComplianceError as exc:
        raise Refused(500, str(exc)) from None
    return render_template(
        "staff/compliance.html",
        doc_lang=doc_lang,
        document_languages=[(code, LANGUAGE_NAMES[code]) for code in SUPPORTED_LANGUAGES],
        documents=[(name, _title(text)) for name, text in documents.items()],
        policy_version=console.kiosk.cfg.event.policy_version,
        policy_digest=digest,
    )


@bp.get("/staff/admin/compliance/<name>")
@staff_only(Role.ADMIN)
def compliance_document(name: str) -> BaseResponse:
    """One document: a page to read it on a phone, or (``?download=1``) the Markdown file itself."""
    console = _console()
    try:
        documents = render_all_documents(console.kiosk.cfg)
    except ComplianceError as exc:
        raise Refused(500, str(exc)) from None
    if name not in documents:
        raise Refused(404, _s("No such document."))
    download = request.args.get("download") == "1"
    console.record(actor(), "compliance.download" if download else "compliance.view")
    if download:
        response = Response(documents[name], mimetype="text/markdown")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    text = documents[name]
    return Response(
        render_template(
            "staff/document.html",
            name=name,
            text=text,
            title=_title(text),
            doc_lang=_document_language(name),
        )
    )


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Prometheus text format, for signed-in staff or a scraper on this machine (loopback)."""
    session = current_session()
    signed_in = session is not None and session.account is not None and _console().auth.still_valid(session)
    if not signed_in and not _loopback(request.remote_addr):
        raise Refused(403, "Metrics are for signed-in staff or a scraper on this machine.")
    text = metrics.metrics_text(_console().kiosk, thermal_root=_console().thermal_root)
    return Response(text, content_type=CONTENT_TYPE_LATEST)


def _loopback(address: str | None) -> bool:
    return address is not None and is_loopback(address)


# ---------------------------------------------------------------------------------------------- the app


def _refusal(code: str, message: str, status: int) -> Response:
    """The answer to a request refused before any view runs (a foreign origin, ``kiosk_ui.security``; a
    foreign host name, ``_check_host``): the console's own error page (not a bare text line), naming the
    refusal's stable ``code`` so a staff member reporting it can say which check refused them."""
    known = _REFUSALS.get(code)
    page = render_template(
        "staff/error.html", status=status, message=str(known) if known is not None else message, code=code
    )
    return Response(page, status=status)


def _check_host() -> Response | None:
    """Refuse a request whose Host header names a host this console is not (421 Misdirected Request).

    A page on another site can point its own name at the kiosk's address (DNS rebinding) and so have a
    browser send requests here that the same-origin rules count as that site's; it cannot make the Host
    header name the kiosk. Over TLS the certificate already stops it; on a loopback console (plain HTTP,
    an SSH tunnel) this check is what does."""
    host = request.headers.get("Host")
    if host is None:  # HTTP/1.0 without a Host: no browser sends that
        return None
    if _host_allowed(host, cast("_HostList", current_app.extensions["staff_hosts"]).names()):
        return None
    logger.warning("refused a staff request for a host name the console does not have")
    return _refusal("unknown_host", "This console answers only to the kiosk's own names.", 421)


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
        BABEL_DEFAULT_LOCALE="en",
        BABEL_TRANSLATION_DIRECTORIES="translations",
    )
    # The console's own catalog ("staff"), never the guest's ("messages").
    Babel(app, locale_selector=staff_locale, default_domain=STAFF_DOMAIN)
    app.extensions["kiosk"] = kiosk
    app.extensions["staff_hosts"] = _HostList(cfg)
    app.before_request(_check_host)  # first: before the origin check and any view
    app.after_request(_remember_language)
    auth = StaffAuth(store=store, audit=audit, clock=clock)
    app.extensions[EXTENSION] = auth
    app.extensions["staff_console"] = StaffConsole(kiosk, cfg, auth=auth, thermal_root=thermal_root)
    security.install(app, csp=security.content_security_policy(), json_prefix=None, refuse=_refusal)
    app.register_blueprint(bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 400
        page = render_template("staff/error.html", status=status, message=exc.description or exc.name)
        return Response(page, status=status)

    @app.errorhandler(KioskError)
    def _kiosk_error(exc: KioskError) -> Response:
        status = http_status(exc)
        known = _KIOSK_ERRORS.get(exc.code)
        message = str(known) if known is not None else str(exc)
        page = render_template("staff/error.html", status=status, message=message, code=exc.code)
        return Response(page, status=status)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # The boundary: class and traceback to the log (no form values are ever logged), a plain page out.
        logger.exception("unexpected %s in the staff console (%s)", exc.__class__.__name__, request.endpoint)
        return Response("500 Something went wrong in the staff console\n", status=500, mimetype="text/plain")

    return app
