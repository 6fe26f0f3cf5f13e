"""Answers to the phones' "do I have internet?" checks, so that a phone stays on the kiosk's Wi-Fi.

Right after joining a Wi-Fi, phones fetch a well-known URL over plain HTTP and compare the answer with the
one they expect. On the kiosk's hotspot, dnsmasq answers those host names with the kiosk's own address
(``provisioning.hotspot.CONNECTIVITY_CHECK_HOSTS``) and this app gives each check the answer its operating
system expects from the internet.

Which answer, and why "online" rather than "captive portal":

* A captive-portal answer (a redirect) makes iOS open its Captive Network Assistant, a mini-browser that
  cannot save a photo to Photos and closes when the guest switches apps, and makes Android post a "sign in
  to network" notification; the guest would collect the photo in the wrong browser or not at all.
* The "online" answer keeps iOS, iPadOS, macOS and Windows on the network without any sheet, and the
  delivery link (scanned from the screen) opens in the phone's normal browser, where the share sheet works.
* Android also probes over HTTPS (``https://www.google.com/generate_204``), which no offline kiosk can
  answer with a valid certificate. With the HTTP probe answered 204 and the HTTPS probe failing, AOSP's
  NetworkMonitor (Android 10 and later) reports "partial connectivity" rather than a captive portal: the
  phone stays joined and offers the guest to keep using the network. A phone with mobile data off uses the
  Wi-Fi as it is; with mobile data on, the guest may have to accept that prompt before the link opens
  (README, delivery section). Not answering at all is worse on every system (Android and iOS then show
  "no internet" and may leave the network), and a redirect is worse for the reasons above.

The app keeps no state, logs nothing of the request (the access log of the listener records method,
status and a masked path only), and answers 404 to everything else, so it is no general web server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

# path -> (status, content type, body). The bodies are what each OS compares byte for byte.
_APPLE_SUCCESS = b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"
ANSWERS: dict[str, tuple[str, str, bytes]] = {
    # Android (AOSP NetworkMonitor) and ChromeOS: an empty 204.
    "/generate_204": ("204 No Content", "text/plain", b""),
    "/gen_204": ("204 No Content", "text/plain", b""),
    # Apple (captive.apple.com; older releases used /library/test/success.html).
    "/hotspot-detect.html": ("200 OK", "text/html", _APPLE_SUCCESS),
    "/library/test/success.html": ("200 OK", "text/html", _APPLE_SUCCESS),
    # Windows NCSI: Windows 10 and later (msftconnecttest.com), then earlier releases (msftncsi.com).
    "/connecttest.txt": ("200 OK", "text/plain", b"Microsoft Connect Test"),
    "/ncsi.txt": ("200 OK", "text/plain", b"Microsoft NCSI"),
    # Firefox (detectportal.firefox.com).
    "/success.txt": ("200 OK", "text/plain", b"success\n"),
    "/canonical.html": (
        "200 OK",
        "text/html",
        b'<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/captive-portal"/>',
    ),
}

_NOT_FOUND = ("404 Not Found", "text/plain", b"")


def connectivity_app(
    environ: dict[str, Any], start_response: Callable[[str, list[tuple[str, str]]], Any]
) -> Iterable[bytes]:
    """WSGI app: the expected answer for a known check path (GET or HEAD), 404 for anything else.

    Never cached (a phone re-checks after every join), never a redirect, no cookie."""
    method = environ.get("REQUEST_METHOD", "GET")
    status, content_type, body = ANSWERS.get(environ.get("PATH_INFO", ""), _NOT_FOUND)
    if method not in ("GET", "HEAD"):
        status, content_type, body = "405 Method Not Allowed", "text/plain", b""
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    if status.startswith("405"):
        headers.append(("Allow", "GET, HEAD"))
    start_response(status, headers)
    return [b""] if method == "HEAD" else [body]
