"""The staff console: its own Flask app on ``[staff] host/port`` (DESIGN.md §2 invariant 8, §9 P1-1, P1-3).

Staff run the kiosk from here and never see a guest's photo: no route returns an image, a render id or a
session id, and only the admin's re-authenticated audit export carries receipt codes (the anonymous ids
guests keep to exercise their rights); the dashboard shows counts, durations and states only.

This module holds the views and the app factory; they parse a form, call the facade (or
``appliance.event_settings``), record the action in the audit trail and render. Sign-in, sessions, the
limiter, CSRF and the role decorator live in ``kiosk_ui.staff_auth`` (its public names are importable from
here too). Every staff action is appended to the audit trail; account names appear there and nowhere else
(no log line carries one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request, url_for
from markupsafe import Markup
from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from appliance.accounts import AuthFailed, Role, StaffError, StaffStore
from appliance.audit import AuditLog
from appliance.clock import FIX_HINT, ClockWatch, clock_problem
from appliance.compliance import ComplianceError, render_documents
from appliance.config import KioskConfig, is_loopback
from appliance.consent import CONSENT_LANGUAGES
from appliance.event_settings import EventSettings
from appliance.kiosk import KioskError
from appliance.overrides import OverrideError, overrides_path, read_overrides
from kiosk_ui import metrics, security
from kiosk_ui.errors import http_status
from kiosk_ui.staff_auth import (
    ABSOLUTE_TIMEOUT_SECONDS,
    COOKIE,
    EXTENSION,
    IDLE_TIMEOUT_SECONDS,
    TLS_COOKIE,
    AddressLimiter,
    Refused,
    SessionTable,
    StaffAuth,
    StaffSession,
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
    "MAX_REQUEST_BYTES",
    "STAFF_THREADS",
    "TLS_COOKIE",
    "AddressLimiter",
    "SessionTable",
    "StaffConsole",
    "StaffSession",
    "create_staff_app",
]

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024
STAFF_THREADS = 8
# The camera check needs no more to judge a set-up, and each frame costs a detector and a segmentation run
# (~0.2 s on a 2-core CPU) that a guest arriving must not wait behind.
MAX_CHECK_FPS = 4.0
CHECK_BOUNDARY = "frame"

# Outcome pages after an action (POST -> 303 -> GET). Fixed texts chosen by key, so nothing a client sends is
# echoed back into a page.
_NOTICES = {
    "paused": "The kiosk is paused: new visits cannot start.",
    "resumed": "The kiosk is running again.",
    "aborted": "The current visit was aborted and wiped.",
    "no_visit": "There was no visit in progress.",
    "choices": "Backgrounds and crop presets updated.",
    "settings": "Event settings updated.",
    "reset": "Event settings are back to the config file's values.",
    "removed": "The staff account was removed.",
}
_NOT_SAVED = "The change could not be saved on the device, so it was not made. Check the disk and try again."


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
    return _NOTICES.get(request.args.get("done", ""))


# ---------------------------------------------------------------------------------------------- views

bp = Blueprint("staff", __name__, template_folder="templates")


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    session = current_session()
    return {
        "csrf_token": session.csrf if session is not None else "",
        "staff_role": session.role.value if session is not None and session.role is not None else None,
        "is_admin": session is not None and session.role is Role.ADMIN,
    }


def _login_page(error: str | None, status: int = 200) -> Response:
    """The sign-in form with its double-submit token (``staff_auth.LoginTokens``): nothing is kept on the
    server for it, so loading this page any number of times changes nothing here."""
    token, new = login_token()
    page = render_template(
        "staff/login.html", error=error, csrf_token=token, clock=_console().clock_report()
    )
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
    except AuthFailed as failed:
        return _login_page(str(failed), 401)
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
    response = redirect(url_for("staff.login"), code=303)
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
        clock=console.clock_report(),
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
        raise Refused(400, str(exc)) from None
    except OSError:
        logger.error("event overrides could not be written; the change was not made")
        raise Refused(503, _NOT_SAVED) from None
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
        raise Refused(400, "The delivery window must be a whole number of minutes.") from None
    try:
        _console().change_event_settings(
            actor(),
            name=request.form.get("name", "")[:200],
            languages=request.form.getlist("languages"),
            window_minutes=window,
        )
    except ValueError as exc:
        raise Refused(400, f"Not within the allowed settings: {exc}") from None
    except OSError:
        logger.error("event overrides could not be written; the change was not made")
        raise Refused(503, _NOT_SAVED) from None
    return _done("settings", "staff.event_settings")


@bp.post("/staff/admin/event/reset")
@staff_only(Role.ADMIN)
def event_settings_reset() -> BaseResponse:
    try:
        _console().reset_event_settings(actor())
    except OSError:
        logger.error("event overrides could not be removed; the reset was not made")
        raise Refused(503, _NOT_SAVED) from None
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
        raise Refused(500, str(exc)) from None
    if name not in documents:
        raise Refused(404, "No such document.")
    download = request.args.get("download") == "1"
    console.record(actor(), "compliance.download" if download else "compliance.view")
    response = Response(documents[name], mimetype="text/markdown")
    if download:
        response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


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
    """The answer to a request ``kiosk_ui.security`` refuses before any view runs (a foreign origin):
    the console's own error page (not a bare text line), naming the refusal's stable ``code`` so a staff
    member reporting it can say which check refused them."""
    page = render_template("staff/error.html", status=status, message=message, code=code)
    return Response(page, status=status)


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
        page = render_template("staff/error.html", status=status, message=str(exc))
        return Response(page, status=status)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # The boundary: class and traceback to the log (no form values are ever logged), a plain page out.
        logger.exception("unexpected %s in the staff console (%s)", exc.__class__.__name__, request.endpoint)
        return Response("500 Something went wrong in the staff console\n", status=500, mimetype="text/plain")

    return app
