"""The guest blueprint: the touch-screen page, the notice page and the JSON API the page's script drives.

Every view parses its input, calls one ``Kiosk`` method and renders the result. Nothing here keeps a
pixel: preview frames and headshots pass through as bytes on their way into a response (DESIGN.md §3).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from appliance.consent import CONSENT_CATALOGS, CONSENT_DOMAIN
from appliance.errors import KioskError
from appliance.kiosk import Kiosk
from appliance.views import Ended, PreviewFrame
from appliance.wifi import read_wifi_join
from kiosk_ui import qr, security
from kiosk_ui.errors import http_status
from kiosk_ui.i18n import LANGUAGE_NAMES
from kiosk_ui.speech import Speech, SpeechRefused, SpeechUnavailable, catalog_texts
from kiosk_ui.strings import client_strings, consent_summary

bp = Blueprint("guest", __name__)

# Kiosk cameras (and the demo camera) deliver 30 fps and a kiosk screen needs no more; a faster camera mode
# (a 60 fps CSI sensor) is not asked for more frames than this, which bounds the CPU the preview takes from
# the worker. Frame requests are spaced from one request's start to the next (not from the end of the
# send), so the time a frame takes to make fits inside the interval instead of adding to it: the old
# spacing (an interval from each send's start, then the next frame's making on top) gave 8.5 fps under a
# 12 fps cap.
MAX_PREVIEW_FPS = 30.0
MJPEG_BOUNDARY = "frame"
_MAX_ID = 64
_MAX_CHOICES = 16


class ApiError(Exception):
    """Bad input from the client: answered as ``{"error": code, "message": ...}`` with ``status``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class Guidance:
    """The latest pose hints seen by the preview stream, for ``GET /api/session/guidance``.

    Only hint codes and a relative face box are kept — nothing that could rebuild a picture."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hints: list[str] = []
        self._face: list[float] | None = None
        self._at = 0.0

    def update(self, hints: list[str], face: list[float] | None) -> None:
        with self._lock:
            self._hints, self._face, self._at = list(hints), face, time.monotonic()

    def latest(self) -> dict[str, Any]:
        with self._lock:
            age = time.monotonic() - self._at
            fresh = age < 2.0
            return {
                "hints": list(self._hints) if fresh else [],
                "face": self._face if fresh else None,
                "fresh": fresh,
            }


def _kiosk() -> Kiosk:
    kiosk: Kiosk = current_app.extensions["kiosk"]
    return kiosk


def _speech() -> Speech:
    """The kiosk's speech (issue 14.2), made on first use: the texts of the guest catalog and of the consent
    screen in the event's languages, the event's name and the countdown's numbers."""
    speech: Speech | None = current_app.extensions.get("kiosk_ui.speech")
    if speech is None:
        cfg = _kiosk().cfg
        languages = list(cfg.event.languages)
        texts = catalog_texts(Path(__file__).parent / "translations", languages)
        for lang, items in catalog_texts(CONSENT_CATALOGS, languages, CONSENT_DOMAIN).items():
            texts.setdefault(lang, []).extend(items)
        countdown = [str(n) for n in range(1, cfg.session.countdown_seconds + 1)]
        speech = Speech(texts, extra=[cfg.event.name, *countdown], fills=[cfg.event.name])
        current_app.extensions["kiosk_ui.speech"] = speech
    return speech


def _guidance() -> Guidance:
    return current_app.extensions.setdefault("kiosk_ui.guidance", Guidance())  # type: ignore[no-any-return]


@bp.errorhandler(KioskError)
def _kiosk_error(exc: KioskError) -> Response:
    return security.error_json(exc.code, str(exc), http_status(exc))


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> Response:
    return security.error_json(exc.code, str(exc), exc.status)


# -- input parsing ----------------------------------------------------------------------------------------


