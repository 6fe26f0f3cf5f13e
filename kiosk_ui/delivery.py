"""The phone-facing delivery listener: ``/d/<token>`` and nothing else (DESIGN.md §3, §9 P0-8, P0-9).

``GET`` shows a small page with the photo's size and a **Save photo** button and never spends the link
(chat apps and link-preview bots prefetch URLs). ``POST`` — the button — returns the JPEG as an attachment
and spends the link, exactly once, when the photo has reached the phone: a connection that breaks first
leaves it collectable (issue 15; the listener's front reports the outcome, ``kiosk.on_sent``). Unknown,
expired, spent and malformed links, and every other path and method, get the same plain 404, so the
listener tells a scanner nothing.

With JavaScript the page's own script makes the POST, shows the photo and offers the system share sheet
with the file where the browser can share files (Save to Photos on iOS, Save image on Android), else a
download; without it the form downloads the file as before. The script is inlined and allowed by its hash:
the listener serves no other URL.

Tokens carry the key that decrypts the photo: they never reach a log line, a Referer header or a cache.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from importlib import resources
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, render_template, request
from flask_babel import Babel, get_locale
from markupsafe import Markup
from werkzeug.exceptions import HTTPException

from appliance.delivery import Collection, DeliveryGone, DeliveryStore, unpack_photos
from kiosk_ui import security
from kiosk_ui.i18n import pick_locale

if TYPE_CHECKING:
    from appliance.kiosk import Kiosk

logger = logging.getLogger(__name__)

# The landing page's only stylesheet, inlined because this listener serves no other URL; the CSP allows
# exactly this text by its hash.
PAGE_CSS = """
:root{color-scheme:light}
body{margin:0;font:18px/1.5 system-ui,sans-serif;background:#f4f4f2;color:#1a1a1a}
main{max-width:28rem;margin:0 auto;padding:2rem 1.25rem}
h1{font-size:1.5rem;margin:0 0 .75rem}
p,form{margin:0 0 1rem}
button{display:block;width:100%;min-height:56px;font:inherit;font-weight:700;border:0;border-radius:12px;
background:#0b5cad;color:#fff;cursor:pointer}
button:focus-visible,a:focus-visible{outline:3px solid #1a1a1a;outline-offset:3px}
button:disabled{opacity:.6;cursor:default}
.secondary{display:block;box-sizing:border-box;width:100%;min-height:56px;padding:14px;margin:0 0 1rem;
border:2px solid #0b5cad;border-radius:12px;color:#0b5cad;font-weight:700;text-align:center;
text-decoration:none}
#share{margin:0 0 1rem}
#photo,.photo{display:block;width:100%;height:auto;margin:0 0 1rem;border-radius:12px;background:#ddd}
.small{font-size:.9rem;color:#444}
[hidden]{display:none!important}
"""
PAGE_CSS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(PAGE_CSS.encode()).digest()).decode()
# The page's only script (kiosk_ui/static/delivery.js), inlined like the stylesheet and allowed by its hash.
PAGE_JS = resources.files("kiosk_ui").joinpath("static/delivery.js").read_text(encoding="utf-8")
PAGE_JS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(PAGE_JS.encode()).digest()).decode()
# The landing page's policy: the listener's own, plus exactly that script and the photo the script shows
# from a blob: URL (it never leaves the page). Error pages keep the listener's policy, no script at all.
PAGE_CSP = (
    security.content_security_policy(style_hashes=[PAGE_CSS_HASH])
    .replace("script-src 'self'", f"script-src '{PAGE_JS_HASH}'")
    .replace("img-src 'self'", "img-src 'self' blob:")
)
# The page's id for one Save: a repeat with the same one from the same phone within the store's repeat
# grace is served again (appliance.delivery). Anything else in the field counts as no id.
_ATTEMPT = re.compile(r"[A-Za-z0-9_-]{16,64}")

# The page's script asks for every photo of a link with several (``want=all``) and reads them from this
# body: appliance.delivery.pack_photos's layout, which delivery.js parses.
BUNDLE_TYPE = "application/vnd.headshot-kiosk.photos"

NOT_FOUND_BODY = "Not found\n"
# Per client address: enough for a guest retrying on a flaky network and for a household of phones behind
# one NAT, far too few to guess a 128-bit id.
RATE_LIMIT_REQUESTS = 120
RATE_LIMIT_WINDOW_SECONDS = 60.0


class RateLimiter:
    """Sliding-window request counter per client address (in memory, bounded)."""

    MAX_CLIENTS = 4096

    def __init__(self, limit: int, window: float, clock: Any = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def allow(self, client: str) -> bool:
        now = self.clock()
        with self._lock:
            if len(self._hits) >= self.MAX_CLIENTS and client not in self._hits:
                # Forget the quietest clients rather than grow without bound.
                for key in [k for k, q in self._hits.items() if not q or q[-1] < now - self.window]:
                    del self._hits[key]
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True


def _plain(text: str, status: int) -> Response:
    return Response(text, status=status, mimetype="text/plain")


def _not_found() -> Response:
    return _plain(NOT_FOUND_BODY, 404)


class _Photo:
    """The JPEG as a WSGI body that settles its claim on the link (``DeliveryStore.settle``).

    Behind the listener's front the outcome comes from the front (``outcome``): the photo was written
    whole and the phone acknowledged it. Without a front (a test client, a bare server) handing the last
    byte to the server is all there is to know: the body settles itself when iterated to the end, and puts
    the link back when closed before that."""

    def __init__(self, jpeg: bytes, settle: Callable[[bool], None], *, fronted: bool) -> None:
        self._jpeg = jpeg
        self._settle = settle
        self._fronted = fronted
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        yield self._jpeg
        self._complete = True
        if not self._fronted:
            self._settle(True)

    def close(self) -> None:
        self._jpeg = b""
        if not self._fronted and not self._complete:
            self._settle(False)

    def outcome(self, sent: bool) -> None:
        """The front's report: the reply reached the phone (``sent``). A reply that was not this body (an
        error page replaced it) delivered nothing."""
        self._settle(sent and self._complete)


def _settler(store: DeliveryStore, collection: Collection) -> Callable[[bool], None]:
    def settle(delivered: bool) -> None:
        store.settle(collection, delivered=delivered)
        if delivered:
            logger.info("delivery link spent: the photo reached the phone")
        else:
            logger.info("delivery not completed: the link stays collectable")

    return settle


def create_delivery_app(
    kiosk: Kiosk,
    *,
    rate_limit: int = RATE_LIMIT_REQUESTS,
    rate_window: float = RATE_LIMIT_WINDOW_SECONDS,
) -> Flask:
    """The delivery listener's app. It has no static route and no API: ``/d/<token>`` only."""
    app = Flask(__name__, static_folder=None)
    # No "//" -> "/" redirects: a 308 would echo the token in a Location header (and send werkzeug through
    # urllib's URL cache with it, found by the audit's P1-6 scan after fuzzing). Exact paths or a plain 404.
    app.url_map.merge_slashes = False
    # Routes are declared without Flask's automatic OPTIONS answer: any method but GET, HEAD and POST is the
    # same plain 404 as an unknown path.
    app.config.update(MAX_CONTENT_LENGTH=1024, BABEL_TRANSLATION_DIRECTORIES="translations")
    app.extensions["kiosk"] = kiosk
    # The phone's language decides; the kiosk's offered languages bound the choice.
    Babel(app, locale_selector=lambda: pick_locale(kiosk.cfg.event.languages))
    limiter = RateLimiter(rate_limit, rate_window)

    security.install(
        app,
        csp=security.content_security_policy(style_hashes=[PAGE_CSS_HASH]),
        json_prefix=None,
        refuse=lambda _code, message, status: _plain(message + "\n", status),
    )

    @app.before_request
    def _rate_limit() -> Response | None:
        if not limiter.allow(request.remote_addr or "-"):
            logger.warning("delivery listener: rate limit reached for a client")
            return _plain("Too many requests\n", 429)
        return None

    @app.after_request
    def _hsts(response: Response) -> Response:
        # This listener is TLS-only in production; tell phones to keep it that way even on error pages.
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
        response.headers["Cache-Control"] = "no-store"
        return response

    def deliveries() -> DeliveryStore:
        store = kiosk.deliveries
        if store is None:
            raise DeliveryGone
        return store

    @app.get("/d/<token>", provide_automatic_options=False)
    def landing(token: str) -> Any:
        try:
            photos = deliveries().peek_photos(token)
        except DeliveryGone:
            return _not_found()
        page = render_template(
            "delivery.html",
            count=len(photos),
            size_kib=max(1, round(sum(size for _name, size in photos) / 1024)),
            attempt=secrets.token_urlsafe(16),
            css=Markup(PAGE_CSS),  # noqa: S704 - our own constant, allowed by its hash in the CSP
            script=Markup(PAGE_JS),  # noqa: S704 - our own file, allowed by its hash in the CSP
            locale=str(get_locale()),
        )
        response = Response(page, mimetype="text/html")
        response.headers["Content-Security-Policy"] = PAGE_CSP
        return response

    @app.post("/d/<token>", provide_automatic_options=False)
    def save(token: str) -> Any:
        attempt = request.form.get("attempt", "")
        try:
            store = deliveries()
            jpeg, collection = store.collect(
                token,
                client=request.remote_addr or "",
                attempt=attempt if _ATTEMPT.fullmatch(attempt) else None,
            )
        except DeliveryGone:
            logger.info("delivery link refused (unknown, expired or already used)")
            return _not_found()
        # Several crops travel as one bundle to the page's script, which asks for them all; the plain form
        # (no script) gets the main photo as a JPEG, as it always did.
        try:
            photos = unpack_photos(jpeg)
        except ValueError:
            store.settle(collection, delivered=False)
            logger.error("delivery link holds an unreadable bundle")
            return _plain("Something went wrong\n", 500)
        bundle = len(photos) > 1 and request.form.get("want") == "all"
        payload = jpeg if bundle else photos[0][1]
        logger.info("delivery on its way (%d photo(s), %d bytes)", len(photos) if bundle else 1, len(payload))
        on_sent = request.environ.get("kiosk.on_sent")
        body = _Photo(payload, _settler(store, collection), fronted=on_sent is not None)
        if on_sent is not None:
            on_sent(body.outcome)
        if bundle:
            response = Response(body, mimetype=BUNDLE_TYPE)
        else:
            response = Response(body, mimetype="image/jpeg")
            response.headers["Content-Disposition"] = 'attachment; filename="headshot.jpg"'
        response.headers["Content-Length"] = str(len(payload))
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        if exc.code == 413:
            return _plain("Request too large\n", 413)
        # 405 on /d/ and 404 everywhere else look the same: nothing to learn about the routes.
        return _not_found()

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("delivery listener: unexpected %s", exc.__class__.__name__)
        return _plain("Something went wrong\n", 500)

    return app
