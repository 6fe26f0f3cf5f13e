"""The guest touch UI: a Flask app factory over the appliance facade (STYLE.md §8).

``create_app(kiosk)`` builds the app the kiosk's own browser loads from ``[ui] host/port`` (loopback only);
``kiosk_ui.delivery.create_delivery_app`` builds the phone-facing TLS listener; ``kiosk_ui.serve`` runs both
under cheroot. Views stay thin: parse, call one ``Kiosk`` method, render.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from flask_babel import Babel
from werkzeug.exceptions import HTTPException

from kiosk_ui import security
from kiosk_ui.i18n import LANGUAGE_NAMES, pick_locale

if TYPE_CHECKING:
    from appliance.kiosk import Kiosk

__all__ = ["LANGUAGE_NAMES", "create_app"]

logger = logging.getLogger(__name__)

# Requests to the guest API are small JSON documents; anything bigger is a mistake or an attack.
MAX_REQUEST_BYTES = 16 * 1024


def create_app(kiosk: Kiosk, *, testing: bool = False) -> Flask:
    """Build the guest UI app for ``kiosk`` (an appliance ``Kiosk``, started or not).

    The facade lives in ``app.extensions["kiosk"]``; there are no cookies and no server-side sessions:
    the kiosk's state is the facade's.
    """
    from kiosk_ui import brand, guest, openapi  # noqa: PLC0415 - the blueprints import this package's helpers

    app = Flask(__name__)
    app.config.update(
        TESTING=testing,
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        JSON_SORT_KEYS=False,
        BABEL_DEFAULT_LOCALE=kiosk.cfg.event.languages[0],
        BABEL_TRANSLATION_DIRECTORIES="translations",
        # Not used for cookies (there are none), but Flask wants one; random per process.
        SECRET_KEY=None,
    )
    app.extensions["kiosk"] = kiosk
    Babel(app, locale_selector=lambda: pick_locale(kiosk.cfg.event.languages))
    security.install(app, csp=security.content_security_policy())
    app.register_blueprint(guest.bp)
    app.register_blueprint(brand.bp)
    app.register_blueprint(openapi.bp)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: Flask) -> None:
    """JSON errors under /api/, small HTML pages elsewhere; never a traceback to the browser."""

    def wants_json() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or "The request could not be served."
        if exc.code == 400 and "json" in message.lower():
            code = "bad_json"
        if wants_json():
            return security.error_json(code, message, exc.code or 400)
        return Response(f"{exc.code} {exc.name}\n", status=exc.code or 400, mimetype="text/plain")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        # The boundary: log the class and traceback (the root RedactFilter masks tokens); tell the guest
        # something kind and nothing else.
        logger.exception("unexpected %s while serving %s", exc.__class__.__name__, request.endpoint)
        if wants_json():
            return security.error_json(
                "internal", "Something went wrong on the kiosk. Please try again.", 500
            )
        return Response("500 Something went wrong\n", status=500, mimetype="text/plain")