def _body() -> dict[str, Any]:
    """The JSON object of a POST; an empty body is ``{}``."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a deeply nested body ("[[[[..."): the parser's own limit, not a server fault.
        raise ApiError("bad_json", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError("bad_json", "The request body must be a JSON object.")
    return data


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value or len(value) > _MAX_ID:
        raise ApiError("bad_request", f"'{name}' must be a non-empty string of at most {_MAX_ID} characters.")
    return value


def _choices(data: dict[str, Any]) -> dict[str, bool]:
    """The shape of ``choices``; which ids the event offers is the facade's check (``BadChoices``)."""
    value = data.get("choices", {})
    if value is None:
        return {}
    if (
        not isinstance(value, dict)
        or len(value) > _MAX_CHOICES
        or not all(isinstance(k, str) and len(k) <= _MAX_ID and isinstance(v, bool) for k, v in value.items())
    ):
        raise ApiError(
            "bad_request", "'choices' must be an object of at most 16 names with true/false values."
        )
    return value


def _image_url(render_id: str) -> str:
    return url_for("guest.render_image", render_id=render_id)


# -- pages ------------------------------------------------------------------------------------------------


def _page_json(page: dict[str, Any]) -> str:
    return json.dumps(page, ensure_ascii=False).replace("</", "<\\/")


def _home_url() -> str:
    """Where every visit starts: a fresh document in the event's default language (issue 11: nothing of a
    visit, the language a guest picked included, survives into the next one)."""
    return url_for("guest.index", lang=_kiosk().cfg.event.languages[0])


@bp.get("/")
def index() -> str:
    """The kiosk's single page: every screen is a section the script shows according to the phase. When a
    visit ends the script replaces the page with a fresh copy of it (``home``), so each guest starts from
    a document that never held anything of the previous one."""
    cfg = _kiosk().cfg
    locale = str(get_locale())
    page = {
        "lang": locale,
        "home": _home_url(),
        "countdown": cfg.session.countdown_seconds,
        "backgrounds": list(cfg.event.backgrounds),
        "presets": list(cfg.event.presets),
        "max_takes": cfg.session.max_takes,
        "window_minutes": cfg.delivery.window_minutes,
        "strings": client_strings(),
        "wifi": _wifi_page(cfg.delivery.wifi_qr_path),
        "print": _print_page(cfg.print.enabled, cfg.print.copies_per_guest),
        "speech": url_for("guest.speech_wav"),
    }
    return render_template(
        "index.html",
        cfg=cfg,
        locale=locale,
        languages=[(code, LANGUAGE_NAMES[code]) for code in cfg.event.languages],
        summary=consent_summary(cfg),
        page_json=_page_json(page),
    )


def _print_page(enabled: bool, copies: int) -> dict[str, Any] | None:
    """What the page script needs to offer printing: None where the event offers none (no Print button,
    nothing said about printing). ``strings`` are keyed by print status and refusal code."""
    if not enabled:
        return None
    return {
        "copies": copies,
        "strings": {
            "print": _("Print"),
            "print_again": _("Print another ({n} left)"),
            "queued": _("Sending your print to the printer..."),
            "printing": _("Printing... please wait here."),
            "completed": _("Collect your print from the printer."),
            "failed": _("The print did not work. Your photo can still go to your phone."),
            "cancelled": _("The print was cancelled."),
            "error_print_limit": _("No more prints are available."),
            "error_printer_out_of_media": _(
                "The printer is out of paper. Please ask staff; your photo can still go to your phone."
            ),
            "error_printer_offline": _(
                "The printer is not available. Your photo can still go to your phone."
            ),
            "kind_print": _("Print waiting for the printer"),
        },
    }


def _wifi_page(path: Path | None) -> dict[str, str] | None:
    join = read_wifi_join(path)
    if join is None:
        return None
    return {"ssid": join.ssid, "password": join.password, "qr": url_for("guest.wifi_png")}


