"""Response headers and request checks shared by the guest UI and the delivery listener (DESIGN.md §9 P1-2,
P1-3).

Every response — pages, JSON, images and error pages alike — gets the same restrictive headers: the browser
runs only our own static scripts, never frames the kiosk, never sends a referrer (a delivery URL in a Referer
header would leak the token) and never caches anything that holds or links to a photo.

State-changing requests are refused when they come from a foreign origin: the kiosk browser and the phone
only ever post to the page they were served from.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def content_security_policy(*, style_hashes: Iterable[str] = ()) -> str:
    """The CSP used everywhere: only our own origin, no inline script, no plugins, no framing.

    ``style_hashes`` (``sha256-...`` values) allow specific inline ``<style>`` blocks; the delivery page
    needs one because the phone-facing listener serves nothing but ``/d/<token>`` (no stylesheet URL).
    """
    styles = " ".join(["'self'", *(f"'{h}'" for h in style_hashes)])
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            f"style-src {styles}",
            "img-src 'self'",
            "connect-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def base_headers(csp: str) -> dict[str, str]:
    """Headers set on every response of both apps."""
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        # The kiosk page needs nothing of the browser's powerful features: the camera is read by the
        # session worker, not by the page.
        "Permissions-Policy": (
            "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"
        ),
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
    }


def _same_origin(origin: str) -> bool:
    """True if ``origin`` (an Origin header value) names the origin the request was sent to."""
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # includes the opaque "null" origin of sandboxed frames and file: pages
    return parts.scheme == request.scheme and parts.netloc.lower() == request.host.lower()


def foreign_origin() -> bool:
    """True if this request carries evidence that another site's page sent it."""
    origin = request.headers.get("Origin")
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True  # Fetch metadata: only a browser sets it, and it says another site initiated this
    if origin is None or _same_origin(origin):
        return False
    # With `Referrer-Policy: no-referrer` browsers send `Origin: null` even for a same-origin <form> POST
    # (the phone's Save button); Sec-Fetch-Site then vouches for it. Without it, "null" stays foreign.
    return not (origin == "null" and fetch_site == "same-origin")


def error_json(code: str, message: str, status: int) -> Response:
    """The API's error shape: ``{"error": code, "message": sentence}``."""
    response = jsonify({"error": code, "message": message})
    response.status_code = status
    return response


def install(
    app: Flask,
    *,
    csp: str,
    no_store_prefixes: tuple[str, ...] = ("/",),
    json_prefix: str | None = "/api/",
    refuse: Any = None,
) -> None:
    """Add the header hook and the origin/content-type checks to ``app``.

    ``no_store_prefixes``: request paths whose responses must never be cached. ``json_prefix``: POSTs under
    it must be ``application/json``. ``refuse(code, message, status)`` builds the refusal response (JSON
    for the guest app, plain text for the delivery listener).
    """
    headers = base_headers(csp)
    make_refusal = refuse or error_json

    @app.before_request
    def _check_request() -> Response | None:
        if request.method in SAFE_METHODS:
            return None
        if foreign_origin():
            logger.warning("refused a %s request from a foreign origin", request.method)
            return make_refusal("foreign_origin", "Requests from other sites are not accepted.", 403)
        if json_prefix is not None and request.path.startswith(json_prefix):
            # Requiring JSON also forces a CORS preflight for cross-site fetches, which we never answer.
            if request.content_length and request.mimetype != "application/json":
                return make_refusal(
                    "unsupported_media_type", "Send the request body as application/json.", 415
                )
            if not request.content_length and request.mimetype not in ("", "application/json"):
                return make_refusal(
                    "unsupported_media_type", "Send the request body as application/json.", 415
                )
            # Read (and cache) the body now so the size cap answers 413 for every endpoint, even one that
            # ignores its body.
            request.get_data(cache=True)
        return None

    @app.after_request
    def _add_headers(response: Response) -> Response:
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        if request.path.startswith(no_store_prefixes) or response.status_code >= 400:
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response