@bp.get("/api/wifi.png")
def wifi_png() -> Response:
    """The kiosk hotspot's "join this network" QR code (the same for every guest; 404 without a hotspot)."""
    join = read_wifi_join(_kiosk().cfg.delivery.wifi_qr_path)
    if join is None:
        raise ApiError("no_wifi", "This kiosk has no Wi-Fi of its own.", 404)
    return Response(qr.png(join.payload), mimetype="image/png")


@bp.get("/notice")
def notice() -> str:
    """The full privacy notice the consent summary links to. It runs the same activity and idle handling
    as the kiosk page, so a visit wiped while it is open sends the screen back to the start."""
    cfg = _kiosk().cfg
    locale = str(get_locale())
    page = {
        "lang": locale,
        "home": _home_url(),
        "strings": client_strings(),
        "speech": url_for("guest.speech_wav"),
    }
    return render_template(
        "notice.html", cfg=cfg, locale=locale, summary=consent_summary(cfg), page_json=_page_json(page)
    )


# -- API --------------------------------------------------------------------------------------------------


@bp.get("/api/speech.wav")
def speech_wav() -> Response:
    """A text the guest screens show, spoken in ``lang`` (WAV, made on the kiosk by espeak-ng). Any other
    text: 404 ``not_speakable``; no espeak-ng: 503 ``speech_unavailable`` (the page goes on silently).
    The text is never logged: it is a catalog text, but the refusals could be anything."""
    lang = request.args.get("lang", "")
    text = request.args.get("text", "")
    try:
        audio = _speech().wav(lang, text)
    except SpeechRefused:
        raise ApiError("not_speakable", "This text is not one the kiosk's screens show.", 404) from None
    except SpeechUnavailable:
        raise ApiError("speech_unavailable", "Speech is not available on this kiosk.", 503) from None
    return Response(audio, mimetype="audio/wav")


@bp.post("/api/session")
def start_session() -> tuple[Response, int]:
    return jsonify(_kiosk().start_session().as_json()), 201


@bp.get("/api/session")
def session_state() -> Response:
    return jsonify(_kiosk().state().as_json())


@bp.post("/api/session/consent")
def consent() -> Response:
    data = _body()
    accept = data.get("accept")
    if not isinstance(accept, bool):
        raise ApiError("bad_request", "'accept' must be true or false.")
    return jsonify(_kiosk().consent(accept, _choices(data)).as_json())


def _flag(name: str, default: bool) -> bool:
    """A yes/no query parameter: ``0``/``false`` is no, any other value yes, absent ``default``."""
    value = request.args.get(name)
    return default if value is None else value not in ("0", "false")


def _mjpeg_part(jpeg: bytes) -> bytes:
    head = f"--{MJPEG_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode() + jpeg + b"\r\n"


@bp.get("/api/session/preview.mjpg")
def preview() -> Response:
    """The live preview as an MJPEG stream; it ends when the visit leaves the preview (capture, Delete now,
    any wipe). ``background``: the person over one of the event's backgrounds; ``mirror`` (default on);
    ``seated=1``: the guidance aims for the seated mode's lower face outline."""
    kiosk = _kiosk()
    background = request.args.get("background") or None
    mirror = _flag("mirror", True)
    seated = _flag("seated", False)
    first = kiosk.preview_frame(background=background, mirror=mirror, seated=seated)  # errors answer here
    guidance = _guidance()

    def frames(frame: PreviewFrame | None) -> Iterator[bytes]:
        # ``frame`` is a parameter, not a closure over ``first``: a closure cell would keep the first
        # frame's JPEG in this process for as long as the stream runs.
        interval = 1.0 / MAX_PREVIEW_FPS
        due = time.monotonic()
        while frame is not None:
            guidance.update(list(frame.hints), frame.face and list(frame.face))
            # The frame was checked against the live visit as it came back from the worker (``_still``):
            # it goes out now and this process keeps nothing of it (the part is the only copy; the next
            # request replaces ``frame``).
            part = _mjpeg_part(frame.jpeg)
            frame = None
            yield part
            del part
            # Spaced from the previous request's start; after a slow send, no catch-up burst.
            now = time.monotonic()
            due = max(due + interval, now)
            if due > now:
                time.sleep(due - now)
            try:
                frame = kiosk.preview_frame(background=background, mirror=mirror, seated=seated)
            except KioskError:
                return  # the phase moved on (capture, wipe, timeout): the stream is over

    response = Response(frames(first), mimetype=f"multipart/x-mixed-replace; boundary={MJPEG_BOUNDARY}")
    response.headers["X-Accel-Buffering"] = "no"
    return response


@bp.get("/api/session/guidance")
def guidance() -> Response:
    """The latest pose hints (``step_closer``, ``look_at_camera``, ...; empty means ready)."""
    return jsonify(_guidance().latest())


@bp.post("/api/session/touch")
def touch() -> Response:
    _body()
    _kiosk().touch()
    return jsonify({"ok": True})


@bp.post("/api/session/capture")
def capture() -> Response:
    _body()
    result = _kiosk().capture()
    return jsonify({**result.as_json(), "image": _image_url(result.headshot.id)})


@bp.post("/api/session/retake")
def retake() -> Response:
    _body()
    return jsonify(_kiosk().retake().as_json())


@bp.post("/api/session/render")
def render() -> Response:
    data = _body()
    headshot = _kiosk().render(_text(data, "take"), _text(data, "background"), _text(data, "preset"))
    return jsonify({**headshot.as_json(), "image": _image_url(headshot.id)})


@bp.get("/api/session/render/<render_id>.jpg")
def render_image(render_id: str) -> Response:
    jpeg = _kiosk().image(render_id[:_MAX_ID])
    return Response(jpeg, mimetype="image/jpeg")


@bp.post("/api/session/deliver")
def deliver() -> Response:
    data = _body()
    also = data.get("also_presets", [])
    if not isinstance(also, list) or not all(isinstance(p, str) for p in also):
        raise ApiError("bad_request", "'also_presets' must be a list of crop names.")
    result = _kiosk().deliver(_text(data, "render"), also)
    # The QR image's URL is new for every delivery: a browser answers a repeated <img src> from the
    # document's image cache without asking (issue 11: the next guest was shown the previous QR).
    return jsonify({**result.as_json(), "qr": url_for("guest.qr_png", v=result.qr)})


@bp.post("/api/session/print")
def print_headshot() -> Response:
    """Print a headshot of this visit (where the event offers printing): ``{"job", "status", ...}`` at
    once; ``GET /api/session`` follows the job. Where printing is off: 404 ``print_disabled``."""
    data = _body()
    kiosk = _kiosk()
    if not kiosk.cfg.print.enabled:
        raise ApiError("print_disabled", "Printing is not offered at this event.", 404)
    return jsonify(kiosk.print_headshot(_text(data, "render")).as_json())


@bp.get("/api/session/qr.png")
def qr_png() -> Response:
    kiosk = _kiosk()
    nonce, url = kiosk.qr_nonce(), kiosk.delivery_url()
    if url is None or nonce is None or request.args.get("v") != nonce:
        # An old QR URL (an earlier guest's) never shows the current one.
        raise ApiError("no_delivery", "There is no download link to show.", 404)
    return Response(qr.png(url), mimetype="image/png")


def _ended(result: Ended) -> Response:
    response = jsonify(result.as_json())
    # The visit is over: tell the browser to drop anything it may still hold of it.
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response


@bp.post("/api/session/delete")
def delete_now() -> Response:
    _body()
    return _ended(_kiosk().delete_now())


@bp.post("/api/session/revoke")
def revoke() -> Response:
    _body()
    return _ended(_kiosk().revoke())


@bp.post("/api/session/end")
def end() -> Response:
    _body()
    return _ended(_kiosk().end())
